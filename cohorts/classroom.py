"""A generated class: a small truth and a folder of team submissions, for tests, benchmarks and demos.

Each team has a skill; each of its submissions is the truth with every tumour
shifted by a random offset that grows as skill falls, sometimes a tumour missed
or a false blob added. Same arguments, same bytes (file times included).
"""
from __future__ import annotations

import io
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from plumbing.atomic import write_bytes
from data_spec import (
    PRIVATE_DIR,
    SLICE_SHAPE,
    TEST,
    TRUTH_H5,
    Y_DTYPE,
    case_ids,
    public_mask,
    write_course_array,
    write_split_h5,
)
from data_spec.errors import check_choice
from data_spec.manifest import MANIFEST_CSV, write_manifest

#: Folder names (so no "/") that try to break a page, a spreadsheet, a Markdown table or a plot.
HOSTILE_TEAMS = (
    "<script>alert(1)",
    "<img src=x onerror=alert(3)>",
    '=HYPERLINK("evil.example","click")',
    "+cmd|' -C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "pipe|team*bold*",
    "$\\frac{",
    'quote"onmouseover="alert(2)',
    "rtl\u202eevil",
    "new\nline",
)
START = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


#: Deliberately invalid files, one per mistake the grader is built to explain.
MISTAKES = ("values_0_255", "probabilities", "slices_last", "truncated")


