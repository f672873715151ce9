"""The course's pages: :mod:`.sessions` (the signed cookie and its guards) and :mod:`.views` (the routes).

The pages call :class:`~..service.CourseService` only: they import no database module
(an import contract in ``pyproject.toml`` checks it).
"""
from .sessions import COOKIE, SignInFirst, read_session
from .views import refusal_page, render, router

__all__ = ["COOKIE", "SignInFirst", "read_session", "refusal_page", "render", "router"]
