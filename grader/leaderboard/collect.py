"""What goes into a leaderboard: the truth, the teams' submissions, the manifest, the daily quota.

A submissions folder holds one sub-folder per team::

    SUBMISSIONS/<team>/<any file>            (nested folders allowed)
    SUBMISSIONS/manifest.csv                 (optional: team, file, submitted_at, final)

Without a manifest (or for a file it does not list) a submission's time is its
file's modification time. Hidden names (starting with ".") are skipped; a
symbolic link is never followed (a link to the truth would score perfectly): it
is handed to the validator, which refuses it (``unsafe_file``).
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from data_spec import KitError, LayoutError, MissingFileError, Truth, find_truth, load_truth
from data_spec.manifest import MANIFEST_CSV, read_manifest
from grader.counts import Counts
from grader.scoring import INVALID, SCORED

OVER_QUOTA = "over_quota"


def load_board_truth(path, *, seed: int = 0) -> Truth:
    """The truth for a leaderboard: :func:`data_spec.load_truth` from a path, with at least one public case.

    A course truth (``test_data_y.dat``) has no flags: they are derived from
    ``seed`` and the truth file's sha256, and ``public_source`` says so.

    Raises
    ------
    MissingFileError, LayoutError, CorruptFileError
        No truth there, masks that are not 0/1, or no public case.
    """
    truth = load_truth(find_truth(path), seed=seed)
    if not truth.public.any():
        raise LayoutError("the truth marks no test case public", path=truth.path, expected="at least one public case")
    return truth


@dataclass
class Submission:
    """One file handed in by one team, and what became of it.

    ``team`` and ``name`` are the raw folder and file names (use :func:`clean_text` to
    show them); ``name`` is relative to the team's folder, with "/" separators.
    """

    team: str
    name: str
    path: Optional[Path]
    submitted_at: datetime
    final: Optional[bool] = None
    time_source: str = "mtime"
    sha256: Optional[str] = None
    status: Optional[str] = None
    errors: list = field(default_factory=list)
    counts: Optional[Counts] = None
    scores: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status == SCORED

    @property
    def order(self) -> tuple:
        """Deterministic order within a team: time, then file name."""
        return (self.submitted_at, self.name)

    @property
    def time_text(self) -> str:
        return self.submitted_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_text(text: str) -> str:
    """A name or message made safe to show: valid UTF-8, no control or bidi-override characters.

    File names may hold undecodable bytes (kept by Python as surrogates), newlines
    or right-to-left overrides; each such character becomes U+FFFD. Escaping for
    HTML, Markdown or CSV happens in the renderers.
    """
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)


def _utc(ts: float) -> datetime:
    # Whole seconds: what a platform export holds, and what the pages show.
    return datetime.fromtimestamp(int(ts), tz=timezone.utc)


def _team_files(team_dir: Path):
    """Every non-hidden file below a team folder, sorted, without following links."""
    for root, dirs, files in os.walk(team_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name
        for name in dirs:
            if (Path(root) / name).is_symlink():
                yield Path(root) / name


def collect_submissions(root) -> tuple:
    """List every team's submissions under ``root``.

    Returns
    -------
    submissions : list of Submission
        Sorted by team, time, file name. Manifest rows whose file is missing come
        back with ``status="invalid"`` and their error.
    notes : list of str
        What was ignored, and why.

    Raises
    ------
    MissingFileError
        ``root`` is not a directory.
    LayoutError
        A malformed manifest.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError("no such submissions folder", path=root, expected="SUBMISSIONS/<team>/<file>")
    manifest_path = root / MANIFEST_CSV
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else {}
    notes, found, stray = [], [], 0
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name == MANIFEST_CSV:
            continue
        if entry.is_symlink() or not entry.is_dir():
            stray += 1
            continue
        team = entry.name
        for file in _team_files(entry):
            name = file.relative_to(entry).as_posix()
            sub = Submission(team, name, file, _utc(file.lstat().st_mtime))
            if (team, name) in manifest:
                sub.submitted_at, sub.final = manifest.pop((team, name))
                sub.time_source = "manifest"
            found.append(sub)
    if stray:
        notes.append(f"ignored {stray} entr{'y' if stray == 1 else 'ies'} outside team folders")
    for (team, name), (when, final) in sorted(manifest.items()):
        found.append(
            Submission(
                team, name, None, when, final, "manifest", status=INVALID,
                errors=[{"code": "missing_file", "message": f"listed in {MANIFEST_CSV} but not found"}],
            )
        )
    found.sort(key=lambda s: (s.team, s.submitted_at, s.name))
    return found, notes


def apply_quota(submissions, per_day: Optional[int]) -> int:
    """Mark each team's valid submissions beyond ``per_day`` per UTC day as over quota.

    Invalid submissions never count. Within a day the earliest submissions (then
    file names) are kept. Returns how many were marked.
    """
    if per_day is None:
        return 0
    if per_day < 1:
        raise KitError(f"per_day must be at least 1, got {per_day}", code="bad_option")
    used: dict = {}
    marked = 0
    for sub in sorted((s for s in submissions if s.valid), key=lambda s: (s.team, s.order)):
        day = (sub.team, sub.submitted_at.date())
        used[day] = used.get(day, 0) + 1
        if used[day] > per_day:
            sub.status = OVER_QUOTA
            sub.errors = [{
                "code": "over_quota",
                "message": f"ignored: over the quota of {per_day} valid submission{'s' if per_day > 1 else ''} "
                f"per day ({day[1].isoformat()} UTC)",
            }]
            marked += 1
    return marked


def collect_baselines(directory) -> list:
    """Reference submissions: ``DIR/<baseline>/<file>`` or ``DIR/<baseline>.<ext>``.

    A baseline folder with one file is named after the folder; with several, each
    file is a row named ``<folder>/<file>``. Baselines are scored like teams and
    shown as reference rows, never ranked.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingFileError("no such baselines folder", path=directory, expected="DIR/<baseline>/<file>")
    out = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_file():
            out.append(Submission(entry.stem, entry.name, entry, _utc(entry.stat().st_mtime)))
        elif entry.is_dir():
            files = [f for f in _team_files(entry) if f.is_file() and not f.is_symlink()]
            for f in files:
                label = entry.name if len(files) == 1 else f"{entry.name}/{f.relative_to(entry).as_posix()}"
                out.append(Submission(label, f.relative_to(directory).as_posix(), f, _utc(f.stat().st_mtime)))
    if not out:
        raise MissingFileError("no baseline submission found", path=directory, expected="DIR/<baseline>/<file>")
    return out
