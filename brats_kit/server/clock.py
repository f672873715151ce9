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
