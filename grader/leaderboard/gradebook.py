"""The gradebook: one row per student, with the team's final private score turned into marks.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "roster.csv").write_text("student_id,name,email,team\\n1,Ada,ada@example.org,owls\\n"
...                                        "2,Bob,bob@example.org,larks\\n", encoding="utf-8")
>>> roster = read_roster(folder / "roster.csv")
>>> # The revealed board's private scores: LeaderboardSummary.board, or scores_from_site(SITE).
>>> scores = BoardScores({"owls": 0.82, "larks": None}, {"flair-threshold": 0.6, "svm": 0.9})
>>> book = make_gradebook(roster, scores, parse_scale("linear:20"))
>>> [(r.student.name, r.grade, r.status) for r in book.rows]
[('Ada', 14.67, 'graded'), ('Bob', None, 'no valid submission')]
>>> make_gradebook(roster, scores, parse_scale("linear:20"), zeros=True).rows[1].grade
0.0
>>> write_gradebook(folder / "grades-moodle.csv", book, "moodle")["graded"]
1

Formats (checked against the platforms' own documentation):

- ``moodle``: Moodle's CSV grade import (Grades > Import > CSV file). A header row,
  then one row per student: ``ID number``, ``Email address``, ``Full name`` and one
  grade column. On import, map "Email address" to ``useremail`` (or "ID number" to
  ``useridnumber``) and the grade column to a new or existing grade item. Moodle
  takes no comment line, so the scale is stated in the README beside the file.
- ``canvas``: Canvas's gradebook import layout: ``Student``, ``ID``, ``SIS User ID``,
  ``SIS Login ID``, ``Section``, then one assignment column, and a second
  ``Points Possible`` row (as in Canvas's own export) giving the full marks. The kit
  knows no Canvas user id: ``ID`` and ``Section`` stay empty, Canvas matches the
  student on ``SIS User ID`` (the roster's student_id) or ``SIS Login ID`` (the e-mail).
- ``csv``: plain ``student_id, name, email, team, score, grade, status``.

Every text cell is guarded against spreadsheet formulas (a leading ``'`` before
``= + - @``, tab or CR). Before the reveal there is no gradebook: grades come
from the private cases only.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_spec import KitError, LayoutError, MissingFileError
from data_spec.errors import BadArgumentError, check_choice
from plumbing.atomic import write_text

from .collect import display_names
from .render import csv_cell

ROSTER_COLUMNS = ("student_id", "name", "email", "team")
FORMATS = ("moodle", "canvas", "csv")
#: The baseline whose score is worth no marks under the default scale.
FLOOR_BASELINE = "flair-threshold"
DEFAULT_SCALE = "linear:100"
DEFAULT_ASSIGNMENT = "BraTS competition"
#: First line of every README the kit writes beside a gradebook (so a rerun may replace both).
README_MARKER = "brats-kit gradebook"
NO_SUBMISSION = "no valid submission"


class RosterError(LayoutError):
    """The roster CSV is unreadable or inconsistent (the line is in ``where``)."""

    code = "bad_roster"


class NotRevealedError(KitError):
    """Grades are asked for before the private leaderboard is revealed."""

    code = "not_revealed"


class ScaleError(KitError):
    """A ``--scale`` that cannot be read, or whose reference points are missing."""

    code = "bad_scale"


@dataclass(frozen=True)
class Student:
    """One roster line."""

    student_id: str
    name: str
    email: str
    team: str
    line: int


def read_roster(path) -> list:
    """Read ``student_id,name,email,team`` (UTF-8, header row; extra columns ignored).

    Raises
    ------
    MissingFileError
        No such file.
    RosterError
        Not UTF-8, a missing column, an empty field, a student id or e-mail listed
        twice, or no student at all; ``where`` names the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MissingFileError("no roster file", path=path, expected=",".join(ROSTER_COLUMNS)) from None
    except UnicodeDecodeError:
        raise RosterError("the roster is not UTF-8 text", path=path, hint="export it as 'CSV UTF-8'") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ROSTER_COLUMNS if c not in header]
    if missing:
        raise RosterError(f"the roster lacks the column(s) {', '.join(missing)}", path=path, where="line 1",
                          expected=",".join(ROSTER_COLUMNS))
    reader.fieldnames = header
    students, ids, emails = [], {}, {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise RosterError("a row has more cells than the header", path=path, where=f"line {line}")
            if not any((v or "").strip() for v in row.values()):
                continue
            values = {c: (row.get(c) or "").strip() for c in ROSTER_COLUMNS}
            empty = [c for c in ROSTER_COLUMNS if not values[c]]
            if empty:
                raise RosterError(f"empty {', '.join(empty)}", path=path, where=f"line {line}",
                                  expected="every student with a student_id, name, email and team")
            if "@" not in values["email"]:
                raise RosterError(f"{values['email']!r} is not an e-mail address", path=path, where=f"line {line}")
            for key, seen in (("student_id", ids), ("email", emails)):
                folded = values[key].casefold() if key == "email" else values[key]
                if folded in seen:
                    raise RosterError(f"{key} {values[key]!r} already on line {seen[folded]}", path=path,
                                      where=f"line {line}", hint="one line per student")
                seen[folded] = line
            students.append(Student(line=line, **values))
    except csv.Error as exc:
        raise RosterError(f"not a CSV file ({exc})", path=path, where=f"line {reader.line_num}") from None
    if not students:
        raise RosterError("the roster lists no student", path=path, expected=",".join(ROSTER_COLUMNS))
    return students


# ----------------------------------------------------------------------------- scores


@dataclass
class BoardScores:
    """The final (private) scores a gradebook is made from.

    ``teams`` maps a team to its selected submission's private Dice (None: no valid
    submission); ``baselines`` maps a baseline to its private Dice.
    """

    teams: dict
    baselines: dict
    revealed: bool = True
    source: str = ""


def _uncell(text: str) -> str:
    """Undo the renderers' formula guard (a quote added before ``= + - @``, tab, CR)."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@", "\t", "\r") else text


def _read_csv(path: Path) -> tuple:
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
        return list(reader), reader.fieldnames or []
    except FileNotFoundError:
        raise MissingFileError("not a leaderboard site (no such file)", path=path,
                               hint="build it first: brats-kit leaderboard SUBMISSIONS --truth ... --out SITE --reveal"
                               ) from None


def scores_from_site(site) -> BoardScores:
    """The private scores of a site written by ``brats-kit leaderboard --reveal``.

    Raises
    ------
    NotRevealedError
        The site is a public board: grades wait for the reveal.
    """
    site = Path(site)
    rows, row_cols = _read_csv(site / "leaderboard.csv")
    grades, grade_cols = _read_csv(site / "grades.csv")
    if "private_dice" not in row_cols or "private_dice" not in grade_cols:
        raise NotRevealedError("the leaderboard is not revealed: grades come from the private cases only",
                               path=site, hint="rebuild the site with --reveal once submissions are closed")
    teams = {}
    for g in grades:
        value = g.get("private_dice") or ""
        teams[_uncell(g["team"])] = float(value) if value else None
    baselines = {_uncell(r["team"]): float(r["private_dice"]) for r in rows if r.get("kind") == "baseline"}
    return BoardScores(teams, baselines, True, str(site))


# ----------------------------------------------------------------------------- scale

_NUM = r"[0-9]*\.?[0-9]+"
_THRESHOLD = re.compile(rf"^\s*({_NUM})\s*:\s*({_NUM})\s*$")


@dataclass(frozen=True)
class Scale:
    """How a score becomes marks.

    ``kind`` "linear": marks rise linearly from ``low`` (0 marks) to ``high`` (full
    marks), clipped to [0, full]; each reference is a score or a baseline name
    (``best`` = the best baseline). ``kind`` "thresholds": ``steps`` ``(score, marks)``,
    a score earns the marks of the highest threshold it reaches (0 below all).
    """

    kind: str
    full: float
    low: object = FLOOR_BASELINE
    high: object = "best"
    steps: tuple = ()
    text: str = DEFAULT_SCALE


def parse_scale(text: Optional[str]) -> Scale:
    """Read ``--scale``.

    Forms: ``linear[:MARKS]`` (default ``linear:100``: the flair-threshold baseline's
    score = 0, the best baseline's = MARKS), ``linear:LOW..HIGH:MARKS`` (LOW, HIGH: scores
    or baseline names, ``best`` for the best baseline), or a table of thresholds
    ``0.6:10,0.7:14,0.8:18,0.85:20``.

    Examples
    --------
    >>> s = parse_scale("0.6:10,0.7:14,0.85:20")
    >>> resolve_scale(s, {}).marks(0.75), resolve_scale(s, {}).marks(0.5)
    (14.0, 0.0)
    >>> resolve_scale(parse_scale("linear:20"), {"flair-threshold": 0.6, "svm": 0.8}).marks(0.7)
    10.0
    """
    text = (text or DEFAULT_SCALE).strip()
    usage = ("'linear:100', 'linear:0.6..0.85:20', 'linear:flair-threshold..best:20' "
             "or thresholds '0.6:10,0.7:14,0.8:18,0.85:20'")
    if text.startswith("linear"):
        parts = text.split(":")
        if parts[0] != "linear" or len(parts) > 3:
            raise ScaleError(f"cannot read the scale {text!r}", expected=usage)
        low, high, full = FLOOR_BASELINE, "best", 100.0
        if len(parts) == 3:
            if ".." not in parts[1]:
                raise ScaleError(f"cannot read the reference points {parts[1]!r}", expected="LOW..HIGH")
            low, high = (_reference(p.strip()) for p in parts[1].split("..", 1))
        if len(parts) >= 2:
            full = _marks(parts[-1], usage)
        if isinstance(low, float) and isinstance(high, float) and not low < high:
            raise ScaleError(f"the scale's low point {low} is not below its high point {high}")
        return Scale("linear", full, low, high, (), text)
    steps = []
    for item in text.split(","):
        m = _THRESHOLD.match(item)
        if not m:
            raise ScaleError(f"cannot read {item.strip()!r} in the scale {text!r}", expected=usage)
        steps.append((float(m.group(1)), float(m.group(2))))
    scores = [s for s, _ in steps]
    if scores != sorted(set(scores)) or [m for _, m in steps] != sorted(m for _, m in steps):
        raise ScaleError(f"the thresholds of {text!r} must rise, with marks that never fall")
    if any(s > 1 for s in scores):
        raise ScaleError(f"a threshold of {text!r} is above 1, the best Dice")
    return Scale("thresholds", steps[-1][1], None, None, tuple(steps), text)


def _reference(part: str):
    try:
        return float(part)
    except ValueError:
        if not part:
            raise ScaleError("an empty reference point in the scale", expected="a score or a baseline name") from None
        return part


def _marks(part: str, usage: str) -> float:
    try:
        full = float(part)
    except ValueError:
        raise ScaleError(f"full marks {part!r} is not a number", expected=usage) from None
    if not (math.isfinite(full) and full > 0):
        raise ScaleError(f"full marks must be above 0, got {part!r}")
    return full


@dataclass(frozen=True)
class ResolvedScale:
    """A scale with its reference points as scores, and the sentence that states it."""

    scale: Scale
    low: Optional[float]
    high: Optional[float]
    statement: str

    def marks(self, score: Optional[float]) -> float:
        if score is None:
            return 0.0
        s = self.scale
        if s.kind == "linear":
            return round(s.full * min(1.0, max(0.0, (score - self.low) / (self.high - self.low))), 2)
        earned = [m for t, m in s.steps if score >= t]
        return earned[-1] if earned else 0.0


def resolve_scale(scale: Scale, baselines: dict) -> ResolvedScale:
    """Turn baseline names into their scores; refuse a missing baseline or reversed points."""
    if scale.kind == "thresholds":
        table = ", ".join(f"Dice >= {t:g}: {m:g}" for t, m in scale.steps)
        return ResolvedScale(scale, None, None, f"Thresholds on the private Dice ({table}); below "
                                                f"{scale.steps[0][0]:g}: 0. Full marks: {scale.full:g}.")

    def score_of(ref, role):
        if isinstance(ref, float):
            return ref, f"{ref:g}"
        if ref == "best":
            if not baselines:
                raise ScaleError("the scale needs the best baseline's score, and the board has no baseline",
                                 hint="build the leaderboard with --baselines, or give scores: linear:0.6..0.85:20")
            name = max(baselines, key=lambda b: (baselines[b], b))
            return baselines[name], f"the best baseline ({name}, {baselines[name]:.4f})"
        if ref not in baselines:
            shown = ", ".join(sorted(baselines)) or "none"
            raise ScaleError(f"the scale's {role} point is the baseline {ref!r}, which is not on the board",
                             expected=f"one of: {shown}",
                             hint="build the leaderboard with --baselines, or give scores: linear:0.6..0.85:20")
        return baselines[ref], f"the {ref} baseline ({baselines[ref]:.4f})"

    low, low_text = score_of(scale.low, "low")
    high, high_text = score_of(scale.high, "high")
    if not low < high:
        raise ScaleError(f"the scale's low point ({low_text}) is not below its high point ({high_text})",
                         hint="give the reference scores yourself: linear:0.6..0.85:20")
    return ResolvedScale(scale, low, high, (
        f"Linear on the private Dice: {low_text} = 0 marks, {high_text} = {scale.full:g} marks "
        "(full marks), clipped to that range; rounded to 0.01."))


# ----------------------------------------------------------------------------- the book


@dataclass
class GradeRow:
    student: Student
    score: Optional[float]
    grade: Optional[float]  # None: no valid submission, an empty cell (unless the book gives zeros)
    status: str


@dataclass
class Gradebook:
    """One row per roster student, in roster order, and what did not match."""

    rows: list
    scale: ResolvedScale
    unmatched_teams: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    zeros: bool = False


def make_gradebook(roster: list, scores: BoardScores, scale: Scale, *, zeros: bool = False) -> Gradebook:
    """Join the roster to each team's final private score.

    A student whose team has no valid submission (or is not on the board) gets an
    empty grade (0 marks when ``zeros``) and says why; teams on the board with no student, and roster teams absent
    from the board (a misspelt team?), are listed in ``notes``.

    Raises
    ------
    NotRevealedError
        ``scores`` are not the revealed private ones.
    """
    if not scores.revealed:
        raise NotRevealedError("the leaderboard is not revealed: grades come from the private cases only",
                               hint="reveal first (brats-kit leaderboard --reveal, or brats-kit server reveal)")
    resolved = resolve_scale(scale, scores.baselines)
    rows = []
    # A site shows each team folder under its display name (normalised, escaped, marked when it needs care):
    # a roster team matches its own name (the server's data) or the name the site shows for it.
    labels = display_names({st.team for st in roster})
    key = {st.team: st.team if st.team in scores.teams else labels[st.team] for st in roster}
    for st in roster:
        team = key[st.team]
        score = scores.teams.get(team)
        # A team that handed in nothing valid may be absent from an offline board: the same status either way.
        status = "graded" if score is not None else NO_SUBMISSION
        rows.append(GradeRow(st, score, resolved.marks(score) if score is not None or zeros else None, status))
    rostered = set(key.values())
    unmatched = sorted(t for t in scores.teams if t not in rostered)
    notes = [f"team {t!r} is on the leaderboard but has no student in the roster" for t in unmatched]
    notes += [f"roster team {t!r} is not on the leaderboard (no submission at all, or a misspelt name?)"
              for t in sorted(rostered - set(scores.teams))]
    notes += [f"{sum(1 for r in rows if r.status != 'graded')} student(s) without a score "
              f"({'0 marks' if zeros else 'empty grade'})"] if any(r.status != "graded" for r in rows) else []
    return Gradebook(rows, resolved, unmatched, notes, zeros)


def _score_cell(score: Optional[float]):
    return None if score is None else round(score, 4)


def _table(header: list, records: list) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([csv_cell(h) for h in header])
    for rec in records:
        writer.writerow([csv_cell(v) for v in rec])
    return buf.getvalue()


def render_gradebook(book: Gradebook, fmt: str, *, assignment: str = DEFAULT_ASSIGNMENT) -> str:
    """The gradebook as CSV text in ``fmt`` (``moodle``, ``canvas`` or ``csv``); CRLF line ends, as RFC 4180."""
    if fmt == "moodle":
        return _table(["ID number", "Email address", "Full name", assignment],
                      [[r.student.student_id, r.student.email, r.student.name, r.grade] for r in book.rows])
    if fmt == "canvas":
        records = [["Points Possible", None, None, None, None, book.scale.scale.full]]
        records += [[r.student.name, None, r.student.student_id, r.student.email, None, r.grade] for r in book.rows]
        return _table(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment], records)
    if fmt == "csv":
        return _table(["student_id", "name", "email", "team", "score", "grade", "status"],
                      [[r.student.student_id, r.student.name, r.student.email, r.student.team,
                        _score_cell(r.score), r.grade, r.status] for r in book.rows])
    check_format(fmt)
    raise AssertionError(fmt)  # pragma: no cover - check_format refused it


def check_format(fmt: str) -> None:
    """Refuse a gradebook format other than :data:`FORMATS` (:class:`~data_spec.errors.BadArgumentError`)."""
    check_choice("gradebook format", fmt, FORMATS)


_IMPORT_STEPS = {
    "moodle": ("Moodle: Grades > Import > CSV file; upload this file (separator: comma, encoding UTF-8).\n"
               "Identify users by mapping 'Email address' to 'useremail' (or 'ID number' to 'useridnumber',\n"
               "if your students' ID number field is filled in); map the grade column '{a}' to a new or\n"
               "existing grade item whose maximum grade is {full:g}."),
    "canvas": ("Canvas: Grades > Import; upload this file. Canvas matches students on 'SIS User ID' (the\n"
               "roster's student_id) or 'SIS Login ID' (the roster's e-mail); 'ID' and 'Section' are left\n"
               "empty. The column '{a}' becomes (or updates) an assignment; the 'Points Possible' row\n"
               "gives its full marks ({full:g})."),
    "csv": ("Plain CSV: student_id, name, email, team, score (the team's private Dice), grade (marks),\n"
            "status (graded, or no valid submission: an empty grade, 0 marks with --zeros)."),
}


def readme_text(book: Gradebook, fmt: str, file_name: str, *, assignment: str = DEFAULT_ASSIGNMENT,
                source: str = "") -> str:
    """The README written beside a gradebook: what it holds, the scale, how to import it."""
    graded = sum(1 for r in book.rows if r.status == "graded")
    lines = [
        f"{README_MARKER}: {file_name} ({fmt})",
        "",
        "PRIVATE: names and e-mail addresses of the roster. Do not publish.",
        "",
        f"One row per student ({len(book.rows)}; {graded} with a score): the final private Dice of the",
        "team's selected submission (its chosen finals, the best public among them; otherwise its best",
        "public submission), turned into marks.",
        "",
        "Scale: " + book.scale.statement,
        ("A student whose team has no valid submission gets 0 marks (asked for: --zeros)." if book.zeros else
         "A student whose team has no valid submission gets an empty grade, not 0 (--zeros gives 0 marks)."),
        "",
        _IMPORT_STEPS[fmt].format(a=assignment, full=book.scale.scale.full),
        "",
        "Cells a spreadsheet would read as a formula (starting with = + - @, tab or CR) start with a '.",
    ]
    if source:
        lines += ["", f"Scores from: {source}"]
    if book.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in book.notes]
    return "\n".join(lines) + "\n"


def readme_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".README.txt")


def write_gradebook(out, book: Gradebook, fmt: str, *, assignment: str = DEFAULT_ASSIGNMENT, source: str = "",
                    force: bool = False, replace_earlier: bool = False) -> dict:
    """Write the gradebook and its README beside it, each atomically.

    Refuses to replace any existing file unless ``force`` (a second export to the same
    name, in another format, once replaced the first silently); ``replace_earlier``
    lets a run that regenerates its own gradebook (``leaderboard --roster``) replace it.


    Returns
    -------
    dict
        ``out``, ``readme``, ``format``, ``students``, ``graded``, ``scale``, ``notes``.
    """
    out = Path(os.path.abspath(out))
    readme = readme_path(out)
    if out.is_dir():
        raise LayoutError("the gradebook path is a folder", path=out, expected="a file name, e.g. grades-moodle.csv")
    ours = readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(README_MARKER)
    if out.exists() and not force and not (ours and replace_earlier):
        what = "an earlier gradebook" if ours else "a file the kit did not write"
        raise KitError(f"refusing to replace {what}", code="exists", path=out,
                       hint="give a new file name, or --force")
    text = render_gradebook(book, fmt, assignment=assignment)
    write_text(out, text)
    write_text(readme, readme_text(book, fmt, out.name, assignment=assignment, source=source))
    return {"out": str(out), "readme": str(readme), "format": fmt, "students": len(book.rows),
            "graded": sum(1 for r in book.rows if r.status == "graded"), "scale": book.scale.statement,
            "notes": list(book.notes)}


def gradebook_from_site(site, roster, out, *, fmt: str, scale: Optional[str] = None,
                        assignment: str = DEFAULT_ASSIGNMENT, force: bool = False,
                        scores: Optional[BoardScores] = None, zeros: bool = False) -> dict:
    """Read a revealed site and a roster, write the gradebook: what ``--roster`` does.

    ``scores``: the board's ranked rows in full precision
    (:attr:`~.build.LeaderboardSummary.board`, as the run that wrote ``site`` holds
    them), so that a score just under a threshold earns the same marks as from the
    server; without it the site's CSV files are read (rounded to their 4 decimals).
    """
    check_format(fmt)
    site = Path(os.path.abspath(site))
    out_abs = Path(os.path.abspath(out))
    if site == out_abs or site in out_abs.parents:
        raise LayoutError("the gradebook would be inside the published site", path=out,
                          hint="names and e-mails stay private: write it outside the site folder")
    parsed = parse_scale(scale)
    students = read_roster(roster)
    book = make_gradebook(students, scores if scores is not None else scores_from_site(site), parsed, zeros=zeros)
    return write_gradebook(out, book, fmt, assignment=assignment, source=str(site), force=force,
                           replace_earlier=True)


def gradable(name):
    """The score type a board ranks by (``name``), if a gradebook can grade it: higher is better.

    Raises
    ------
    BadArgumentError
        A distance (HD95, lesion-wise HD95): a scale turns higher scores into higher grades.

    Examples
    --------
    >>> gradable("nsd").name
    'nsd'
    >>> gradable("hd95")
    Traceback (most recent call last):
    ...
    data_spec.errors.BadArgumentError: a gradebook cannot grade HD95 (pixels): lower is better there...
    """
    from .ranking import ranking_type

    ranking = ranking_type(name)
    if ranking.is_lower_the_better:
        raise BadArgumentError(f"a gradebook cannot grade {ranking.title}: lower is better there",
                               hint="build the gradebook from a board ranked by a score (dice, lesion_dice or nsd)")
    return ranking
