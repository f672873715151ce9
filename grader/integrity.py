"""Integrity checks: files handed in by two teams, and predictions too alike to be independent.

Two signals, for the instructor to look into; neither changes a score or a rank:

- **identical files**: the same sha256 handed in by different teams (the first
  team to hand it in is named, with both times: the order is the full timestamp, then
  the caller's tie-break, e.g. the server's submission id, never a name);
- **near-identical predictions**: for every pair of teams, the Dice between
  their predictions, pooled over every pixel of every test slice (empty slices,
  where all teams agree, would otherwise push every pair towards 1). Each team
  contributes its selected submission (the final one) and its best public one;
  a pair of teams is flagged when its highest Dice reaches the threshold
  (default 0.98). The report also gives the median pairwise Dice, the typical
  agreement between independent teams, to weigh the flags against.

Code submissions have their own section (:func:`identical_code`): byte-identical
archives handed in by two teams, and archives whose ``submission.py`` is identical
(a copied model under another wrapper's bytes); and (:func:`near_identical_code`) the
predictions their jobs made on the hidden slices, compared as files' are.

:func:`integrity_report` takes scored submissions (the leaderboard's
:func:`~grader.leaderboard.build.collect_and_score`, or the server's recorded
entries) and a loader of their predictions; :func:`report_csv` writes the flags.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from statistics import median
from typing import Callable, Optional

import numpy as np

from data_spec import KitError
from data_spec.errors import BadArgumentError
from grader.leaderboard.collect import clean_text
from grader.leaderboard.render import csv_cell
from grader.leaderboard.ranking import order_key
from grader.leaderboard.select import select_submissions

DEFAULT_THRESHOLD = 0.98
IDENTICAL, NEAR = "identical_file", "near_identical"
#: The code section's kinds: the same archive, or the same ``submission.py`` in different archives.
IDENTICAL_ARCHIVE, IDENTICAL_MODULE = "identical_archive", "identical_submission_py"
#: Code submissions of two teams whose jobs predicted near-identical masks (not the same archive).
NEAR_CODE = "near_identical_code"
COLUMNS = ("kind", "team_a", "submission_a", "submitted_at_a", "team_b", "submission_b", "submitted_at_b",
           "dice", "sha256_a", "sha256_b")


@dataclass(frozen=True)
class Flag:
    """One flagged pair; ``a`` is the earlier submission."""

    kind: str
    team_a: str
    submission_a: str
    submitted_at_a: str
    team_b: str
    submission_b: str
    submitted_at_b: str
    dice: Optional[float]
    sha256_a: str
    sha256_b: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in COLUMNS}


@dataclass
class IntegrityReport:
    """What :func:`integrity_report` found."""

    flags: list
    threshold: float
    teams: int
    compared: int
    pairs: int
    median_dice: Optional[float]
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "teams": self.teams, "compared": self.compared,
                "pairs": self.pairs, "median_pairwise_dice": self.median_dice,
                "identical_files": sum(1 for f in self.flags if f.kind == IDENTICAL),
                "near_identical": sum(1 for f in self.flags if f.kind == NEAR),
                "identical_code": sum(1 for f in self.flags if f.kind in (IDENTICAL_ARCHIVE, IDENTICAL_MODULE)),
                "near_identical_code": sum(1 for f in self.flags if f.kind == NEAR_CODE),
                "flags": [f.to_dict() for f in self.flags], "notes": list(self.notes)}


def _time(sub) -> str:
    """The time of a submission, to the millisecond when it has one (two copies 32 ms apart read apart).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from types import SimpleNamespace
    >>> _time(SimpleNamespace(submitted_at=datetime(2026, 11, 2, 9, 0, 0, 32000, tzinfo=timezone.utc)))
    '2026-11-02T09:00:00.032Z'
    >>> _time(SimpleNamespace(submitted_at=datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)))
    '2026-11-02T09:00:00Z'
    """
    when = sub.submitted_at
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def arrival(sub) -> tuple:
    """The default order of submissions: their full timestamp, then team and file name (the offline tie-break)."""
    return (sub.submitted_at, sub.team, sub.name)


def _flag(kind, a, b, dice, order: Callable = arrival) -> Flag:
    if order(b) < order(a):
        a, b = b, a
    return Flag(kind, clean_text(a.team), clean_text(a.name), _time(a), clean_text(b.team), clean_text(b.name),
                _time(b), None if dice is None else round(float(dice), 4), a.sha256 or "", b.sha256 or "")


def identical_files(submissions, order: Callable = arrival) -> list:
    """Every later team's copy of a file first handed in by another team (valid or not), in ``order``."""
    return _copies(submissions, lambda s: s.sha256, IDENTICAL, order)


