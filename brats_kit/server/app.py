"""The FastAPI application: the JSON API under ``/api/v1/`` (pages are added by :mod:`brats_kit.server.pages`).

``create_app(course)`` builds it; the lifespan opens the course (refusing or fixing
exposed private files, removing what an interrupted upload left) and starts the
isolated scoring workers. ``app.state.service`` is the :class:`~.service.CourseService`
that every route (and every page) uses; the dependencies :func:`team_auth` and
:func:`admin_auth` authenticate a bearer token.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Callable, Optional

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from plumbing import __version__

from .course import Course, check_permissions
from .db import Submission
from .grading import make_scorer
from .service import CourseService, Principal, Refusal, utc_now
from .upload import MULTIPART_SLACK, receive_upload, score_and_record  # noqa: F401 - MULTIPART_SLACK, receive_upload: part of the API

log = logging.getLogger("brats_kit.server")
API = "/api/v1"

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The framework's documentation page loads Swagger UI from its CDN.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


class SecurityHeaders:
    """ASGI middleware adding the usual security headers to every HTTP response (unless a route set them)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope.get("path", "") in ("/docs", "/redoc")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = {
                    b"content-security-policy": (DOCS_CSP if docs else API_CSP).encode(),
                    b"x-content-type-options": b"nosniff",
                    b"x-frame-options": b"DENY",
                    b"referrer-policy": b"no-referrer",
                    b"cross-origin-opener-policy": b"same-origin",
                    b"cache-control": b"no-store",
                }
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> Optional[str]:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def service_of(request: Request) -> CourseService:
    return request.app.state.service


async def team_auth(request: Request) -> Principal:
    """Dependency: the team of the request's bearer token (401, or 429 after repeated failures)."""
    return await run_in_threadpool(service_of(request).authenticate, _bearer(request), _address(request))


async def admin_auth(request: Request) -> Principal:
    """Dependency: the instructor's bearer token."""
    return await run_in_threadpool(service_of(request).authenticate, _bearer(request), _address(request), admin=True)


router = APIRouter(prefix=API)


@router.get("/competition", summary="What a client needs to validate locally (public facts only)")
async def competition(request: Request):
    service = service_of(request)
    c = service.config
    return {"api": "v1", "version": __version__, "n_slices": service.info["n_slices"],
            "case_ids": service.info["case_ids"], "max_bytes": service.max_bytes, "per_day": c.per_day,
            "max_invalid_per_day": c.max_invalid_per_day, "finals": c.finals, "deadline": c.deadline,
            "timezone": c.timezone, "revealed": await run_in_threadpool(service.revealed)}


@router.post("/submissions", status_code=201, summary="Hand in a file (multipart field 'file' or the raw body)",
             dependencies=[Depends(HTTPBearer(auto_error=False))])
async def post_submission(request: Request):
    service = service_of(request)
    who = await run_in_threadpool(service.authenticate_upload, _bearer(request), _address(request))
    return await score_and_record(request, service, who)


@router.get("/submissions", summary="The team's own submissions")
async def list_submissions(request: Request, who: Principal = Depends(team_auth)):
    return await run_in_threadpool(service_of(request).list_submissions, who)


@router.get("/submissions/{sub_id}", summary="One of the team's own submissions (404 for any other)")
async def get_submission(sub_id: int, request: Request, who: Principal = Depends(team_auth)):
    return await run_in_threadpool(service_of(request).get_submission, who, sub_id)


@router.get("/submissions/{sub_id}/file", summary="Download one of the team's own files")
async def get_file(sub_id: int, request: Request, who: Principal = Depends(team_auth)):
    path, name = await run_in_threadpool(service_of(request).file_of, who, sub_id)
    return FileResponse(path, media_type="application/octet-stream", filename=name)


@router.put("/finals", summary="Choose up to K of the team's scored submissions as finals")
async def put_finals(request: Request, ids: list[int] = Body(..., embed=True), who: Principal = Depends(team_auth)):
    return await run_in_threadpool(service_of(request).choose_finals, who, ids)


@router.get("/leaderboard", summary="The public board (the private one after the reveal)")
async def leaderboard(request: Request):
    return await run_in_threadpool(service_of(request).leaderboard)


@router.post("/admin/reveal", summary="Reveal the private board (closes submissions)")
async def reveal(request: Request, who: Principal = Depends(admin_auth)):
    return await run_in_threadpool(service_of(request).reveal)


@router.get("/admin/status", summary="Teams, submissions, quota use, last activity")
async def status(request: Request, who: Principal = Depends(admin_auth)):
    return await run_in_threadpool(service_of(request).status)


def startup_checks(course: Course) -> list:
    """Fix exposed private files (warning) and remove what an interrupted upload left; return what went."""
    for path in check_permissions(course.root, fix=True):
        log.warning("%s was readable by others: its mode is now owner-only", path)
    with course.sessions() as s:
        referenced = set(s.scalars(select(Submission.sha256)))
    removed = course.store.recover(referenced)
    for path in removed:
        log.warning("removed %s, left by an interrupted upload", path)
    return removed


def create_app(course, *, clock: Callable[[], datetime] = utc_now, scorer=None, limiter=None,
               board_interval_s: Optional[float] = None) -> FastAPI:
    """The server's application for a course folder (or an opened :class:`~.course.Course`).

    Parameters
    ----------
    course : path-like or Course
    clock : callable
        The server's clock (aware datetimes); the demo injects a simulated one.
    scorer : IsolatedScorer, optional
        Shared workers (tests); by default the app starts its own and stops them on shutdown.
    limiter : FailureLimiter, optional
    board_interval_s : float, optional
        Seconds between two rebuilds of the live board at most (default: the course's
        ``extra.board_interval_s``, else 10; 0: no live board). See :mod:`.board`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        opened = course if isinstance(course, Course) else Course(course)
        startup_checks(opened)
        app.state.service = CourseService(opened, clock=clock, limiter=limiter)
        own = scorer is None
        app.state.scorer = make_scorer(opened.config) if own else scorer
        from .board import start_live_board

        app.state.board = start_live_board(opened, interval_s=board_interval_s)
        try:
            yield
        finally:
            if app.state.board is not None:
                await run_in_threadpool(app.state.board.close)
            if own:
                app.state.scorer.close()
            if not isinstance(course, Course):
                opened.close()

    app = FastAPI(title="brats-kit submission server", version=__version__, lifespan=lifespan,
                  description="Hand in a submission, get a receipt with its public score; quotas, deadline "
                              "and finals enforced on arrival.")

    @app.exception_handler(Refusal)
    async def refusal_handler(request: Request, exc: Refusal):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    app.include_router(router)
    from .pages import router as pages_router  # the browser pages (they call this module's routes)

    app.include_router(pages_router)
    app.add_middleware(SecurityHeaders)
    return app
