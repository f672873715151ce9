"""The course in the browser: sign-in, the team page, the live board and the instructor's dashboard.

Every page calls the same :class:`~.service.CourseService` operations as the JSON
API (an upload goes through the API's own route function), so validation,
quotas, receipts and refusals are one implementation. Pages are server-rendered
Jinja2 templates (autoescaped) that work without JavaScript.

Sessions are a signed cookie (``itsdangerous``, secret in ``COURSE/private/session_secret``
created with mode 0600 on first use) holding the principal, a CSRF token and a
binding to the token hash, so rotating a team's token ends its sessions. The
cookie is HttpOnly and SameSite=Strict; every form carries the CSRF token and
every POST checks it. Each page gets a fresh nonce for its one inline style
sheet; the Content-Security-Policy allows nothing else.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Optional

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from brats_kit.text import safe_name
from data_spec.truth import load_truth
from grader.counts import Counts

from data_spec.errors import KitError
from grader.integrity import report_csv
from grader.leaderboard.gradebook import FORMATS, make_gradebook, parse_scale, read_roster, readme_text, render_gradebook

from .course import ROSTER_CSV
from .db import Member, Submission, Team
from .gradebook import course_scores
from .integrity import integrity_of_course
from .upload import score_and_record
from .service import CourseService, Principal, Refusal, iso
from .verify import audit_course

COOKIE = "brats_kit_session"
SECRET_FILE = "session_secret"
#: A session lasts a working day; signing in again is one form.
SESSION_MAX_AGE_S = 12 * 3600
TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True)
# Names come from the roster: a bidi override or an invisible character is shown as an escape.
_env.filters["name"] = safe_name
_env.filters["f4"] = lambda v: "" if v is None else f"{v:.4f}"

router = APIRouter(include_in_schema=False)


# -- sessions -------------------------------------------------------------------------------------
def _secret(service: CourseService) -> bytes:
    """The course's session secret, created owner-only (O_EXCL: two workers never write two)."""
    path = service.course.private / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
        fh.flush()
        os.fsync(fh.fileno())
    return path.read_bytes().strip()


def _serializer(request: Request) -> URLSafeTimedSerializer:
    state = request.app.state
    if getattr(state, "session_serializer", None) is None:
        state.session_serializer = URLSafeTimedSerializer(_secret(state.service), salt="brats-kit-session")
    return state.session_serializer


def _binding(request: Request, digest: str) -> str:
    """A keyed digest of the stored token hash: the cookie names the token without carrying its hash."""
    key = _secret(request.app.state.service)
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()[:32]


def _current_binding(request: Request, data: dict) -> Optional[str]:
    service: CourseService = request.app.state.service
    from .db import get_meta

    with service.course.sessions() as s:
        if data.get("admin"):
            digest = get_meta(s, "admin_token_hash")
        else:
            team = s.get(Team, data.get("team_id"))
            digest = team.token_hash if team is not None else None
    return None if not digest else _binding(request, digest)


def _cookie(request: Request) -> Optional[dict]:
    """The session cookie's content when its signature and age check out (anonymous or not), else None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request).loads(raw, max_age=SESSION_MAX_AGE_S)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def read_session(request: Request) -> Optional[dict]:
    """The valid session of the request (signature, age and token binding checked), or None."""
    data = _cookie(request)
    if data is None or "csrf" not in data or data.get("anon"):
        return None  # an anonymous cookie only carries the sign-in form's CSRF token
    bound = _current_binding(request, data)
    if bound is None or not hmac.compare_digest(bound, str(data.get("bind", ""))):
        return None  # the token was rotated since sign-in
    return data


def principal_of(data: dict) -> Principal:
    return Principal(None, None, True) if data.get("admin") else Principal(data["team_id"], data["team"])


def _set_session(request: Request, response: Response, data: dict) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, _serializer(request).dumps(data), max_age=SESSION_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict", secure=secure)


def _check_csrf(data: Optional[dict], given: Optional[str]) -> None:
    if data is None:
        raise Refusal(403, "no_session", "sign in first")
    if not given or not hmac.compare_digest(str(data["csrf"]), str(given)):
        raise Refusal(403, "bad_csrf", "the form's security token is missing or stale: reload the page and retry")


# -- rendering ------------------------------------------------------------------------------------
def render(request: Request, template: str, code: int = 200, **context) -> HTMLResponse:
    """A page with its own style nonce and the pages' Content-Security-Policy."""
    nonce = secrets.token_urlsafe(16)
    session = context.pop("session", None)
    html = _env.get_template(template).render(nonce=nonce, session=session, **context)
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(html, status_code=code, headers={
        "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY", "Cache-Control": "no-store"})


