"""What the server answers when it says no, and who is asking."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(eq=False)
class Refusal(Exception):
    """A request the course refuses: HTTP ``status``, stable ``code``, a sentence, and extra fields.

    The status is decided here, once: the API answers it as JSON and the pages render it.

    Examples
    --------
    >>> r = Refusal(403, "closed", "the competition is over")
    >>> r.status, r.body()
    (403, {'error': {'code': 'closed', 'message': 'the competition is over'}})
    """

    status: int
    code: str
    message: str
    extra: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


@dataclass(frozen=True)
class Principal:
    """A team (``team_id``, ``team``) or the instructor (``admin``)."""

    team_id: Optional[int]
    team: Optional[str]
    admin: bool = False
