"""The FastAPI application: the JSON API under ``/api/v1/`` (pages are added by :mod:`brats_kit.server.pages`).

``create_app(course)`` builds it; the lifespan opens the course (refusing or fixing
exposed private files, removing what an interrupted upload left) and starts the
isolated scoring workers. ``app.state.service`` is the :class:`~.service.CourseService`
that every route (and every page) calls, through the dependency :func:`service_of`;
:func:`team_auth` and :func:`admin_auth` authenticate a bearer token. Each route
declares its answer's model (:mod:`.schemas`), so ``/docs`` shows every shape.
"""
from __future__ import annotations

import contextlib
from functools import partial
from datetime import datetime
from typing import Callable, Literal, Optional

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from plumbing import __version__

from .course import Course
from .deps import admin_auth, bearer_token, client_address, service_of, team_auth  # noqa: F401 - part of the API
from .grading import make_scorer
from .schemas import Competition, ErrorBody, Finals, Leaderboard, Receipt, Status, SubmissionList
from .service import CourseService, Principal, Refusal, startup_checks, utc_now  # noqa: F401 - startup_checks: part of the API
from .upload import MULTIPART_SLACK, STREAMED_BODIES, hand_in, receive_upload  # noqa: F401 - MULTIPART_SLACK, receive_upload: part of the API

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


#: Bytes a request body may hold, except on the routes that stream an upload (:data:`~.upload.STREAMED_BODIES`).
BODY_CAP = 64 << 10


class BodyLimit:
    """ASGI middleware capping every request body outside the uploads at ``max_bytes``, while it streams.

    A declared ``Content-Length`` over the cap is refused before anything is read; a
    body without one is read into a buffer of at most ``max_bytes`` (counting as it
    comes) and refused the moment it goes over, then handed to the application. The
    routes in ``streamed`` enforce their own (larger) cap on the stream.
    """

    def __init__(self, app, max_bytes: int = BODY_CAP, streamed=frozenset()):
        self.app, self.max_bytes, self.streamed = app, int(max_bytes), frozenset(streamed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(scope, receive, send)
        messages, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._refuse(scope, receive, send)
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        refusal = Refusal(413, "too_large", f"the request body is over {self.max_bytes} bytes",
                          {"max_bytes": self.max_bytes})
        # The connection stays open: the server drops the rest of the body, and the client reads this answer.
        await JSONResponse(refusal.body(), status_code=413)(scope, receive, send)


#: What a refusal looks like, for the documentation of every route.
REFUSALS = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 429, 507)}
router = APIRouter(prefix=API, responses=REFUSALS)


def _route(method, path: str, model, **kw):
    """``router.<method>`` with the answer's model, keeping exactly the keys the service returned."""
    return getattr(router, method)(path, response_model=model, response_model_exclude_unset=True, **kw)


@_route("get", "/competition", Competition, summary="What a client needs to validate locally (public facts only)")
async def competition(service: CourseService = Depends(service_of)):
    c = service.config
    return {"api": "v1", "version": __version__, "n_slices": service.info["n_slices"],
            "case_ids": service.info["case_ids"], "max_bytes": service.max_bytes, "per_day": c.per_day,
            "max_invalid_per_day": c.max_invalid_per_day, "finals": c.finals, "deadline": c.deadline,
            "timezone": c.timezone, "revealed": await run_in_threadpool(service.revealed)}


@_route("post", "/submissions", Receipt, status_code=201,
        summary="Hand in a file (multipart field 'file' or the raw body)",
        dependencies=[Depends(HTTPBearer(auto_error=False))])
async def post_submission(request: Request, service: CourseService = Depends(service_of)):
    return await hand_in(request, service, partial(service.authenticate_upload, bearer_token(request), client_address(request)))


@_route("get", "/submissions", SubmissionList, summary="The team's own submissions")
async def list_submissions(who: Principal = Depends(team_auth), service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.list_submissions, who)


@_route("get", "/submissions/{sub_id}", Receipt, summary="One of the team's own submissions (404 for any other)")
async def get_submission(sub_id: str, who: Principal = Depends(team_auth), service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.get_submission, who, sub_id)


