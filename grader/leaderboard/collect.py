"""What goes into a leaderboard: the truth, the teams' submissions, the manifest, the daily quota.

A submissions folder holds one sub-folder per team::

    SUBMISSIONS/<team>/<any file>            (nested folders allowed)
    SUBMISSIONS/manifest.csv                 (optional: team, file, submitted_at, final)

Without a manifest (or for a file it does not list) a submission's time is its
file's modification time. Hidden names (a team folder or a file starting with
".") are never scored but listed as invalid rows (``hidden_name``) with the
reason, so nothing handed in disappears without a word; a symbolic link is never
followed (a link to the truth would score perfectly): it is handed to the
validator, which refuses it (``unsafe_file``). Team names are shown normalised,
with control characters escaped, look-alike letters of other scripts marked, and
the folder named whenever the shown name is not the folder's own (see
:func:`display_names`).
"""
from __future__ import annotations

import os
import posixpath
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from data_spec import LayoutError, MissingFileError, Truth, find_truth, load_truth
from data_spec.errors import check_range
from data_spec.manifest import MANIFEST_CSV, read_manifest
from grader.counts import Counts
from grader.scoring import INVALID, SCORED

OVER_QUOTA = "over_quota"
HIDDEN = "hidden_name"
#: How far in the future a manifest time may be (clock skew between machines) before a warning.
FUTURE_TOLERANCE = timedelta(days=1)


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
    #: Per-case values of the mask scores asked for (``--metrics``), by name, computed at scoring time.
    mask_scores: dict = field(default_factory=dict)

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


def _team_files(team_dir: Path, *, hidden: bool = False):
    """Every file below a team folder, sorted, without following links.

    With ``hidden=False`` names starting with "." (and what is below such folders)
    are left out; with ``hidden=True`` only those are given.
    """
    for root, dirs, files in os.walk(team_dir, followlinks=False):
        rel = Path(root).relative_to(team_dir).parts
        in_hidden = any(p.startswith(".") for p in rel)
        dirs.sort()
        for name in sorted(files):
            if (in_hidden or name.startswith(".")) == hidden:
                yield Path(root) / name
        for name in dirs:
            if (Path(root) / name).is_symlink() and (in_hidden or name.startswith(".")) == hidden:
                yield Path(root) / name


def _hidden_error(what: str) -> dict:
    return {"code": HIDDEN, "message": f"not scored: {what} starts with '.' (hidden)",
            "hint": "rename it without the leading dot and hand it in again"}


def _lstat_mtime(path: Path) -> datetime:
    try:
        return _utc(path.lstat().st_mtime)
    except OSError:  # vanished meanwhile: the scorer gives its verdict
        return _utc(0)