def _copies(submissions, key: Callable, kind: str, order: Callable) -> list:
    """Every later team's submission whose ``key`` another team's earlier one has: a flag of ``kind``."""
    by_hash: dict = {}
    for s in submissions:
        if key(s):
            by_hash.setdefault(key(s), []).append(s)
    flags = []
    for subs in by_hash.values():
        subs = sorted(subs, key=order)
        first_of_team: dict = {}
        for s in subs:
            first_of_team.setdefault(s.team, s)
        firsts = list(first_of_team.values())
        flags += [_flag(kind, firsts[0], later, 1.0, order) for later in firsts[1:]]
    return flags


def module_sha256(archive) -> Optional[str]:
    """The sha256 of a code archive's ``submission.py``; None for an archive the package check refuses.

    The archive is unpacked by the same hostile-input checks as a job's
    (:func:`grader.code.package.unpack_submission`), into a temporary folder.

    Examples
    --------
    >>> import tempfile, pathlib, zipfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
    ...     z.writestr("team/submission.py", "def predict(x):\\n    return x[..., 0] > 0\\n")
    >>> module_sha256(d / "a.zip")[:12], module_sha256(d / "missing.zip")
    ('24705210f17a', None)
    """
    import hashlib
    import shutil
    import tempfile
    from pathlib import Path

    from grader.code.package import SUBMISSION_MODULE, unpack_submission

    work = Path(tempfile.mkdtemp(prefix="brats-integrity-"))
    try:
        folder = unpack_submission(archive, work / "code")
        return hashlib.sha256((folder / SUBMISSION_MODULE).read_bytes()).hexdigest()
    except KitError:
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def identical_code(submissions, archive_of: Callable, order: Callable = arrival) -> list:
    """The code section: byte-identical archives, then identical ``submission.py`` in different archives.

    ``archive_of(submission)`` is the stored archive's path. Each distinct archive is unpacked once.
    """
    flags = _copies(submissions, lambda s: s.sha256, IDENTICAL_ARCHIVE, order)
    modules: dict = {}
    for s in submissions:
        if s.sha256 and s.sha256 not in modules:
            modules[s.sha256] = module_sha256(archive_of(s))
    same_module = _copies(submissions, lambda s: modules.get(s.sha256), IDENTICAL_MODULE, order)
    return flags + [f for f in same_module if f.sha256_a != f.sha256_b]


def candidates(submissions) -> dict:
    """Team -> its selected (final) submission and its best public one (one entry if they are the same)."""
    out = {}
    for team, sel in select_submissions(submissions).items():
        valid = [s for s in submissions if s.team == team and s.valid]
        best = min(valid, key=lambda s: order_key(s, "public", s.name))
        out[team] = [sel.submission] + ([best] if best is not sel.submission else [])
    return out


def pooled_dice_matrix(masks, *, chunk: int = 1 << 16) -> np.ndarray:
    """Dice between every two masks, pooled over all their pixels (two empty masks: 1).

    Only the pixels some mask marks matter: every intersection comes from one
    matrix product over them, a chunk of columns at a time (float32 sums of at
    most ``chunk`` ones are exact), so memory stays at masks x chunk.
    """
    flat = [np.asarray(m, dtype=bool).ravel() for m in masks]
    n = len(flat)
    marked = np.zeros(flat[0].shape, dtype=bool) if flat else np.zeros(0, dtype=bool)
    for f in flat:
        marked |= f
    cols = np.flatnonzero(marked)
    inter = np.zeros((n, n))
    for start in range(0, len(cols), chunk):
        part = cols[start:start + chunk]
        x = np.stack([f[part] for f in flat]).astype(np.float32)
        inter += x @ x.T
    size = np.diag(inter).copy()
    total = size[:, None] + size[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / total, 1.0)


