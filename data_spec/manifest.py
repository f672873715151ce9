"""The submissions manifest: ``SUBMISSIONS/manifest.csv``, one row per file a team handed in.

Columns ``team, file, submitted_at, final``: ``file`` relative to the team's
folder, ``submitted_at`` an ISO 8601 time (UTC when naive), ``final`` ``yes``,
``no`` or empty (the column is optional). Written by the simulated classes and
``brats-kit server export``; read by the leaderboard.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

from plumbing.atomic import write_text

from .errors import LayoutError

#: Name of the optional manifest at the top of the submissions folder.
MANIFEST_CSV = "manifest.csv"
MANIFEST_COLUMNS = ("team", "file", "submitted_at", "final")
_FINAL_VALUES = {"yes": True, "no": False, "": None}
_FINAL_TEXT = {True: "yes", False: "no", None: ""}


def format_time(when: datetime) -> str:
    """A time as the manifest writes it: UTC, whole seconds, ``2026-11-02T09:05:00Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_manifest(path, rows) -> Path:
    """Write ``manifest.csv`` atomically.

    Parameters
    ----------
    path : path-like
    rows : iterable of (team, file, submitted_at, final)
        ``submitted_at`` a datetime (written in UTC) or ISO text; ``final``
        True, False or None (written ``yes``, ``no`` or empty). Written in the
        order given.

    Returns
    -------
    Path
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for team, name, when, final in rows:
        writer.writerow((team, name, format_time(when) if isinstance(when, datetime) else when, _FINAL_TEXT[final]))
    return write_text(path, buf.getvalue())


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (whole seconds); a naive time is taken as UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0)


def read_manifest(path) -> dict:
    """Read ``manifest.csv``: ``(team, file) -> (submitted_at, final)``.

    ``file`` is relative to the team's folder (a leading ``<team>/`` is accepted);
    ``final`` is ``yes``, ``no`` or empty (column optional).

    Raises
    ------
    LayoutError
        A missing column, a bad time or ``final`` value, or a duplicated row (with its line).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _manifest_rows(csv.DictReader(fh), path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(
            f"manifest is not a readable UTF-8 CSV file ({exc})", path=path,
            expected="UTF-8 text with a header " + ", ".join(MANIFEST_COLUMNS),
            hint="export the manifest as CSV UTF-8",
        ) from None


def _manifest_rows(reader, path) -> dict:
    """The rows of a manifest already opened: ``(team, file) -> (submitted_at, final)``."""
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in MANIFEST_COLUMNS[:3] if c not in columns]
    if missing:
        raise LayoutError(
            f"manifest lacks the column(s) {', '.join(missing)}",
            path=path,
            where="line 1",
            expected="a header with " + ", ".join(MANIFEST_COLUMNS) + " (final optional: yes/no)",
        )
    rows = {}
    for raw in reader:
        line = reader.line_num  # the row's last line (a quoted field may span lines)
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        team, name = row.get("team", ""), row.get("file", "").replace("\\", "/")
        if not team or not name:
            raise LayoutError("a row without its team or file", path=path, where=f"line {line}",
                              expected="team, file, submitted_at[, final] on every row")
        if name.startswith(team + "/"):
            name = name[len(team) + 1 :]
        try:
            when = parse_time(row.get("submitted_at", ""))
        except (ValueError, OverflowError):
            raise LayoutError(
                f"bad submitted_at {row.get('submitted_at', '')!r}",
                path=path,
                where=f"line {line}",
                expected="an ISO 8601 time such as 2025-03-01T17:05:00Z",
            ) from None
        final_text = row.get("final", "").lower()
        if final_text not in _FINAL_VALUES:
            raise LayoutError(
                f"bad final {row.get('final')!r}", path=path, where=f"line {line}", expected="yes, no or empty"
            )
        if (team, name) in rows:
            raise LayoutError(f"{team}/{name} is listed twice", path=path, where=f"line {line}")
        rows[(team, name)] = (when, _FINAL_VALUES[final_text])
    return rows
