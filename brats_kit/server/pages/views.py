"""The course in the browser: sign-in, the team page, the live board and the instructor's dashboard.

Every page calls the same :class:`~..service.CourseService` operations as the JSON
API (an upload goes through the API's own :func:`~..upload.hand_in`), so validation,
quotas, receipts and refusals are one implementation, and a refusal's status is the
one it carries. Pages are server-rendered Jinja2 templates (autoescaped) that work
without JavaScript. Sessions and the CSRF guard are dependencies (:mod:`.sessions`).
Each page gets a fresh nonce for its one inline style sheet; the Content-Security-Policy
allows nothing else (the other security headers come from the application's middleware).
"""
from __future__ import annotations

import secrets
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Optional

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from brats_kit.text import safe_name
from data_spec.errors import BadArgumentError, KitError
from grader.integrity import report_csv
from grader.leaderboard.gradebook import FORMATS, readme_text, render_gradebook

from ..clock import iso
from ..deps import client_address, service_of
from ..gradebook import course_gradebook
from ..integrity import integrity_of_course
from ..refusal import Principal, Refusal
from ..service import CourseService
from ..tokens import token_hash
from ..tracks import CODE, FILE, hidden_truth_of
from ..upload import hand_in, hand_in_code
from ..verify import audit_course
from .sessions import (FLASH, SignedIn, admin_form, admin_session, any_form, bad_csrf, binding, cookie, end_session,
                       read_session, redirect_after_post, same_csrf, set_session, take_flash, team_form, team_session,
                       team_upload, upload_csrf)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True)
# Names come from the roster: a bidi override or an invisible character is shown as an escape.
_env.filters["name"] = safe_name
_env.filters["f4"] = lambda v: "" if v is None else f"{v:.4f}"

router = APIRouter(include_in_schema=False)


# -- rendering ------------------------------------------------------------------------------------
def render(request: Request, template: str, code: int = 200, **context) -> HTMLResponse:
    """A page with its own style nonce in its Content-Security-Policy (the page's one header of its own)."""
    nonce = secrets.token_urlsafe(16)
    session = context.pop("session", None)
    html = _env.get_template(template).render(nonce=nonce, session=session, **context)
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(html, status_code=code, headers={"Content-Security-Policy": csp})


def refusal_page(request: Request, exc: Refusal) -> HTMLResponse:
    """A refusal as a page, with the status it carries (the session's, when a guard found one)."""
    return render(request, "error.html", code=exc.status, session=getattr(request.state, "session", None),
                  error=exc.body()["error"])


