"""The submission server: teams hand in over HTTP and get an instant receipt.

Library entry points (the ``brats-kit server`` and ``brats-kit submit`` commands wrap them):

- :func:`init_course` / :class:`Course`: create and open a course folder (:mod:`.course`).
- :func:`create_app`: the FastAPI application (:mod:`.app`); :func:`serve` runs it, and
  :func:`start_server` runs it in a background thread on a free loopback port.
- :func:`submit`: the client (validate locally, upload, :class:`Receipt`).
- :func:`export_submissions`, :func:`audit_course`, :class:`CourseService` (status, reveal, tokens).
"""
from .client import Receipt, ServerUnreachable, SubmissionRefused, choose_finals, competition_info, submit
from .course import Course, CourseConfig, init_course

__all__ = ["Course", "CourseConfig", "init_course", "submit", "Receipt", "ServerUnreachable", "SubmissionRefused",
           "competition_info", "choose_finals", "create_app", "serve", "start_server", "ServerThread", "export_submissions",
           "audit_course", "CourseService"]


def __getattr__(name):
    # Lazy: the client (students' machines) needs neither FastAPI nor uvicorn.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("serve", "start_server", "ServerThread"):
        from . import run

        return getattr(run, name)
    if name == "export_submissions":
        from .export import export_submissions

        return export_submissions
    if name == "audit_course":
        from .verify import audit_course

        return audit_course
    if name == "CourseService":
        from .service import CourseService

        return CourseService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
