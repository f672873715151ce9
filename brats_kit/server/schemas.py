"""The JSON shapes of the API (pydantic models), so that ``/docs`` and ``/openapi.json`` show each one.

The service returns plain dicts; a route declares the model its dict satisfies and is
registered with ``response_model_exclude_unset=True``, so an answer holds exactly the keys
the service gave (``private`` only after the reveal, for instance). Models accept extra
keys: a field the service adds shows in the answer before it is described here.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Shape):
    code: str
    message: str


class ErrorBody(_Shape):
    """Every refusal: ``{"error": {"code", "message", ...}}`` with the HTTP status the code implies."""

    error: ErrorDetail


class Competition(_Shape):
    """What a client needs to validate locally (public facts only)."""

    api: str
    version: str
    n_slices: int
    case_ids: list[str]
    max_bytes: int
    per_day: int
    max_invalid_per_day: int
    finals: int
    deadline: Optional[str] = None
    timezone: str
    revealed: bool


class Receipt(_Shape):
    """One submission as its team sees it; quota fields on the upload's own receipt, ``private`` after the reveal."""

    id: int
    team: str
    sha256: str
    bytes: int
    submitted_at: str
    status: str
    format: Optional[str] = None
    errors: list[dict]
    public: Optional[dict] = None
    private: Optional[dict] = None
    final: bool
    deadline: Optional[str] = None
    remaining_today: Optional[int] = None
    invalid_remaining_today: Optional[int] = None
    quota_resets_at: Optional[str] = None
    quota_day: Optional[str] = None
    #: After ``server rescore`` changed this grade: what the receipt said before (``status``, ``public``,
    #: ``private`` after the reveal, ``truth_version``: a digest of the old truth's sha256).
    superseded: Optional[dict] = None


class SubmissionList(_Shape):
    team: str
    submissions: list[Receipt]
    remaining_today: int
    invalid_remaining_today: int
    quota_resets_at: str
    deadline: Optional[str] = None
    finals_allowed: int


class Finals(_Shape):
    team: str
    finals: list[int]
    rule: str


class BoardRow(_Shape):
    """A ranked team: its rank, the selected submission and its scores (by the score types' names);
    after the reveal also its public scores and rank, and its ``move``.

    Only ``team`` is required: the board's rows come from the leaderboard's ranking, which owns their columns.
    """

    team: str
    rank: Optional[int] = None
    submitted_at: Optional[str] = None
    selected_by: Optional[str] = None
    submission: Optional[int] = None


class Leaderboard(_Shape):
    phase: str
    revealed: bool
    teams: Optional[int] = None
    ranked: Optional[int] = None
    rows: list[BoardRow]
    rule: Optional[str] = None
    track: Optional[str] = None


class TeamStatus(_Shape):
    team: str
    scored: int
    invalid: int
    today_scored: int
    today_invalid: int
    over_quota: int = 0
    refused_late: int = 0
    today_refused: int = 0
    last_activity: Optional[str] = None


class Status(_Shape):
    """The instructor's view: teams, submissions, today's quota use and last activity."""

    now: str
    quota_day: str
    quota_resets_at: str
    per_day: int
    max_invalid_per_day: int
    deadline: Optional[str] = None
    revealed: bool
    timezone: str = "UTC"
    handed_in: int = 0
    teams: list[TeamStatus]
    submissions: int
    quarantined: list[str] = []


class CodeJob(_Shape):
    """A code submission's job: ``queued``, ``running``, then ``scored``, ``invalid`` or ``failed`` (with its class)."""

    id: int
    kind: str
    status: str
    sha256: str
    bytes: int
    submitted_at: str
    attempts: int
    failure: Optional[str] = None
    error_type: Optional[str] = None
    detail: str = ""
    seconds: Optional[float] = None
    submission: Optional[int] = None
    public: Optional[dict] = None
    errors: list = []
    log: Optional[str] = None


class CodeJobList(_Shape):
    """The team's code jobs, oldest first."""

    team: str
    jobs: list[CodeJob]


class CodeJobLogs(_Shape):
    """Every code job of the course with its team and full log (the instructor's)."""

    jobs: list[CodeJob]
