"""Sign-in sessions of the course's pages: a signed cookie, and the session and CSRF guards as dependencies.

A session is a signed cookie (``itsdangerous``, secret in ``COURSE/private/session_secret``
created with mode 0600 on first use) holding the principal, a CSRF token, a
binding to the token hash, so rotating a team's token ends its sessions, and a
session id the database must still hold (:mod:`..signins`): signing out, a token
rotation or the instructor's "end all sessions" revoke the session server-side, so
a copied cookie opens nothing afterwards. The cookie is HttpOnly, SameSite=Strict,
and Secure when the request came over HTTPS (behind a trusted proxy: its
``X-Forwarded-Proto``) or the server runs with ``--https-only``. Routes take their session from a
dependency: :func:`team_session` / :func:`admin_session` for a page (no session:
back to the sign-in form), :func:`team_form` / :func:`admin_form` / :func:`any_form`
for a POST (no session or a wrong CSRF token: a 403 :class:`~..refusal.Refusal`).

CSRF tokens travel in POST bodies only, never in a URL (which access logs, proxies and
the browser's history keep): a hidden form field, which the upload form sends before its
file (:func:`upload_csrf` checks it while the body streams, before a byte of the file is
kept). Every form post ends in a 303 redirect (post/redirect/get); its result travels to
the next page in the signed session cookie (:func:`redirect_after_post`, :func:`take_flash`).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from typing import Optional

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from ..refusal import Principal, Refusal
from ..deps import service_of
from ..service import CourseService

COOKIE = "brats_kit_session"
SECRET_FILE = "session_secret"
#: A session lasts a working day; signing in again is one form.
SESSION_MAX_AGE_S = 12 * 3600


class SignInFirst(Exception):
    """A page asked for without a session: the application answers with the sign-in form (303 to ``/``)."""


@dataclass(frozen=True)
class SignedIn:
    """The valid session of a request: the cookie's ``data``, its principal and, for a form, its fields."""

    data: dict
    who: Principal
    form: Optional[object] = None


def _secret(service: CourseService) -> bytes:
    """The course's session secret, created owner-only and whole: written aside, then linked to its name
    (fails if present), so that replicas starting together share one secret and never read a half-written one."""
    path = service.course.private / SECRET_FILE
    if not path.exists():
        fd, aside = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", dir=path.parent)  # owner-only (0600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_hex(32).encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(aside, path)
        except FileExistsError:
            pass  # another server made it first: its secret is the course's
        finally:
            os.unlink(aside)
    return path.read_bytes().strip()


def _serializer(request: Request) -> URLSafeTimedSerializer:
    state = request.app.state
    if getattr(state, "session_serializer", None) is None:
        state.session_serializer = URLSafeTimedSerializer(_secret(state.service), salt="brats-kit-session")
    return state.session_serializer


def binding(request: Request, digest: str) -> str:
    """A keyed digest of the stored token hash: the cookie names the token without carrying its hash."""
    key = _secret(service_of(request))
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()[:32]


def principal_of(data: dict) -> Principal:
    return Principal(None, None, True) if data.get("admin") else Principal(data["team_id"], data["team"])


def cookie(request: Request) -> Optional[dict]:
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
    data = cookie(request)
    if data is None or "csrf" not in data or data.get("anon"):
        return None  # an anonymous cookie only carries the sign-in form's CSRF token
    try:
        who = principal_of(data)
    except KeyError:
        return None
    service = service_of(request)
    digest = service.signed_in_hash(who)
    if not digest or not hmac.compare_digest(binding(request, digest), str(data.get("bind", ""))):
        return None  # the token was rotated since sign-in
    if not service.session_alive(who, data.get("sid")):
        return None  # signed out, or ended by the instructor
    return data


def secure_cookies(request: Request) -> bool:
    """Whether cookies get ``Secure``: an HTTPS request (uvicorn sets the scheme from a trusted proxy's
    ``X-Forwarded-Proto``) or a server run with ``--https-only``."""
    return request.url.scheme == "https" or bool(getattr(request.app.state, "https_only", False))


def set_session(request: Request, response: Response, data: dict) -> None:
    response.set_cookie(COOKIE, _serializer(request).dumps(data), max_age=SESSION_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict", secure=secure_cookies(request))


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookies(request))


def same_csrf(expected: Optional[str], given: Optional[str]) -> bool:
    """Whether a form's CSRF token is the session's (constant time)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def bad_csrf() -> Refusal:
    return Refusal(403, "bad_csrf", "the form's security token is missing or stale: reload the page and retry")


def _role_fits(data: Optional[dict], role: str) -> bool:
    return data is not None and (role == "any" or bool(data.get("admin")) == (role == "admin"))


def _page_guard(role: str):
    async def guard(request: Request) -> SignedIn:
        data = await run_in_threadpool(read_session, request)
        if not _role_fits(data, role):
            raise SignInFirst()
        request.state.session = data  # an error page shows who is signed in
        return SignedIn(data, principal_of(data))
    return guard


def _form_guard(role: str, *, streamed: bool = False):
    async def guard(request: Request) -> SignedIn:
        data = await run_in_threadpool(read_session, request)
        if not _role_fits(data, role):
            raise Refusal(403, "no_session", "sign in first")  # no body is parsed without a session
        form = None
        if not streamed:
            form = await request.form(max_files=0, max_fields=1000)
            if not same_csrf(data["csrf"], form.get("csrf")):
                raise bad_csrf()
        # streamed: an upload's body goes to the store through the hand-in's receiver, which
        # checks the token of the form's field sent before the file (upload_csrf).
        request.state.session = data
        return SignedIn(data, principal_of(data), form)
    return guard


def upload_csrf(data: dict):
    """The check the upload's receiver runs on the form fields sent before the file (403 without the token)."""
    def check(fields: dict) -> None:
        if not same_csrf(data.get("csrf"), fields.get("csrf")):
            raise bad_csrf()
    return check


#: The session key of a form post's result, shown by the page the post redirects to.
FLASH = "flash"


def redirect_after_post(request: Request, url: str, data: dict, **flash) -> RedirectResponse:
    """A 303 to ``url`` whose page shows ``flash`` (a receipt id, a message, a refusal), kept in the session."""
    response = RedirectResponse(url, status_code=303)
    set_session(request, response, {**data, FLASH: flash} if flash else data)
    return response


def take_flash(request: Request, response: Response, data: dict) -> None:
    """Once a page has shown the flash of ``data``, the session forgets it (a reload shows it no more)."""
    if data.get(FLASH):
        set_session(request, response, {k: v for k, v in data.items() if k != FLASH})


#: Dependencies: a page of a signed-in team / of the instructor (otherwise the sign-in form).
team_session = _page_guard("team")
admin_session = _page_guard("admin")
#: Dependencies: a form posted by a signed-in team / the instructor / anyone signed in, its CSRF token checked.
team_form = _form_guard("team")
team_upload = _form_guard("team", streamed=True)
admin_form = _form_guard("admin")
any_form = _form_guard("any")

__all__ = ["COOKIE", "SignedIn", "SignInFirst", "team_session", "admin_session", "team_form",
           "team_upload", "admin_form", "any_form", "read_session", "set_session", "end_session", "binding",
           "cookie", "same_csrf", "bad_csrf", "upload_csrf", "redirect_after_post", "take_flash", "FLASH"]
