"""The students' client: validate locally with the grader's own validator, upload, return the receipt;
list the team's receipts and choose its finals.

Every function takes the server as ``http://HOST:PORT``, ``https://...`` or a bare
``HOST:PORT`` (which means ``http://``), see :func:`server_url`.

>>> receipt = submit("test_data_ypred.dat", "127.0.0.1:8000", token)         # doctest: +SKIP
>>> receipt.status, receipt.public["dice"], receipt.remaining_today          # doctest: +SKIP
('scored', 0.81, 4)
>>> [r["id"] for r in list_submissions("127.0.0.1:8000", token)["submissions"]]   # doctest: +SKIP
[1, 2]
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import httpx

from data_spec.errors import BadArgumentError, KitError
from grader.errors import InvalidSubmissionError
from grader.validate import validate_submission

#: Environment variable the ``submit`` command reads the token from when ``--token`` is not given.
TOKEN_ENV = "BRATS_KIT_TOKEN"
API = "/api/v1"


class ServerUnreachable(KitError):
    """No answer from the server (exit code 4 of ``brats-kit submit``)."""

    code = "server_unreachable"


class SubmissionRefused(KitError):
    """The server refused the upload (bad token, deadline, quota, size...); ``status`` is the HTTP status."""

    code = "refused"

    def __init__(self, status: int, body: dict):
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            message, code = err.get("message", "refused"), err.get("code", "refused")
            details = {k: v for k, v in err.items() if k not in ("message", "code")}
        else:  # the framework's own 422 (a malformed request)
            message, code, details = f"the server refused the request: {body}", "malformed_request", {}
        hint = None
        if "resets_at" in details:
            hint = f"the quota resets at {details['resets_at']}"
        elif status == 401:
            hint = f"check the token your instructor gave you (--token or ${TOKEN_ENV})"
        elif isinstance(details.get("hint"), str):
            hint = details.pop("hint")
        super().__init__(f"HTTP {status}: {message}", code=code, hint=hint)
        self.status, self.details = status, details


class UnexpectedAnswer(KitError):
    """The server answered, but not as the course's API does (another web server at that address?)."""

    code = "bad_response"


FOREIGN_HINT = "is this the course's server? check --server"


@dataclass
class Receipt:
    """The server's receipt of one submission (``raw`` holds the whole JSON object)."""

    id: int
    team: str
    sha256: str
    bytes: int
    submitted_at: str
    status: str
    errors: list
    public: Optional[dict]
    remaining_today: Optional[int]
    deadline: Optional[str]
    quota_resets_at: Optional[str] = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "scored"

    @classmethod
    def from_json(cls, data: dict) -> "Receipt":
        if not all(key in data for key in ("id", "team", "sha256", "bytes", "submitted_at", "status")):
            raise UnexpectedAnswer("the server's receipt lacks its id, team, sha256, size, time or status",
                                   hint=FOREIGN_HINT)
        return cls(data["id"], data["team"], data["sha256"], data["bytes"], data["submitted_at"], data["status"],
                   data.get("errors", []), data.get("public"), data.get("remaining_today"), data.get("deadline"),
                   data.get("quota_resets_at"), data)


def _json(response: httpx.Response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"error": {"code": "bad_response", "message": response.text[:200]}}


def server_url(server: str) -> str:
    """The server's base URL: ``HOST:PORT`` without a scheme means ``http://HOST:PORT``.

    Raises
    ------
    BadArgumentError
        A scheme other than http or https, or no host.

    Examples
    --------
    >>> server_url("127.0.0.1:8000")
    'http://127.0.0.1:8000'
    >>> server_url("https://course.example.org/")
    'https://course.example.org'
    >>> server_url("ftp://course.example.org")
    Traceback (most recent call last):
    ...
    data_spec.errors.BadArgumentError: the server's URL must use http or https, not 'ftp'; \
expected http://HOST:PORT or https://HOST. Hint: a bare HOST:PORT means http://HOST:PORT
    """
    text = str(server).strip()
    # "HOST:PORT" has no scheme; "NAME:" not followed by a port number is one ("javascript:", "http:/x").
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?", text)
    if m and not m.group(2) and text[m.end():m.end() + 1].isdigit():
        m = None
    scheme, rest = (m.group(1), text[m.end():]) if m else ("http", text)
    if m and not m.group(2) and scheme.lower() in ("http", "https"):
        raise BadArgumentError(f"malformed server URL {text[:80]!r}", code="bad_server_url",
                               expected=f"{scheme.lower()}://HOST:PORT", hint="two slashes after the scheme")
    if scheme.lower() not in ("http", "https"):
        raise BadArgumentError(f"the server's URL must use http or https, not {scheme[:20]!r}",
                               code="bad_server_url", expected="http://HOST:PORT or https://HOST",
                               hint="a bare HOST:PORT means http://HOST:PORT")
    out = f"{scheme.lower()}://{rest.rstrip('/')}"
    try:
        host = httpx.URL(out).host
    except httpx.InvalidURL:
        host = ""
    if not host:
        raise BadArgumentError(f"no host in the server's URL {text[:80]!r}", code="bad_server_url",
                               expected="http://HOST:PORT or https://HOST", hint="e.g. --server 127.0.0.1:8000")
    return out


