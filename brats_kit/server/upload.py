"""Handing in over HTTP: the request body (multipart field ``file`` or raw) streamed into the store with the cap
enforced, then scored and recorded by the service.

:func:`hand_in` is the one path, shared by the API's ``POST /api/v1/submissions`` and the team page's upload form.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Optional

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from .refusal import Principal, Refusal
from .service import CourseService
from .store import TooLarge

#: Bytes a multipart body may hold beyond the file itself (boundaries, part headers, small fields).
MULTIPART_SLACK = 64 << 10
_HEADER_CAP = 8 << 10


async def _receive_multipart(request: Request, upload, content_type: str, limit: int) -> None:
    """Stream the ``file`` part of a multipart body into ``upload`` (python-multipart's streaming parser)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise Refusal(422, "malformed_request", "multipart body without a boundary")
    st = {"field": b"", "value": b"", "headers": {}, "in_file": False, "files": 0, "header_bytes": 0}

    def on_part_begin():
        st["headers"], st["in_file"] = {}, False

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

    def on_part_data(data, start, end):
        if st["in_file"]:
            upload.write(data[start:end])

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
    if not st["files"]:
        raise Refusal(422, "malformed_request", "no 'file' part in the multipart body",
                      {"hint": "send the file as the multipart field 'file', or as the raw body"})


async def receive_upload(request: Request, service: CourseService, cap: Optional[int] = None):
    """The request body (multipart field ``file`` or raw), streamed into the store's tmp/ with the cap enforced.

    ``cap``: the size cap (default: the service's, a submission file's).
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
            await _receive_multipart(request, upload, content_type, limit)
        else:
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


async def hand_in(request: Request, service: CourseService, admit: Callable[[], Principal]) -> dict:
    """Admit the team, receive the body, score it in the isolated worker, store and record it: the receipt.

    ``admit`` (run in a worker thread) returns the team once its deadline and quotas are
    prechecked, or raises the refusal: the API passes the bearer token's
    :meth:`~.service.CourseService.authenticate_upload`, the team page its session's
    :meth:`~.service.CourseService.precheck`. Nothing of the body is read before.
    """
    who = await run_in_threadpool(admit)
    upload, sha = await receive_upload(request, service)
    try:
        verdict = await asyncio.wrap_future(service.score(upload))
        return await run_in_threadpool(service.hand_in, who, upload, sha, verdict)
    finally:
        upload.discard()  # a no-op once the file is in the store
