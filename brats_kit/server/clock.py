"""The server's time: an aware UTC clock, ISO 8601 text, and the quota day of a moment."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Optional


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(when: Optional[datetime]) -> Optional[str]:
    """UTC time as ISO 8601 with a ``Z`` (microseconds kept: two uploads in one second stay ordered).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> iso(datetime(2026, 3, 1, 12, 0, 0, 250, tzinfo=timezone.utc))
    '2026-03-01T12:00:00.000250Z'
    >>> iso(None) is None
    True
    """
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def quota_day(when: datetime, zone) -> tuple:
    """``(day, resets_at)``: the day of ``when`` in the course's time ``zone``, and when it ends (UTC).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from zoneinfo import ZoneInfo
    >>> day, resets = quota_day(datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc), ZoneInfo("Europe/Paris"))
    >>> day, iso(resets)
    ('2026-03-02', '2026-03-02T23:00:00Z')
    """
    local = when.astimezone(zone)
    start_next = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return local.date().isoformat(), start_next.astimezone(timezone.utc)


def parse_zone(text: str):
    """The course's time zone from its configuration: an IANA name, or a fixed offset ``±HH:MM``.

    A fixed offset is what a deadline like ``2026-12-15T23:59:00+01:00`` tells when no
    ``--timezone`` was given.

    Raises
    ------
    ValueError
        For a name that is neither.

    Examples
    --------
    >>> parse_zone("Europe/Paris").key
    'Europe/Paris'
    >>> parse_zone("+01:00")
    datetime.timezone(datetime.timedelta(seconds=3600))
    """
    if text[:1] in "+-" and len(text) == 6 and text[3] == ":":
        hours, minutes = int(text[1:3]), int(text[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"offset out of range: {text!r}")
        sign = -1 if text[0] == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {text!r}") from exc


def zone_of_deadline(deadline: Optional[str]) -> str:
    """The quota day's zone when ``--timezone`` is not given: the deadline's own offset (UTC without one).

    Examples
    --------
    >>> zone_of_deadline("2026-12-15T23:59:00+01:00"), zone_of_deadline("2026-12-15T23:59:00+00:00")
    ('+01:00', 'UTC')
    >>> zone_of_deadline(None)
    'UTC'
    """
    if deadline is None:
        return "UTC"
    offset = datetime.fromisoformat(deadline.replace("Z", "+00:00")).utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_text(when, zone) -> Optional[str]:
    """A moment as people read it: in the course's ``zone``, to the minute, with the zone named.

    ``when`` is an aware datetime or the ISO 8601 text :func:`iso` writes.

    Examples
    --------
    >>> local_text("2026-12-15T22:59:00.123456Z", parse_zone("+01:00"))
    '2026-12-15 23:59 UTC+01:00'
    >>> local_text("2026-07-01T10:00:00Z", parse_zone("Europe/Paris"))
    '2026-07-01 12:00 CEST'
    >>> local_text(None, parse_zone("UTC")) is None
    True
    """
    if when is None or when == "":
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    local = when.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
