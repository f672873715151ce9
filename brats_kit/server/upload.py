"""Handing in over HTTP: the request body (multipart field ``file`` or raw) streamed into the store with the cap
enforced, then scored and recorded by the service.

:func:`hand_in` is the one path, shared by the API's ``POST /api/v1/submissions`` and the team page's upload form.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.concurrency import run_in_threadpool

from .refusal import Principal, Refusal
from .service import CourseService
from .store import StorageFull, TooLarge

_log = logging.getLogger("brats_kit.server")

#: ``(method, path)`` of the routes that stream an upload through :func:`hand_in` (their cap is the file's own);
#: every other body is capped small by the application's :class:`~.app.BodyLimit`.
STREAMED_BODIES = frozenset({("POST", "/api/v1/submissions"), ("POST", "/team/upload"), ("POST", "/api/v1/code"),
                             ("POST", "/team/code")})
#: Bytes a multipart body may hold beyond the file itself (boundaries, part headers, small fields).
MULTIPART_SLACK = 64 << 10
_HEADER_CAP = 8 << 10


async def _receive_multipart(request: Request, upload, content_type: str, limit: int,
                             before_file: Optional[Callable[[dict], None]] = None) -> None:
    """Stream the ``file`` part of a multipart body into ``upload`` (python-multipart's streaming parser).

    ``before_file(fields)``, when given, sees the small text fields sent before the file
    (the page's CSRF token) and may refuse before a byte of the file is kept.
    """
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise Refusal(422, "malformed_request", "multipart body without a boundary")
    st = {"field": b"", "value": b"", "headers": {}, "in_file": False, "files": 0, "header_bytes": 0,
          "name": None, "fields": {}}

    def on_part_begin():
        st["headers"], st["in_file"], st["name"] = {}, False, None

    def grow(key, data, start, end):
        st["header_bytes"] += end - start
        if st["header_bytes"] > _HEADER_CAP:
            raise Refusal(422, "malformed_request", "multipart part headers are too long")
        st[key] += data[start:end]

    def on_header_end():
        st["headers"][st["field"].strip().lower()] = st["value"].strip()
        st["field"], st["value"] = b"", b""

    def on_headers_finished():
        st["header_bytes"] = 0
        _, disp = parse_options_header(st["headers"].get(b"content-disposition", b""))
        if disp.get(b"name") == b"file":
            st["files"] += 1
            if st["files"] > 1:
                raise Refusal(422, "malformed_request", "more than one 'file' part")
            st["in_file"] = True
            if before_file is not None:
                before_file({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                             for k, v in st["fields"].items()})
        elif before_file is not None and disp.get(b"name"):
            st["name"] = disp[b"name"]
            st["fields"][st["name"]] = b""

    def on_part_data(data, start, end):
        if st["in_file"]:
            upload.write(data[start:end])
        elif st["name"] is not None:
            st["header_bytes"] += end - start  # small fields share the part headers' cap
            if st["header_bytes"] > _HEADER_CAP:
                raise Refusal(422, "malformed_request", "a multipart field is too long")
            st["fields"][st["name"]] += data[start:end]

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_header_field": lambda d, s, e: grow("field", d, s, e),
        "on_header_value": lambda d, s, e: grow("value", d, s, e),
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(total)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise Refusal(422, "malformed_request", f"unreadable multipart body ({exc})") from None
    # finalize() accepts a body cut anywhere: only the closing boundary says the client sent all of it.
    if parser.state != MultipartState.END:
        raise Refusal(422, "malformed_request", "the multipart body ends before its closing boundary",
                      {"hint": "the upload was cut short: send the file again"})
    if not st["files"]:
        raise Refusal(422, "malformed_request", "no 'file' part in the multipart body",
                      {"hint": "send the file as the multipart field 'file', or as the raw body"})


async def receive_upload(request: Request, service: CourseService, cap: Optional[int] = None,
                         before_file: Optional[Callable[[dict], None]] = None):
    """The request body (multipart field ``file`` or raw), streamed into the store's tmp/ with the cap enforced.

    ``cap``: the size cap (default: the service's, a submission file's). ``before_file``: see
    :func:`_receive_multipart` (a raw body has no fields: it gets ``{}`` first).
    """
    own_cap = cap
    cap = cap or service.max_bytes
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    limit = cap + (MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refusal(413, "too_large", f"the file is over the size cap of {cap} bytes", {"max_bytes": cap})
    upload = service.open_upload() if own_cap is None else service.course.store.upload(own_cap)
    try:
        if multipart:
            await _receive_multipart(request, upload, content_type, limit, before_file)
        else:
            if before_file is not None:
                before_file({})
            async for chunk in request.stream():
                upload.write(chunk)
        if upload.size == 0:
            raise Refusal(422, "malformed_request", "empty upload: no file was sent")
        sha = upload.finish()  # made durable by the store's commit, once the file is scored
    except TooLarge:
        upload.discard()
        raise Refusal(413, "too_large", f"the file is over the size cap of {cap} bytes", {"max_bytes": cap}) from None
    except BaseException:
        upload.discard()
        raise
    return upload, sha


async def hand_in(request: Request, service: CourseService, admit: Callable[[], Principal],
                  before_file: Optional[Callable[[dict], None]] = None) -> dict:
    """Admit the team, receive the body, score it in the isolated worker, store and record it: the receipt.

    ``admit`` (run in a worker thread) returns the team once its deadline and quotas are
    prechecked, or raises the refusal; the upload then takes one of the team's slots
    (:class:`~.quotas.InFlight`), waiting for it in turn: the API passes the bearer token's
    :meth:`~.service.CourseService.authenticate_upload`, the team page its session's
    :meth:`~.service.CourseService.precheck`. Nothing of the body is read before.
    ``before_file``: the page's CSRF check, on the form fields sent before the file.
    """
    who = await run_in_threadpool(admit)
    # One team, one upload at a time (by default): the others wait here, before their bodies are read and
    # without a scoring worker, and are checked against the quotas again once their turn comes.
    async with service.quotas.in_flight.slot(who.team_id) as (others, waited):
        if waited or others:
            await run_in_threadpool(service.precheck, who, others)
        try:
            upload, sha = await receive_upload(request, service, before_file=before_file)
            try:
                verdict = await asyncio.wrap_future(service.score(upload))
                return await run_in_threadpool(service.hand_in, who, upload, sha, verdict)
            finally:
                upload.discard()  # a no-op once the file is in the store
        except StorageFull as exc:
            raise storage_full(who, exc) from None


def check_archive(path) -> None:
    """Refuse (422 ``bad_package``) an archive the sandbox would refuse, before anything is queued."""
    import shutil
    import tempfile

    from grader.code import unpack_submission
    from grader.errors import CodePackageError

    scratch = tempfile.mkdtemp(prefix="brats-check-")
    try:
        unpack_submission(path, f"{scratch}/code")
    except CodePackageError as exc:
        body = {k: v for k, v in exc.to_dict().items() if k in ("where", "expected", "hint") and v}
        raise Refusal(422, "bad_package", str(exc), body) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def hand_in_code(request: Request, service: CourseService, jobs, admit: Callable[[], Principal],
                       before_file: Optional[Callable[[dict], None]] = None) -> dict:
    """Admit the team, receive the archive, check it as the sandbox would and queue its job: the receipt.

    The code track's :func:`hand_in`, for ``POST /api/v1/code`` and the team page's form
    alike; ``jobs`` is the course's :class:`~.jobs.CodeJobs`; the receipt's status is ``queued``.
    """
    who = await run_in_threadpool(admit)
    upload, sha = await receive_upload(request, service, jobs.code.max_bytes, before_file)
    try:
        await run_in_threadpool(check_archive, upload.path)
        return await run_in_threadpool(jobs.enqueue, who, upload, sha)
    finally:
        upload.discard()  # a no-op once the archive is in the store


def storage_full(who: Principal, exc: StorageFull) -> Refusal:
    """507 ``storage_full``: logged for the instructor; the team is told the file was not received."""
    _log.error("storage full: an upload of team %r was refused and nothing of it kept (%s); "
               "free space in the course's store/ or raise its disk quota", who.team, exc)
    return Refusal(507, "storage_full", "the server's disk is full: the file was NOT received",
                   {"hint": "nothing was recorded and no quota was used; tell your instructor "
                            "(the server's disk or quota is full) and hand in again later"})