def _token(token: Optional[str]) -> str:
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise KitError("no token", code="no_token", hint=f"pass --token or set ${TOKEN_ENV}")
    return token


def _call(method: str, server: str, path: str, *, token: Optional[str] = None, ok: int = 200,
          timeout: float = 30.0, lost: Optional[str] = None, **kwargs) -> dict:
    """One request to the API and its JSON object; a refusal as :class:`SubmissionRefused`, no answer as
    :class:`ServerUnreachable`, an answer that is no JSON object as :class:`UnexpectedAnswer`.

    ``lost`` is the hint when the connection breaks after the request may have arrived.
    """
    base = server_url(server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=base, timeout=timeout, headers=headers) as client:
            r = client.request(method, f"{API}{path}", **kwargs)
    except httpx.ConnectError as exc:
        raise ServerUnreachable(f"cannot reach {base} ({type(exc).__name__})",
                                hint="check the URL and that the server is running") from None
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"no answer from {base} ({type(exc).__name__})",
                                hint=lost or "check the URL and that the server is running") from None
    if r.status_code != ok:
        raise SubmissionRefused(r.status_code, _json(r))
    try:
        data = r.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UnexpectedAnswer(f"{base}{API}{path} did not answer with a JSON object (HTTP {r.status_code}, "
                               f"{r.headers.get('content-type', 'no content type')[:60]})",
                               hint=FOREIGN_HINT)
    return data


def competition_info(server: str, *, timeout: float = 30.0) -> dict:
    """The public facts a server gives: slice count, test ids, size cap, quotas, deadline."""
    return _call("GET", server, "/competition", timeout=timeout)


def submit(file, server: str, token: Optional[str] = None, *, timeout: float = 120.0, validate: bool = True) -> Receipt:
    """Validate ``file`` locally, upload it to ``server`` with ``token``, return the receipt.

    Parameters
    ----------
    file : path-like
        The submission.
    server : str
        ``http://HOST:PORT``.
    token : str, optional
        The team's token (default: the ``BRATS_KIT_TOKEN`` environment variable).
    timeout : float
        Seconds to wait for the server.
    validate : bool
        Validate locally first (the command always does). False uploads the file as it
        is, so that the server's own verdict (and its invalid cap) applies: what a
        simulated class uses to hand in its deliberate mistakes.

    Raises
    ------
    InvalidSubmissionError
        The file is invalid (found locally: it is not uploaded); ``.errors`` holds every problem.
    SubmissionRefused
        The server refused it (``.status``: 401, 403, 413, 429, 422; 507 when its disk is full: the
        file was not received).
    ServerUnreachable
        No connection.
    """
    token = _token(token)
    if validate:
        info = competition_info(server, timeout=timeout)
        if not all(key in info for key in ("n_slices", "case_ids", "max_bytes")):
            raise UnexpectedAnswer("the server does not say how many slices and which cases a submission holds",
                                   hint=FOREIGN_HINT)
        validation = validate_submission(file, n_slices=info["n_slices"], case_ids=info["case_ids"],
                                         max_bytes=info["max_bytes"])
        if not validation.ok:
            raise InvalidSubmissionError(validation.errors, path=file)
    with open(file, "rb") as fh:
        # The local file name is never sent: the server names files by content.
        data = _call("POST", server, "/submissions", token=token, ok=201, timeout=timeout,
                     files={"file": ("submission", fh, "application/octet-stream")},
                     lost="the file may or may not have arrived: list your submissions once it is back")
    return Receipt.from_json(data)


def is_code(path) -> bool:
    """Whether ``path`` is a code submission (a folder, or a ``.zip``) rather than a prediction file."""
    import zipfile

    return os.path.isdir(path) or (os.path.isfile(path) and zipfile.is_zipfile(path))


