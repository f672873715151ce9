"""The FastAPI dependencies of the API and the pages: the course being served, and who is asking by bearer token."""
from __future__ import annotations

from typing import Optional

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from .refusal import Principal
from .service import CourseService


def service_of(request: Request) -> CourseService:
    """Dependency: the course being served (the application's :class:`~.service.CourseService`)."""
    return request.app.state.service


def client_address(request: Request) -> str:
    """The peer's address, the key of the failed-authentication limiter."""
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> Optional[str]:
    """The token of an ``Authorization: Bearer`` header (None when absent or of another scheme)."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def team_auth(request: Request) -> Principal:
    """Dependency: the team of the request's bearer token (401, or 429 after repeated failures)."""
    return await run_in_threadpool(service_of(request).authenticate, bearer_token(request), client_address(request))


async def admin_auth(request: Request) -> Principal:
    """Dependency: the instructor's bearer token."""
    return await run_in_threadpool(service_of(request).authenticate, bearer_token(request), client_address(request),
                                   admin=True)