def near_identical_code(submissions, load: Callable, *, threshold: float = DEFAULT_THRESHOLD,
                        order: Callable = arrival) -> list:
    """Code submissions of two teams whose predictions on the hidden slices are near-identical.

    The file section's rule (:func:`integrity_report`: each team's selected and best public
    submission, pooled Dice at or above ``threshold``) on the predictions the jobs returned
    (``load(submission)``); a pair handing in the same archive is :func:`identical_code`'s.
    """
    report = integrity_report(submissions, load, threshold=threshold, order=order)
    return [replace(f, kind=NEAR_CODE) for f in report.flags if f.kind == NEAR]


def integrity_report(submissions, load: Callable, *, threshold: float = DEFAULT_THRESHOLD,
                     order: Callable = arrival) -> IntegrityReport:
    """Flag identical files and near-identical predictions between teams.

    Parameters
    ----------
    submissions : list of grader.leaderboard.collect.Submission
        Scored (status, sha256, public scores for valid ones), from
        the offline leaderboard or the server.
    load : callable
        ``load(submission) -> ndarray (N, 240, 240)``: the predictions of a valid submission.
    threshold : float
        Pooled Dice at or above which a pair of teams is flagged.
    order : callable
        ``order(submission) -> key``: which of two submissions came first (the earlier one
        is named first). Default :func:`arrival`; the server passes the full timestamp and its id.
    """
    if not 0 < threshold <= 1:
        raise BadArgumentError(f"the threshold must be in (0, 1], got {threshold}", expected="0 < threshold <= 1")
    flags = identical_files(submissions, order)
    per_team = candidates(submissions)
    entries = [(team, s) for team in sorted(per_team) for s in per_team[team]]
    # Each distinct file is read once, however many teams handed it in.
    cache: dict = {}
    masks = []
    for _, s in entries:
        key = s.sha256 or id(s)
        if key not in cache:
            cache[key] = load(s)
        masks.append(cache[key])
    pair_best: dict = {}
    if len(entries) > 1:
        dice = pooled_dice_matrix(masks)
        for i, (ta, sa) in enumerate(entries):
            for j in range(i + 1, len(entries)):
                tb, sb = entries[j]
                if ta == tb:
                    continue
                if (ta, tb) not in pair_best or dice[i, j] > pair_best[(ta, tb)][0]:
                    pair_best[(ta, tb)] = (float(dice[i, j]), sa, sb)
    identical_pairs = {frozenset((f.team_a, f.team_b)) for f in flags}
    for (ta, tb), (d, sa, sb) in sorted(pair_best.items()):
        same_file = sa.sha256 and sa.sha256 == sb.sha256
        if d >= threshold and not (same_file and frozenset((clean_text(ta), clean_text(tb))) in identical_pairs):
            flags.append(_flag(NEAR, sa, sb, d, order))
    flags.sort(key=lambda f: (f.kind != IDENTICAL, -(f.dice or 0), f.team_a, f.team_b))
    typical = median(d for d, _, _ in pair_best.values()) if pair_best else None
    notes = []
    if len(per_team) < 2:
        notes.append("fewer than two teams with a valid submission: no pair to compare")
    return IntegrityReport(flags, threshold, len({s.team for s in submissions}), len(per_team), len(pair_best),
                           None if typical is None else round(typical, 4), notes)


def report_csv(report: IntegrityReport) -> str:
    """The flagged pairs as CSV (names guarded against spreadsheet formulas)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for f in report.flags:
        writer.writerow([csv_cell(getattr(f, k)) for k in COLUMNS])
    return buf.getvalue()


def load_prediction(path, n_slices: int) -> np.ndarray:
    """The predictions of a file already scored valid (read through the validator, never trusted)."""
    from grader.validate import validate_submission

    v = validate_submission(path, n_slices=n_slices)
    if not v.ok:
        raise KitError(f"a file scored valid no longer validates: {v.errors[0]}", code="changed_file",
                       path=path)
    return v.y_pred