def write_mistake(path: Path, kind: str, y_pred: np.ndarray, proba: np.ndarray) -> Path:
    """Write one of the usual wrong submissions (what students really hand in)."""
    if kind == "values_0_255":
        return write_bytes(path.with_suffix(".dat"), (y_pred * 255).astype(np.uint8).tobytes())
    if kind == "probabilities":
        buf = io.BytesIO()
        np.save(buf, proba.astype(np.float32))
        return write_bytes(path.with_suffix(".npy"), buf.getvalue())
    if kind == "slices_last":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(np.moveaxis(y_pred, 0, -1)))
        return write_bytes(path.with_suffix(".npy"), buf.getvalue())
    if kind == "truncated":
        return write_bytes(path.with_suffix(".dat"), y_pred.tobytes()[: y_pred.nbytes // 2])
    check_choice("mistake", kind, MISTAKES)
    raise AssertionError(kind)  # pragma: no cover - every mistake is handled above


def make_truth(n_cases: int, seed: int = 0) -> tuple:
    """Tumour discs on ``n_cases`` slices (every fourth one tumour-free) and seeded public flags."""
    rng = np.random.default_rng([seed, 1])
    rows, cols = np.mgrid[: SLICE_SHAPE[0], : SLICE_SHAPE[1]]
    y = np.zeros((n_cases,) + SLICE_SHAPE, dtype=Y_DTYPE)
    for i in range(n_cases):
        if i % 4 != 3:
            cy, cx = rng.integers(80, 160, size=2)
            r = rng.integers(14, 24)
            y[i][(rows - cy) ** 2 + (cols - cx) ** 2 < r**2] = 1
    return y, public_mask(n_cases, seed)


def write_truth(directory, y, public) -> Path:
    """``directory/private/test_truth.h5`` with the masks and the public flags."""
    path = Path(directory) / PRIVATE_DIR / TRUTH_H5
    write_split_h5(path, y=y, case_id=case_ids(TEST, len(y)), public=public, split=TEST,
                   attrs={"generator": "cohorts.classroom"})
    return path


def perturb(y, public, skill: float, rng, *, private_harder: bool = False) -> np.ndarray:
    """A prediction: each slice's tumour shifted by up to ``1 + (1 - skill) * 10`` pixels, sometimes
    missed, sometimes with a false blob.

    With ``private_harder`` (a class that overfits the public cases) public slices are
    shifted by at most 3 pixels and never missed or blotted, while private slices are
    shifted 30 more rows and tumour-free ones get a false blob: every public Dice is
    above 0.8 and every private one below 0.45.
    """
    pred = np.zeros_like(y)
    limit = 1 + int(round((1 - skill) * 10))
    for i in range(len(y)):
        dy, dx = (int(v) for v in rng.integers(-limit, limit + 1, size=2))
        miss = rng.random() < 0.15 * (1 - skill)
        blob = rng.random() < 0.2 * (1 - skill)
        if private_harder and public[i]:
            dy, dx, miss, blob = max(-3, min(3, dy)), max(-3, min(3, dx)), False, False
        elif private_harder:
            dy, miss, blob = dy + 30, False, True
        if not miss:
            pred[i] = np.roll(y[i], (dy, dx), axis=(0, 1))
        if blob:
            pred[i, 20:30, 20:30] = 1
    return pred


def make_class(
    out,
    *,
    n_teams: int = 24,
    per_team: tuple = (1, 4),
    n_cases: int = 9,
    seed: int = 0,
    hostile: bool = False,
    invalid_every: int = 5,
    manifest_every: int = 3,
    private_harder: bool = False,
    n_baselines: int = 2,
) -> dict:
    """Write a truth, a submissions folder and baselines below ``out``.

    Parameters
    ----------
    out : path-like
    n_teams : int
        Teams ``team-000``...; with ``hostile`` the first ones take :data:`HOSTILE_TEAMS`.
    per_team : (int, int)
        Range (inclusive) of valid submissions per team.
    n_cases : int
        Test slices of the truth.
    invalid_every : int
        Every k-th team also hands in an invalid file (0: none).
    manifest_every : int
        Every k-th team is dated by ``manifest.csv`` (with its last submission marked final);
        the others by file times (0: no manifest).
    private_harder : bool
        Predictions much worse on the private cases (see :func:`perturb`).
    n_baselines : int

    Returns
    -------
    dict
        ``truth`` (path), ``submissions`` (folder), ``baselines`` (folder or None), ``y``, ``public``,
        ``teams`` (names), ``n_files``.
    """
    out = Path(out)
    y, public = make_truth(n_cases, seed)
    truth = write_truth(out / "competition", y, public)
    subs = out / "submissions"
    subs.mkdir(parents=True, exist_ok=True)
    names = [f"team-{i:03d}" for i in range(n_teams)]
    if hostile:
        names[: len(HOSTILE_TEAMS)] = HOSTILE_TEAMS[:n_teams]
    manifest_rows, n_files = [], 0
    for t, team in enumerate(names):
        rng = np.random.default_rng([seed, 2, t])
        skill = float(rng.uniform(0.2, 1.0))
        team_dir = subs / team
        team_dir.mkdir(exist_ok=True)
        k = int(rng.integers(per_team[0], per_team[1] + 1))
        in_manifest = manifest_every and t % manifest_every == 0
        for j in range(k):
            when = START + timedelta(hours=int(t % 7) + 9 * j, minutes=int(rng.integers(0, 60)))
            pred = perturb(y, public, min(1.0, skill + 0.05 * j), rng, private_harder=private_harder)
            if j % 2:
                path = team_dir / f"sub-{j}.npy"
                buf = io.BytesIO()
                np.save(buf, pred)
                write_bytes(path, buf.getvalue())
            else:
                path = write_course_array(team_dir / f"sub-{j}.dat", pred, "y")
            _stamp(path, when)
            n_files += 1
            if in_manifest:
                manifest_rows.append((team, path.name, when, j == k - 1))
        if invalid_every and t % invalid_every == 1:
            bad = team_dir / "broken.dat"
            write_bytes(bad, b"\x01" * 1000)
            _stamp(bad, START + timedelta(hours=1))
            n_files += 1
    if manifest_rows:
        write_manifest(subs / MANIFEST_CSV, manifest_rows)
    bases = None
    if n_baselines:
        bases = out / "baselines"
        for b in range(n_baselines):
            rng = np.random.default_rng([seed, 3, b])
            pred = np.zeros_like(y) if b == 0 else perturb(y, public, 0.5, rng, private_harder=private_harder)
            name = "all-empty" if b == 0 else f"baseline-{b}"
            write_course_array(bases / name / "test_data_ypred.dat", pred, "y")
    return {"truth": truth, "submissions": subs, "baselines": bases, "y": y, "public": public,
            "teams": names, "n_files": n_files}


def _stamp(path: Path, when: datetime) -> None:
    ts = when.timestamp()
    os.utime(path, (ts, ts))