def _refused(request: Request, exc: Refusal, session=None) -> HTMLResponse:
    return render(request, "error.html", code=exc.status, session=session, error=exc.body()["error"])


def _left(deadline: Optional[datetime], now: datetime) -> Optional[str]:
    if deadline is None:
        return None
    seconds = int((deadline - now).total_seconds())
    if seconds <= 0:
        return "closed"
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h {rest % 3600 // 60} min"


async def _form_fields(request: Request) -> dict:
    form = await request.form(max_files=0, max_fields=100)
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _checked_form(request: Request, data: Optional[dict]):
    """The posted form of a signed-in user, its CSRF token checked (no body is parsed without a session)."""
    if data is None:
        raise Refusal(403, "no_session", "sign in first")
    form = await request.form(max_files=0, max_fields=1000)
    _check_csrf(data, form.get("csrf"))
    return form


# -- sign-in ---------------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request):
    data = await run_in_threadpool(read_session, request)
    if data is not None:
        return RedirectResponse("/admin" if data.get("admin") else "/team", status_code=303)
    # A pre-session CSRF token, bound to a short-lived cookie, protects the sign-in form too.
    csrf = secrets.token_urlsafe(24)
    response = render(request, "signin.html", csrf=csrf, error=None)
    _set_session(request, response, {"csrf": csrf, "anon": True})
    return response


def _anon_csrf(request: Request) -> Optional[str]:
    data = _cookie(request)
    return data.get("csrf") if data is not None else None


@router.post("/signin")
async def signin(request: Request):
    service: CourseService = request.app.state.service
    fields = await _form_fields(request)
    expected = _anon_csrf(request)
    if not expected or not hmac.compare_digest(expected, fields.get("csrf", "")):
        return _refused(request, Refusal(403, "bad_csrf", "the form's security token is missing or stale: "
                                                           "reload the page and retry"))
    admin = fields.get("role") == "instructor"
    address = request.client.host if request.client else "unknown"
    try:
        who = await run_in_threadpool(service.authenticate, fields.get("token", "").strip(), address, admin=admin)
    except Refusal as exc:
        csrf = secrets.token_urlsafe(24)
        response = render(request, "signin.html", code=exc.status, csrf=csrf, error=exc.body()["error"])
        _set_session(request, response, {"csrf": csrf, "anon": True})
        return response
    from .tokens import token_hash

    data = {"csrf": secrets.token_urlsafe(24), "admin": who.admin, "team_id": who.team_id, "team": who.team,
            "bind": _binding(request, token_hash(fields["token"].strip()))}
    response = RedirectResponse("/admin" if who.admin else "/team", status_code=303)
    _set_session(request, response, data)
    return response


@router.post("/signout")
async def signout(request: Request):
    data = await run_in_threadpool(read_session, request)
    try:
        await _checked_form(request, data)
    except Refusal as exc:
        return _refused(request, exc)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- the team page -----------------------------------------------------------------------------------
def _public_report(service: CourseService, truth, sub_id: int, who: Principal) -> dict:
    """Dice per public slice of one of the team's own submissions (404 for any other)."""
    service.get_submission(who, sub_id)  # the API's ownership rule: another team's id is "not found"
    with service.course.sessions() as s:
        sub = s.get(Submission, sub_id)
    if sub.status != "scored" or not sub.counts:
        return {"id": sub_id, "rows": [], "note": "an invalid submission has no scores"}
    counts = Counts.from_record(sub.counts, truth).phase("public")
    dice = counts.dice()
    rows = [{"case_id": str(c), "tp": int(tp), "fp": int(fp), "fn": int(fn), "dice": float(d)}
            for c, tp, fp, fn, d in zip(counts.case_id, counts.tp, counts.fp, counts.fn, dice)]
    return {"id": sub_id, "rows": rows, "note": None}


def _truth(request: Request):
    state = request.app.state
    if getattr(state, "page_truth", None) is None:
        state.page_truth = load_truth(state.service.config.truth)
    return state.page_truth


def _team_view(request: Request, who: Principal, report_id: Optional[int]) -> dict:
    service: CourseService = request.app.state.service
    listing = service.list_submissions(who)
    report = _public_report(service, _truth(request), report_id, who) if report_id is not None else None
    return {"listing": listing, "report": report, "revealed": service.revealed(),
            "time_left": _left(service.config.deadline_at, service.now()), "now": iso(service.now())}


async def _team_session(request: Request):
    data = await run_in_threadpool(read_session, request)
    if data is None or data.get("admin"):
        return None
    return data


@router.get("/team")
async def team_page(request: Request, report: Optional[int] = None):
    data = await _team_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    who = principal_of(data)
    try:
        view = await run_in_threadpool(_team_view, request, who, report)
    except Refusal as exc:
        return _refused(request, exc, session=data)
    return render(request, "team.html", session=data, receipt=None, refusal=None, message=None, **view)


@router.post("/team/upload")
async def team_upload(request: Request, csrf: Optional[str] = None):
    # The CSRF token travels in the query string: the body is streamed into the store by the
    # API's own receiver, which reads only the multipart part named 'file'.
    data = await _team_session(request)
    try:
        _check_csrf(data, csrf)
    except Refusal as exc:
        return _refused(request, exc)
    who = principal_of(data)
    receipt, refusal = None, None
    try:
        receipt = await hand_in(request, who)
    except Refusal as exc:
        refusal = exc.body()["error"]
    view = await run_in_threadpool(_team_view, request, who, None)
    code = 201 if receipt is not None else refusal_status(refusal)
    return render(request, "team.html", code=code, session=data, receipt=receipt, refusal=refusal,
                  message=None, **view)


async def hand_in(request: Request, who: Principal) -> dict:
    """What ``POST /api/v1/submissions`` does once the team is known: the same calls in the same order."""
    service: CourseService = request.app.state.service
    await run_in_threadpool(service.precheck, who)
    return await score_and_record(request, service, who)


def refusal_status(error: Optional[dict]) -> int:
    return {"too_large": 413, "quota_exceeded": 429, "deadline_passed": 403, "closed": 403,
            "malformed_request": 422}.get((error or {}).get("code"), 400)


@router.post("/team/finals")
async def team_finals(request: Request):
    service: CourseService = request.app.state.service
    data = await _team_session(request)
    try:
        fields = await _checked_form(request, data)
    except Refusal as exc:
        return _refused(request, exc)
    who = principal_of(data)
    message, refusal = None, None
    try:
        ids = [int(v) for v in fields.getlist("final")]
    except ValueError:
        ids = None
        refusal = {"code": "malformed_request", "message": "submission ids are whole numbers"}
    if ids is not None:
        try:
            chosen = await run_in_threadpool(service.choose_finals, who, ids)
            message = (f"Finals: {', '.join(map(str, chosen['finals']))} ({chosen['rule']})" if chosen["finals"]
                       else f"No final chosen: your {chosen['rule']} submission counts")
        except Refusal as exc:
            refusal = exc.body()["error"]
    view = await run_in_threadpool(_team_view, request, who, None)
    return render(request, "team.html", code=200 if refusal is None else 422 if refusal["code"] != "not_found"
                  else 404, session=data, receipt=None, refusal=refusal, message=message, **view)


@router.get("/team/submissions/{sub_id}/file")
async def team_file(request: Request, sub_id: int):
    from fastapi.responses import FileResponse

    data = await _team_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    try:
        path, name = await run_in_threadpool(request.app.state.service.file_of, principal_of(data), sub_id)
    except Refusal as exc:
        return _refused(request, exc, session=data)
    return FileResponse(path, media_type="application/octet-stream", filename=name)


# -- the board ------------------------------------------------------------------------------------------
#: The live board's files a visitor may read, and their media types.
BOARD_FILES = {"index.html": "text/html; charset=utf-8", "leaderboard.csv": "text/csv; charset=utf-8",
               "grades.csv": "text/csv; charset=utf-8", "leaderboard.md": "text/markdown; charset=utf-8"}


def _site_response(body: bytes, name: str) -> Response:
    """A file of the engine's site, with the engine's own policy (plus what only a header can say)."""
    from grader.leaderboard.render import content_security_policy

    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
               "Cache-Control": "no-cache"}
    if name == "index.html":
        headers["Content-Security-Policy"] = (content_security_policy()
                                              + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    else:
        headers["Content-Disposition"] = f'inline; filename="{name}"'
    return Response(body, media_type=BOARD_FILES[name], headers=headers)


@router.get("/leaderboard")
async def board_page(request: Request):
    """The live board: the leaderboard engine's page (see :mod:`.board`); a plain table until its first build."""
    board = getattr(request.app.state, "board", None)
    body = await run_in_threadpool(board.read, "index.html") if board is not None else None
    if body is not None:
        return _site_response(body, "index.html")
    data = await run_in_threadpool(read_session, request)
    plain = await run_in_threadpool(request.app.state.service.leaderboard)
    return render(request, "leaderboard.html", session=data, board=plain, building=board is not None)


@router.get("/leaderboard/{name}")
async def board_file(request: Request, name: str):
    """A file of the live board (``leaderboard.csv``...): read-only, 404 before the first build."""
    board = getattr(request.app.state, "board", None)
    body = None
    if board is not None and name in BOARD_FILES:
        body = await run_in_threadpool(board.read, name)
    if body is None:
        return _refused(request, Refusal(404, "not_found", "no such file on the board (yet)"))
    return _site_response(body, name)


# -- the instructor's dashboard ---------------------------------------------------------------------------
def _dashboard(service: CourseService) -> dict:
    status = service.status()
    with service.course.sessions() as s:
        roster = s.execute(select(Team.name, Member.student_id, Member.name, Member.email)
                           .join(Member, Member.team_id == Team.id).order_by(Team.name, Member.student_id)).all()
        per_day = s.execute(select(Submission.day, Submission.status, func.count())
                            .group_by(Submission.day, Submission.status).order_by(Submission.day)).all()
        invalid = list(s.scalars(select(Submission.errors).where(Submission.status == "invalid")))
    days: dict = {}
    for day, kind, n in per_day:
        days.setdefault(day, {"scored": 0, "invalid": 0})[kind] = n
    codes = Counter()
    examples = {}
    for errors in invalid:
        for code in {e.get("code") for e in errors or []}:
            codes[code] += 1
        for e in errors or []:
            examples.setdefault(e.get("code"), e)
    members: dict = {}
    for team, sid, name, email in roster:
        members.setdefault(team, []).append({"student_id": sid, "name": name, "email": email})
    return {"status": status, "members": members, "days": days,
            "codes": [(code, n, examples.get(code, {})) for code, n in codes.most_common()],
            "chain": _chain_problems(service)}


def _chain_problems(service: CourseService) -> dict:
    """The audit chain's breaks (database only: cheap enough for every dashboard load)."""
    from .audit import verify_chain
    from .db import AuditEvent

    with service.course.sessions() as s:
        problems = verify_chain(s)
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    return {"ok": not problems, "problems": problems, "events": events}


async def _admin_session(request: Request):
    data = await run_in_threadpool(read_session, request)
    return data if data is not None and data.get("admin") else None


@router.get("/admin")
async def admin_page(request: Request):
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    view = await run_in_threadpool(_dashboard, request.app.state.service)
    return render(request, "admin.html", session=data, message=None, refusal=None, **view)


@router.get("/admin/reveal")
async def admin_reveal_confirm(request: Request):
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    service: CourseService = request.app.state.service
    status = await run_in_threadpool(service.status)
    return render(request, "reveal.html", session=data, status=status)


@router.post("/admin/reveal")
async def admin_reveal(request: Request):
    service: CourseService = request.app.state.service
    data = await _admin_session(request)
    try:
        fields = await _checked_form(request, data)
    except Refusal as exc:
        return _refused(request, exc)
    if fields.get("confirm") != "reveal":
        return RedirectResponse("/admin/reveal", status_code=303)
    message, refusal = None, None
    try:
        await run_in_threadpool(service.reveal)
        message = "The private board is revealed; submissions are closed."
    except Refusal as exc:
        refusal = exc.body()["error"]
    view = await run_in_threadpool(_dashboard, service)
    return render(request, "admin.html", code=200 if refusal is None else 409, session=data, message=message, refusal=refusal, **view)


@router.get("/admin/integrity")
async def admin_integrity(request: Request):
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    report = await run_in_threadpool(integrity_of_course, request.app.state.service)
    return render(request, "integrity.html", session=data, report=report.to_dict())


@router.get("/admin/integrity.csv")
async def admin_integrity_csv(request: Request):
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    report = await run_in_threadpool(integrity_of_course, request.app.state.service)
    return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="integrity.csv"'})


def _gradebook(service: CourseService, fmt: str, scale: Optional[str]):
    """The gradebook the ``server grades`` command writes (same functions), as text for a download."""
    if fmt not in FORMATS:
        raise KitError(f"unknown gradebook format {fmt!r}", code="bad_option", expected=" or ".join(FORMATS))
    from .baselines import baselines_of

    roster = read_roster(service.course.private / ROSTER_CSV)
    # The default scale's reference points are the course's baselines, when it has them.
    return make_gradebook(roster, course_scores(service, baselines_of(service.course)), parse_scale(scale or None))


async def _grades(request: Request, fmt: str, scale: Optional[str], readme: bool):
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    try:
        book = await run_in_threadpool(_gradebook, request.app.state.service, fmt, scale)
    except KitError as exc:
        error = {"code": exc.code, "message": str(exc), "hint": getattr(exc, "hint", None)}
        return render(request, "error.html", code=409 if exc.code == "not_revealed" else 422, session=data,
                      error=error)
    name = f"grades-{fmt}.csv"
    if readme:
        return Response(readme_text(book, fmt, name), media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="grades-{fmt}-README.txt"'})
    return Response(render_gradebook(book, fmt), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/admin/grades.csv")
async def admin_grades(request: Request, format: str = "csv", scale: Optional[str] = None):
    """The gradebook (private: names and e-mails), after the reveal; ``scale`` as ``server grades --scale``."""
    return await _grades(request, format, scale, readme=False)


@router.get("/admin/grades-readme.txt")
async def admin_grades_readme(request: Request, format: str = "csv", scale: Optional[str] = None):
    """What the gradebook's columns and scale mean (the README ``server grades`` writes beside the file)."""
    return await _grades(request, format, scale, readme=True)


@router.get("/admin/audit")
async def admin_audit(request: Request):
    """The full ``server audit``: the chain, the database and every stored file's hash (reads the whole store)."""
    data = await _admin_session(request)
    if data is None:
        return RedirectResponse("/", status_code=303)
    report = await run_in_threadpool(audit_course, request.app.state.service.course)
    return render(request, "audit.html", session=data, audit=report)