def _left(deadline: Optional[datetime], now: datetime) -> Optional[str]:
    if deadline is None:
        return None
    seconds = int((deadline - now).total_seconds())
    if seconds <= 0:
        return "closed"
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h {rest % 3600 // 60} min"


# -- sign-in ---------------------------------------------------------------------------------------
def _signin_form(request: Request, code: int = 200, error: Optional[dict] = None) -> HTMLResponse:
    # A pre-session CSRF token, bound to a short-lived cookie, protects the sign-in form too.
    csrf = secrets.token_urlsafe(24)
    response = render(request, "signin.html", code=code, csrf=csrf, error=error)
    set_session(request, response, {"csrf": csrf, "anon": True})
    return response


def _render_after_redirect(request: Request, template: str, signed: SignedIn, **context) -> HTMLResponse:
    """``template`` with what the form post that redirected here left (its refusal, with its status, and its
    message), then forgotten: a reload shows it no more. ``context`` may read the rest from ``flash``."""
    flash = signed.data.get(FLASH) or {}
    code, refusal = _flashed_refusal(flash)
    response = render(request, template, code=code, session=signed.data, refusal=refusal,
                      message=flash.get("message"), **context)
    take_flash(request, response, signed.data)
    return response


def _flashed_refusal(flash: dict) -> tuple:
    """``(status, error)`` of a refusal a form post redirected with (``(200, None)`` without one)."""
    error = flash.get("refusal")
    if not isinstance(error, dict):
        return 200, None
    return int(error.get("status", 200)), error


@router.get("/")
async def home(request: Request):
    data = await run_in_threadpool(read_session, request)
    if data is not None:
        return RedirectResponse("/admin" if data.get("admin") else "/team", status_code=303)
    anonymous = cookie(request) or {}
    code, error = _flashed_refusal(anonymous.get(FLASH) or {})
    return _signin_form(request, code, error)  # a fresh anonymous cookie: the flash is shown once


def _refused(exc: Refusal) -> dict:
    return dict(exc.body()["error"], status=exc.status)


@router.post("/signin")
async def signin(request: Request, service: CourseService = Depends(service_of)):
    form = await request.form(max_files=0, max_fields=100)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    anonymous = cookie(request)
    if not same_csrf(anonymous.get("csrf") if anonymous else None, fields.get("csrf", "")):
        raise bad_csrf()
    token = fields.get("token", "").strip()
    try:
        who = await run_in_threadpool(service.sign_in, token, client_address(request))
    except Refusal as exc:
        return redirect_after_post(request, "/", anonymous, refusal=_refused(exc))
    sid = await run_in_threadpool(service.open_session, who)
    data = {"csrf": secrets.token_urlsafe(24), "admin": who.admin, "team_id": who.team_id, "team": who.team,
            "bind": binding(request, token_hash(token)), "sid": sid}
    return redirect_after_post(request, "/admin" if who.admin else "/team", data)


@router.post("/signout")
async def signout(request: Request, signed: SignedIn = Depends(any_form),
                  service: CourseService = Depends(service_of)):
    await run_in_threadpool(service.sign_out, signed.data.get("sid"))  # a copy of the cookie opens nothing now
    response = RedirectResponse("/", status_code=303)
    end_session(request, response)
    return response


# -- the team page -----------------------------------------------------------------------------------
def _standing(service: CourseService, team: str, track: str = FILE) -> Optional[dict]:
    """The team's row of ``track``'s final board (None when it has no scored submission there)."""
    try:
        board = service.leaderboard(track)
    except Refusal as exc:
        if exc.code != "missing_scores":
            raise
        return None  # the course's ranking lacks scores of older uploads: the page without a standing
    row = next((r for r in board["rows"] if r["team"] == team), None)
    return None if row is None else {**row, "of": board["teams"]}


def _team_view(service: CourseService, who: Principal, report_id: Optional[str], receipt_id=None) -> dict:
    listing = service.list_submissions(who)
    report = service.public_report(who, report_id) if report_id is not None else None
    receipt = None
    if receipt_id is not None:
        # The receipt of the upload that redirected here, with what is left today (as the API's receipt).
        receipt = {**service.get_submission(who, receipt_id),
                   **{k: v for k, v in listing.items() if "remaining" in k or k.startswith("quota_")}}
    now = service.now()
    revealed = service.revealed()
    deadline = service.config.deadline_at
    # The team counts its own submissions (1st, 2nd...); ids stay in forms and links.
    numbers = {sub["id"]: n for n, sub in enumerate(listing["submissions"], start=1)}
    return {"listing": listing, "report": report, "revealed": revealed, "numbers": numbers, "receipt": receipt,
            "closed": revealed or (deadline is not None and now >= deadline),
            "standing": _standing(service, who.team) if revealed else None,
            "code_track": bool(hidden_truth_of(service.config)),
            "code_standing": _standing(service, who.team, CODE) if revealed and hidden_truth_of(service.config)
            else None,
            "time_left": _left(deadline, now), "now": iso(now), "when": service.local}


async def _team_page(request: Request, service: CourseService, signed: SignedIn, *,
                     report: Optional[str] = None):
    flash = signed.data.get(FLASH) or {}
    view = await run_in_threadpool(_team_view, service, signed.who, report, flash.get("receipt"))
    jobs = getattr(request.app.state, "code_jobs", None)  # the code track's, when the course has one
    code_jobs = None if jobs is None else (await run_in_threadpool(jobs.list_jobs, signed.who))["jobs"]
    # A refused finals choice comes back with the boxes the student ticked.
    return _render_after_redirect(request, "team.html", signed, ticked=flash.get("ticked"), code_jobs=code_jobs,
                                  code_job=flash.get("code_job"), **view)


@router.get("/team")
async def team_page(request: Request, report: Optional[str] = None, signed: SignedIn = Depends(team_session),
                    service: CourseService = Depends(service_of)):
    return await _team_page(request, service, signed, report=report)


@router.post("/team/upload")
async def team_upload_form(request: Request, signed: SignedIn = Depends(team_upload),
                           service: CourseService = Depends(service_of)):
    try:
        receipt = await hand_in(request, service, partial(service.precheck, signed.who), upload_csrf(signed.data))
    except Refusal as exc:
        if exc.code == bad_csrf().code:
            raise
        return redirect_after_post(request, "/team", signed.data, refusal=_refused(exc))
    return redirect_after_post(request, "/team", signed.data, receipt=receipt["id"])


@router.post("/team/code")
async def team_code_form(request: Request, signed: SignedIn = Depends(team_upload),
                         service: CourseService = Depends(service_of)):
    """The team page's code form: the archive goes through ``POST /api/v1/code``'s use case, then back to the page."""
    jobs = getattr(request.app.state, "code_jobs", None)
    if jobs is None:
        raise Refusal(404, "no_code_track", "this course takes no code submissions")
    try:
        receipt = await hand_in_code(request, service, jobs, partial(service.precheck, signed.who),
                                     upload_csrf(signed.data))
    except Refusal as exc:
        if exc.code == bad_csrf().code:
            raise
        return redirect_after_post(request, "/team", signed.data, refusal=_refused(exc))
    return redirect_after_post(request, "/team", signed.data, code_job=receipt["id"])


def _final_ids(form) -> list:
    try:
        return [int(v) for v in form.getlist("final")]
    except ValueError:
        raise Refusal(422, "malformed_request", "submission ids are whole numbers") from None


@router.post("/team/finals")
async def team_finals(request: Request, signed: SignedIn = Depends(team_form),
                      service: CourseService = Depends(service_of)):
    ticked = None
    try:
        ticked = _final_ids(signed.form)
        chosen = await run_in_threadpool(service.choose_finals, signed.who, ticked)
    except Refusal as exc:
        # A refused choice (too many...) keeps the boxes the student ticked.
        return redirect_after_post(request, "/team", signed.data, refusal=_refused(exc), ticked=ticked)
    return redirect_after_post(request, "/team", signed.data,
                               message={"finals": chosen["finals"], "rule": chosen["rule"]})


@router.get("/team/submissions/{sub_id}/file")
async def team_file(sub_id: str, signed: SignedIn = Depends(team_session),
                    service: CourseService = Depends(service_of)):
    path, name = await run_in_threadpool(service.file_of, signed.who, sub_id)
    return FileResponse(path, media_type="application/octet-stream", filename=name)


# -- the board ------------------------------------------------------------------------------------------
#: The live board's files a visitor may read, and their media types.
BOARD_FILES = {"index.html": "text/html; charset=utf-8", "leaderboard.csv": "text/csv; charset=utf-8",
               "grades.csv": "text/csv; charset=utf-8", "leaderboard.md": "text/markdown; charset=utf-8",
               "stability.html": "text/html; charset=utf-8"}


def _site_response(body: bytes, name: str) -> Response:
    """A file of the engine's site, with the engine's own policy (plus what only a header can say)."""
    from grader.leaderboard.render import content_security_policy

    headers = {"Cache-Control": "no-cache"}  # the board changes: revalidate, but a visitor may keep it
    if name == "index.html":
        headers["Content-Security-Policy"] = (content_security_policy()
                                              + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    elif name == "stability.html":
        from grader.leaderboard.stability_page import CSP

        headers["Content-Security-Policy"] = CSP + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    else:
        headers["Content-Disposition"] = f'inline; filename="{name}"'
    return Response(body, media_type=BOARD_FILES[name], headers=headers)


@router.get("/leaderboard")
async def board_page(request: Request, service: CourseService = Depends(service_of)):
    """The live board: the leaderboard engine's page (see :mod:`..board`); a plain table until its first build."""
    board = getattr(request.app.state, "board", None)
    body = await run_in_threadpool(board.read, "index.html") if board is not None else None
    if body is not None:
        return _site_response(body, "index.html")
    data = await run_in_threadpool(read_session, request)
    plain = await run_in_threadpool(service.leaderboard)
    return render(request, "leaderboard.html", session=data, board=plain, building=board is not None)


@router.get("/stability.html")
async def board_stability_link():
    """Where the board page's relative link lands when the board is served at ``/leaderboard``."""
    from fastapi.responses import RedirectResponse

    return RedirectResponse("/leaderboard/stability.html", status_code=307)


@router.get("/leaderboard/code")
async def code_board_slash():
    """The code track's board lives in its own folder: its page's relative links stay on that board."""
    return RedirectResponse("/leaderboard/code/", status_code=307)


@router.get("/leaderboard/code/")
async def code_board_page(request: Request, service: CourseService = Depends(service_of)):
    """The code track's live board (ranked on the hidden slices); 404 on a course without the code track."""
    if not hidden_truth_of(service.config):
        raise Refusal(404, "not_found", "this course has no code track")
    board = getattr(request.app.state, "board", None)
    body = await run_in_threadpool(board.read, "index.html", CODE) if board is not None else None
    if body is not None:
        return _site_response(body, "index.html")
    data = await run_in_threadpool(read_session, request)
    plain = await run_in_threadpool(service.leaderboard, CODE)
    return render(request, "leaderboard.html", session=data, board=plain, building=board is not None)


@router.get("/leaderboard/code/{name}")
async def code_board_file(request: Request, name: str):
    """A file of the code track's live board: read-only, 404 before its first build."""
    return await _board_file(request, name, CODE)


@router.get("/leaderboard/{name}")
async def board_file(request: Request, name: str):
    """A file of the live board (``leaderboard.csv``...): read-only, 404 before the first build."""
    return await _board_file(request, name, FILE)


async def _board_file(request: Request, name: str, track: str) -> Response:
    board = getattr(request.app.state, "board", None)
    body = None
    if board is not None and name in BOARD_FILES:
        body = await run_in_threadpool(board.read, name, track)
    if body is None:
        raise Refusal(404, "not_found", "no such file on the board (yet)")
    return _site_response(body, name)


# -- the instructor's dashboard ---------------------------------------------------------------------------
async def _admin_page(request: Request, service: CourseService, signed: SignedIn):
    view = await run_in_threadpool(service.dashboard)
    jobs = getattr(request.app.state, "code_jobs", None)
    code_jobs = None if jobs is None else (await run_in_threadpool(jobs.all_jobs))["jobs"]
    return _render_after_redirect(request, "admin.html", signed, code_jobs=code_jobs, when=service.local, **view)


@router.get("/admin")
async def admin_page(request: Request, signed: SignedIn = Depends(admin_session),
                     service: CourseService = Depends(service_of)):
    return await _admin_page(request, service, signed)


def _reveal_view(service: CourseService) -> dict:
    return {"status": service.status(), "deadline": service.deadline_text(), "early": service.early_reveal() is not None}


async def _reveal_page(request: Request, service: CourseService, signed: SignedIn):
    view = await run_in_threadpool(_reveal_view, service)
    return _render_after_redirect(request, "reveal.html", signed, **view)


@router.get("/admin/reveal")
async def admin_reveal_confirm(request: Request, signed: SignedIn = Depends(admin_session),
                               service: CourseService = Depends(service_of)):
    return await _reveal_page(request, service, signed)


@router.post("/admin/reveal")
async def admin_reveal(request: Request, signed: SignedIn = Depends(admin_form),
                       service: CourseService = Depends(service_of)):
    if signed.form.get("confirm") != "reveal":
        return RedirectResponse("/admin/reveal", status_code=303)
    try:
        # Before the deadline the page asks a second time, naming it (the box "before_deadline").
        await run_in_threadpool(partial(service.reveal, before_deadline=signed.form.get("before_deadline") == "yes"))
    except Refusal as exc:
        # Before the deadline the reveal page asks a second time, naming the deadline.
        where = "/admin/reveal" if exc.code == "before_deadline" else "/admin"
        return redirect_after_post(request, where, signed.data, refusal=_refused(exc))
    return redirect_after_post(request, "/admin", signed.data,
                               message="The private board is revealed; submissions are closed.")


@router.post("/admin/sessions/end")
async def admin_end_sessions(request: Request, signed: SignedIn = Depends(admin_form),
                             service: CourseService = Depends(service_of)):
    """Sign every browser out, server-side (a stolen cookie opens nothing afterwards); the instructor's too."""
    await run_in_threadpool(service.end_all_sessions)
    response = RedirectResponse("/", status_code=303)
    end_session(request, response)
    return response


@router.get("/admin/integrity")
async def admin_integrity(request: Request, signed: SignedIn = Depends(admin_session),
                          service: CourseService = Depends(service_of)):
    report = await run_in_threadpool(integrity_of_course, service)
    return render(request, "integrity.html", session=signed.data, report=report.to_dict())


@router.get("/admin/integrity.csv")
async def admin_integrity_csv(signed: SignedIn = Depends(admin_session), service: CourseService = Depends(service_of)):
    report = await run_in_threadpool(integrity_of_course, service)
    return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="integrity.csv"'})


def _gradebook(service: CourseService, fmt: str, scale: Optional[str], zeros: bool = False, track: str = FILE):
    """The gradebook the ``server grades`` command writes (same functions), as text for a download."""
    if fmt not in FORMATS:
        raise BadArgumentError(f"unknown gradebook format {fmt!r}", expected=" or ".join(FORMATS))
    from ..baselines import baselines_of

    # The default scale's reference points are the course's baselines, when it has them (else a stated fallback).
    return course_gradebook(service, scale or None, baselines_of(service.course), zeros=zeros, track=track)


async def _grades(request: Request, service: CourseService, signed: SignedIn, fmt: str, scale: Optional[str],
                  readme: bool, zeros: bool = False, track: str = FILE):
    try:
        book = await run_in_threadpool(_gradebook, service, fmt, scale, zeros, track)
    except KitError as exc:
        error = {"code": exc.code, "message": str(exc), "hint": getattr(exc, "hint", None)}
        return render(request, "error.html", code=409 if exc.code == "not_revealed" else 422, session=signed.data,
                      error=error)
    name = f"grades-{fmt}.csv"
    if readme:
        return Response(readme_text(book, fmt, name), media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="grades-{fmt}-README.txt"'})
    return Response(render_gradebook(book, fmt), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/admin/grades.csv")
async def admin_grades(request: Request, format: str = "csv", scale: Optional[str] = None, zeros: bool = False,
                       track: str = FILE, signed: SignedIn = Depends(admin_session),
                       service: CourseService = Depends(service_of)):
    """The gradebook (private: names and e-mails), after the reveal; ``scale``, ``zeros``, ``track``: ``server grades``."""
    return await _grades(request, service, signed, format, scale, readme=False, zeros=zeros, track=track)


@router.get("/admin/grades-readme.txt")
async def admin_grades_readme(request: Request, format: str = "csv", scale: Optional[str] = None, zeros: bool = False,
                              track: str = FILE, signed: SignedIn = Depends(admin_session),
                              service: CourseService = Depends(service_of)):
    """What the gradebook's columns and scale mean (the README ``server grades`` writes beside the file)."""
    return await _grades(request, service, signed, format, scale, readme=True, zeros=zeros, track=track)


@router.get("/admin/audit")
async def admin_audit(request: Request, signed: SignedIn = Depends(admin_session),
                      service: CourseService = Depends(service_of)):
    """The full ``server audit``: the chain, the database and every stored file's hash (reads the whole store)."""
    report = await run_in_threadpool(audit_course, service.course)
    return render(request, "audit.html", session=signed.data, audit=report)
