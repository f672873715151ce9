"""The code track's API: ``POST /api/v1/code`` hands in a ``.zip``; the team lists its jobs; the instructor reads logs.

Only mounted when the course was created with ``--code``. The archive is checked by
the grader's own package rules (:func:`grader.code.unpack_submission`: hostile paths,
links, bombs, no ``submission.py``) before it is stored and queued; the receipt comes
at once with status ``queued``.
"""
from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from .deps import admin_auth, bearer_token, client_address, service_of, team_auth
from .refusal import Principal, Refusal
from .schemas import CodeJob, CodeJobList, CodeJobLogs, ErrorBody
from .service import submission_id
from .upload import hand_in_code

router = APIRouter(prefix="/api/v1", responses={code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 429)})


def _route(method, path: str, model, **kw):
    """``router.<method>`` with the answer's model, keeping exactly the keys the service returned."""
    return getattr(router, method)(path, response_model=model, response_model_exclude_unset=True, **kw)


def jobs_of(request: Request):
    """Dependency: the course's :class:`~.jobs.CodeJobs` (404 when the course has no code track)."""
    jobs = getattr(request.app.state, "code_jobs", None)
    if jobs is None:
        raise Refusal(404, "no_code_track", "this course takes no code submissions")
    return jobs


@_route("post", "/code", CodeJob, status_code=201, summary="Hand in code: a .zip of the folder holding submission.py",
             dependencies=[Depends(HTTPBearer(auto_error=False))])
async def post_code(request: Request, jobs=Depends(jobs_of)):
    service = service_of(request)
    admit = partial(service.authenticate_upload, bearer_token(request), client_address(request))
    return await hand_in_code(request, service, jobs, admit)


@_route("get", "/code", CodeJobList, summary="The team's code jobs and their status")
async def list_code(who: Principal = Depends(team_auth), jobs=Depends(jobs_of)):
    return await run_in_threadpool(jobs.list_jobs, who)


@_route("get", "/code/{job_id}", CodeJob, summary="One of the team's code jobs (404 for any other)")
async def get_code(job_id: str, who: Principal = Depends(team_auth), jobs=Depends(jobs_of)):
    key = submission_id(job_id)  # any id that cannot be one of the team's is the same 404, before the database
    if key is None:
        raise Refusal(404, "not_found", "no such code job")
    return await run_in_threadpool(jobs.get_job, who, key)


@_route("get", "/admin/code", CodeJobLogs, summary="Every code job with its full log (the instructor's)")
async def admin_code(who: Principal = Depends(admin_auth), jobs=Depends(jobs_of)):
    return await run_in_threadpool(jobs.all_jobs)