@router.get("/submissions/{sub_id}/file", summary="Download one of the team's own files", response_class=FileResponse)
async def get_file(sub_id: str, who: Principal = Depends(team_auth), service: CourseService = Depends(service_of)):
    path, name = await run_in_threadpool(service.file_of, who, sub_id)
    return FileResponse(path, media_type="application/octet-stream", filename=name)


@_route("put", "/finals", Finals, summary="Choose up to K of the team's scored submissions as finals")
async def put_finals(ids: list[int] = Body(..., embed=True), who: Principal = Depends(team_auth),
                     service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.choose_finals, who, ids)


@_route("get", "/leaderboard", Leaderboard, summary="The public board (the private one after the reveal)")
async def leaderboard(track: Literal["file", "code"] = "file", service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.leaderboard, track)


@_route("post", "/admin/reveal", Leaderboard, summary="Reveal the private board (closes submissions)")
async def reveal(who: Principal = Depends(admin_auth), service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.reveal)


@_route("get", "/admin/status", Status, summary="Teams, submissions, quota use, last activity")
async def status(who: Principal = Depends(admin_auth), service: CourseService = Depends(service_of)):
    return await run_in_threadpool(service.status)


def create_app(course, *, clock: Callable[[], datetime] = utc_now, scorer=None, limiter=None,
               board_interval_s: Optional[float] = None, https_only: bool = False,
               max_inflight_per_team: Optional[int] = None, executor: Optional[str] = None,
               code_workers: Optional[int] = None, replica: bool = False) -> FastAPI:
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
    https_only : bool
        Session cookies are ``Secure`` whatever the request's scheme (``server run --https-only``).
    max_inflight_per_team : int, optional
        Uploads of one team admitted at once (default: the course's ``extra.max_inflight_per_team``,
        else 1); the others wait their turn. See :class:`~.quotas.InFlight`.
    executor, code_workers : optional
        Where a course with a code track runs its jobs (:func:`.executors.make_executor`:
        a local pool of ``code_workers``, or ``tcp://HOST:PORT``, a Dask scheduler).
    replica : bool
        One of several servers of the course on PostgreSQL and a shared course folder (``server run
        --replica``): limits, the live board's builder and start-up tidying are per course, not per
        process (see :mod:`.shared`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        opened = course if isinstance(course, Course) else Course(course)
        startup_checks(opened, replica=replica)
        service = app.state.service = CourseService(opened, clock=clock, limiter=limiter, replica=replica)
        if max_inflight_per_team is not None:
            service.quotas.in_flight.per_team = max(1, int(max_inflight_per_team))
        own = scorer is None
        service.scorer = make_scorer(opened.config) if own else scorer
        from .board import start_live_board

        app.state.board = start_live_board(opened, interval_s=board_interval_s, locks=service.locks)
        from .jobs import start_code_track

        app.state.code_jobs, code_runner = start_code_track(service, executor=executor, workers=code_workers)
        try:
            yield
        finally:
            if code_runner is not None:
                await run_in_threadpool(code_runner.close)
            if app.state.board is not None:
                await run_in_threadpool(app.state.board.close)
            if own:
                service.scorer.close()
            service.close()
            if not isinstance(course, Course):
                opened.close()

    app = FastAPI(title="brats-kit submission server", version=__version__, lifespan=lifespan,
                  description="Hand in a submission, get a receipt with its public score; quotas, deadline "
                              "and finals enforced on arrival.")

    app.state.https_only = https_only
    from . import pages  # the browser pages (they call the same service, and this module's hand-in)

    @app.exception_handler(Refusal)
    async def refusal_handler(request: Request, exc: Refusal):
        """A refusal answers with the status it carries: as JSON to the API, as a page to a browser."""
        if request.url.path.startswith(API + "/"):
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        return pages.refusal_page(request, exc)

    @app.exception_handler(pages.SignInFirst)
    async def sign_in_first(request: Request, exc: pages.SignInFirst):
        return RedirectResponse("/", status_code=303)

    from .code_routes import router as code_router

    app.include_router(router)
    app.include_router(code_router)
    app.include_router(pages.router)
    app.add_middleware(BodyLimit, streamed=STREAMED_BODIES)
    app.add_middleware(SecurityHeaders)
    return app