def zip_code(path) -> bytes:
    """A code submission as the ``.zip`` the server takes, checked first by the grader's own package rules.

    A folder is zipped (its content at the top); a ``.zip`` is sent as it is.

    Raises
    ------
    CodePackageError
        A malformed or hostile package (no ``submission.py``, links, paths leaving the folder...).
    """
    import io
    import shutil
    import tempfile
    import zipfile

    from grader.code import unpack_submission

    scratch = tempfile.mkdtemp(prefix="brats-submit-")
    try:
        checked = unpack_submission(path, os.path.join(scratch, "code"))  # refused here as the server would
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for root, dirs, files in os.walk(checked):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    # Fixed times and modes: the same folder always zips to the same bytes (the copy above
                    # has fresh mtimes), so a receipt's sha256 names the code, not the second it was sent.
                    info = zipfile.ZipInfo(os.path.relpath(full, checked), date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr, info.compress_type = 0o100644 << 16, zipfile.ZIP_DEFLATED
                    with open(full, "rb") as fh:
                        zf.writestr(info, fh.read())
        return buf.getvalue()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def submit_code(path, server: str, token: Optional[str] = None, *, timeout: float = 120.0) -> dict:
    """Upload a code submission (a folder or a ``.zip`` holding ``submission.py``); the job's receipt, ``queued``.

    Run it at home first with ``brats-kit code run`` (the same sandbox and limits).
    The job's outcome comes later: :func:`list_code_jobs`.
    """
    token = _token(token)
    data = zip_code(path)
    job = _call("POST", server, "/code", token=token, ok=201, timeout=timeout,
                files={"file": ("submission.zip", data, "application/zip")},
                lost="the code may or may not have arrived: list your submissions once it is back")
    if not all(key in job for key in ("id", "status", "sha256")):
        raise UnexpectedAnswer("the server's receipt of the code lacks its id, status or sha256", hint=FOREIGN_HINT)
    return job


def list_code_jobs(server: str, token: Optional[str] = None, *, timeout: float = 30.0) -> Optional[list]:
    """The team's code jobs with their status (``GET /code``), or None when the course has no code track."""
    try:
        listing = _call("GET", server, "/code", token=_token(token), timeout=timeout)
    except SubmissionRefused as exc:
        if exc.status == 404 and exc.code == "no_code_track":
            return None
        raise
    jobs = listing.get("jobs")
    if not isinstance(jobs, list) or not all(isinstance(j, dict) and "id" in j for j in jobs):
        raise UnexpectedAnswer("the server's list of code jobs is not a list", hint=FOREIGN_HINT)
    return jobs


def list_submissions(server: str, token: Optional[str] = None, *, timeout: float = 30.0) -> dict:
    """The team's own receipts, oldest first, with what is left today (``GET /submissions``).

    Returns
    -------
    dict
        ``team``, ``submissions`` (receipts as the server gives them: ``id``, ``submitted_at``,
        ``status``, ``public``, ``final``, ``errors``...), ``remaining_today``, ``quota_resets_at``,
        ``deadline``, ``finals_allowed``.

    Raises
    ------
    SubmissionRefused
        The server refused (``.status`` 401: a wrong token).
    ServerUnreachable
        No connection.
    """
    listing = _call("GET", server, "/submissions", token=_token(token), timeout=timeout)
    subs = listing.get("submissions")
    if not isinstance(subs, list) or not all(isinstance(r, dict) and "id" in r for r in subs):
        raise UnexpectedAnswer("the server's list of submissions is not a list of receipts",
                               hint=FOREIGN_HINT)
    return listing


def choose_finals(server: str, token: Optional[str], ids, *, timeout: float = 30.0) -> dict:
    """Name up to the course's number of the team's own scored submissions as its finals (``PUT /finals``).

    An empty ``ids`` goes back to the default: the best public score counts.

    Raises
    ------
    SubmissionRefused
        The server refused (``.status``: 401, 403 after the deadline, 404 another team's id,
        422 too many or not scored).
    ServerUnreachable
        No connection.
    UnexpectedAnswer
        The answer is not the course API's.
    """
    chosen = _call("PUT", server, "/finals", token=_token(token), timeout=timeout, json={"ids": [int(i) for i in ids]})
    if not isinstance(chosen.get("finals"), list):
        raise UnexpectedAnswer("the server's answer does not name the finals", hint=FOREIGN_HINT)
    return chosen