def _normalise_manifest(manifest: dict, notes: list) -> dict:
    """Manifest rows keyed by normalised paths (``./a1.dat`` is ``a1.dat``), each change and odd time noted."""
    out, now = {}, datetime.now(timezone.utc)
    for (team, name), (when, final) in manifest.items():
        norm = posixpath.normpath(name)
        if norm != name:
            notes.append(f"manifest: file {clean_text(name)!r} of team {clean_text(team)!r} read as {clean_text(norm)!r}")
        if norm.startswith("../") or norm == ".." or norm.startswith("/"):
            notes.append(f"manifest: file {clean_text(name)!r} of team {clean_text(team)!r} is outside the team's folder")
        if when > now + FUTURE_TOLERANCE:
            notes.append(f"manifest: {clean_text(team)!r}/{clean_text(norm)!r} is dated in the future "
                         f"({when.strftime('%Y-%m-%dT%H:%M:%SZ')})")
        if (team, norm) in out:
            notes.append(f"manifest: {clean_text(team)!r}/{clean_text(norm)!r} is listed twice (as written "
                         "differently); the first row is used")
            continue
        out[(team, norm)] = (when, final)
    return out


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
    notes, found, stray, hidden = [], [], 0, 0
    manifest = _normalise_manifest(read_manifest(manifest_path), notes) if manifest_path.is_file() else {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name == MANIFEST_CSV:
            continue
        if entry.is_symlink() or not entry.is_dir():
            stray += 1
            continue
        team = entry.name
        if team.startswith("."):
            files = list(_team_files(entry)) + list(_team_files(entry, hidden=True))
            for file in sorted(files):
                sub = Submission(team, file.relative_to(entry).as_posix(), None, _lstat_mtime(file),
                                 status=INVALID, errors=[_hidden_error(f"the team folder {clean_text(team)!r}")])
                manifest.pop((team, sub.name), None)
                found.append(sub)
            notes.append(f"team folder {clean_text(team)!r} starts with '.' (hidden): its {len(files)} file(s) "
                         "listed as invalid, not scored")
            hidden += 1
            continue
        for file in _team_files(entry):
            name = file.relative_to(entry).as_posix()
            sub = Submission(team, name, file, _lstat_mtime(file))
            if (team, name) in manifest:
                sub.submitted_at, sub.final = manifest.pop((team, name))
                sub.time_source = "manifest"
            found.append(sub)
        for file in _team_files(entry, hidden=True):
            name = file.relative_to(entry).as_posix()
            sub = Submission(team, name, None, _lstat_mtime(file), status=INVALID,
                             errors=[_hidden_error(f"the name {clean_text(name)!r}")])
            if (team, name) in manifest:
                sub.submitted_at, sub.final = manifest.pop((team, name))
                sub.time_source = "manifest"
            found.append(sub)
            hidden += 1
    if hidden:
        notes.append(f"{hidden} hidden name{'s' if hidden != 1 else ''} (starting with '.') listed as invalid, "
                     "not scored")
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
    check_range("per_day", per_day, 1)
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
            out.append(Submission(entry.stem, entry.name, entry, _lstat_mtime(entry)))
        elif entry.is_dir():
            files = [f for f in _team_files(entry) if f.is_file() and not f.is_symlink()]
            for f in files:
                label = entry.name if len(files) == 1 else f"{entry.name}/{f.relative_to(entry).as_posix()}"
                out.append(Submission(label, f.relative_to(directory).as_posix(), f, _lstat_mtime(f)))
    if not out:
        raise MissingFileError("no baseline submission found", path=directory, expected="DIR/<baseline>/<file>")
    return out


#: Letters of other scripts that look like ASCII ones (Unicode's confusables, the common part).
_LOOKALIKE = str.maketrans(
    "аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХІЈЅԜ" "αβεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ",
    "aeopcyxijsdhlqwABEKMHOPCTXIJSW" "aBeikvoptuxABEHIKMNOPTYXZ",
)


def _script(c: str) -> str:
    try:
        return unicodedata.name(c).split()[0]
    except ValueError:
        return "?"


def _escaped(text: str) -> str:
    """Every control, format or undecodable character as a visible escape (``\\x01``, ``\\u200b``)."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn")
                   else c for c in text)


def display_name(folder: str) -> tuple:
    """How a team folder's name is shown, and why it needs care.

    Returns
    -------
    (str, list of str)
        The name in NFKC form with control and invisible characters shown as
        escapes, and the reasons it is not simply the folder's name ("escaped",
        "normalised", "look-alike letters").
    """
    reasons = []
    raw = str(folder).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    norm = unicodedata.normalize("NFKC", raw)
    if norm != raw:
        reasons.append("normalised")
    shown = _escaped(norm) if "\ufffd" not in raw else _escaped(folder)
    if shown != norm:
        reasons.append("escaped")
    letters = {_script(c) for c in norm if c.isalpha()}
    if any(ord(c) > 127 for c in norm) and (len(letters) > 1 or norm.translate(_LOOKALIKE).isascii()):
        reasons.append("look-alike letters")
    return shown, reasons


def display_names(folders) -> dict:
    """Unique, unambiguous names for team folders: ``{folder: label}``.

    A name that is not exactly its folder's (normalised, escaped, or with
    look-alike letters of another script, such as a Cyrillic "а" in "аlpha") is
    marked and followed by the folder's escaped repr; names still equal after
    that are told apart the same way. Each label thus names its folder.
    """
    first = {f: display_name(f) for f in folders}
    counts: dict = {}
    for shown, _ in first.values():
        key = shown.translate(_LOOKALIKE).casefold()
        counts[key] = counts.get(key, 0) + 1
    out = {}
    for f, (shown, reasons) in first.items():
        clash = counts[shown.translate(_LOOKALIKE).casefold()] > 1
        if reasons or clash:
            marks = ", ".join(reasons + (["same name as another team"] if clash else []))
            folder = ascii(str(f).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
            out[f] = f"{shown} [folder {folder}: {marks}]"
        else:
            out[f] = shown
    return out
