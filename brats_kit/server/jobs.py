"""The code track on the server: code submissions queued as jobs in the course database, run by a worker pool.

A job's life: ``queued`` (its archive stored, a slot of the team's daily quota held),
``running`` (claimed with a lease: its time limit plus :data:`MARGIN_S`), then
``scored`` or ``invalid`` (it became a ``submission`` row, ranked like a file) or
``failed`` with a class (:data:`grader.code.FAILURE_CLASSES`, recorded as an invalid
submission: the student's code failed; or :data:`SERVER`: the server failed it twice,
recorded as no submission, so it counts against no quota).

Jobs never stick: a job whose worker died is retried once; a job still ``running``
when its lease ends, or when a server starts (its worker went with the old server),
is retried once too, then failed with :data:`SERVER`. Every outcome is recorded in
one transaction with its audit event.

Replicas (``server run --replica``) share the queue: the replica that claims a job
also takes the job's advisory lock (on its :class:`~.shared.LockSession`) and holds it
until the outcome is recorded. A starting replica leaves the others' running jobs
alone, and a ``running`` job whose lock is free has lost its replica (killed: its
connection ended, the lock with it): it is retried at the next look at the queue,
without waiting for its lease.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Optional

from sqlalchemy import select, update

from data_spec.errors import KitError

from . import audit
from .clock import iso
from .db import CodeJob, Submission, Team, keeps_file, write_transaction
from .grading import course_mask_scores
from .quotas import ACTIVE_JOBS
from .refusal import Principal, Refusal
from .shared import CODE_JOB, SessionLock

log = logging.getLogger("brats_kit.server.jobs")

QUEUED, RUNNING = ACTIVE_JOBS
SCORED, INVALID, FAILED = "scored", "invalid", "failed"
#: The failure class of a job the server could not run (worker lost twice, no sandbox): never the team's fault.
SERVER = "server"
MAX_ATTEMPTS = 2
#: Seconds beyond a job's time limit before its lease ends (start-up, the hidden inputs, scoring).
MARGIN_S = 60.0
#: The stored format of a code submission's row (its file is the archive).
FORMAT = "code"
#: Audit events of the code track (the outcomes use the submission events).
QUEUED_EVENT, SERVER_FAILED_EVENT = "code_queued", "code_failed"
#: Default size cap of an uploaded archive.
MAX_ARCHIVE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class CodeConfig:
    """What ``server init --code`` enabled (``course.json``'s ``extra.code``)."""

    hidden: str
    time_limit: float = 300.0
    memory_mb: int = 4096
    show_logs: bool = False
    workers: int = 1
    max_bytes: int = MAX_ARCHIVE_BYTES
    #: The host user jobs run as (``--code-user``); None in a course made before it was recorded:
    #: ``nobody`` when the server is root (:func:`grader.code.code_user`).
    user: Optional[str] = None

    def limits(self) -> dict:
        return {"time_limit": self.time_limit, "memory_mb": self.memory_mb}


def code_config(config) -> Optional[CodeConfig]:
    """The course's code track, or None when it is not enabled."""
    data = (config.extra or {}).get("code")
    return None if not data else CodeConfig(**data)


def check_code_track(competition, *, time_limit: float, memory_mb: int, workers: int = 1,
                     show_logs: bool = False, user: Optional[str] = None) -> CodeConfig:
    """Refuse the code track where it cannot run: no hidden test slices, no working sandbox, bad limits.

    ``user`` is the host user jobs run as (default: ``nobody`` when this process is root, else
    its own user); the sandbox is probed as that user, and its name is recorded.

    Raises
    ------
    MissingFileError
        The competition has no hidden test slices (``data synth --hidden-test K``).
    SandboxUnavailableError
        No sandbox can be made on this machine: student code never runs unsandboxed.
        :class:`~grader.errors.CodeUserError` when the code user cannot reach the Python environment.
    BadArgumentError
        No such user, or another user asked of a process that is not root.
    """
    from data_spec.layout import find_hidden
    from data_spec.truth import load_hidden_truth
    from grader.code import Limits, code_user, probe_sandbox
    from grader.code.users import current_user_name

    Limits(time_limit=time_limit, memory_mb=memory_mb)
    if not 1 <= workers <= 256:
        from data_spec.errors import BadArgumentError

        raise BadArgumentError(f"{workers} code workers", expected="1 to 256")
    hidden = find_hidden(Path(competition))
    load_hidden_truth(hidden)  # unreadable hidden slices are refused now, not at the first job
    runs_as = code_user(user)
    probe_sandbox(runs_as)
    return CodeConfig(hidden=str(hidden.resolve()), time_limit=float(time_limit), memory_mb=int(memory_mb),
                      show_logs=bool(show_logs), workers=int(workers),
                      user=runs_as.name if runs_as else current_user_name())


def check_code_user(config) -> None:
    """Refuse (a named error) to start a course's code track whose jobs' user cannot run a sandbox here.

    Nothing to check without a code track. Called before the server binds (``server run``) and when
    the code track starts; the probe runs once per process and user.
    """
    code = code_config(config)
    if code is not None:
        from grader.code import code_user, probe_sandbox

        probe_sandbox(code_user(code.user))


def enable_code_track(course, code: CodeConfig) -> None:
    """Record ``code`` in the course's configuration (``private/course.json``)."""
    import json

    from .course import CONFIG_JSON, write_private

    path = Path(course) / "private" / CONFIG_JSON
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("extra", {})["code"] = asdict(code)
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _failure_fields(run: dict) -> dict:
    """The invalid submission row of a job whose code failed: its class and one line, never its output."""
    error = {"code": f"code_{run['failure']}", "message": run.get("detail") or run["failure"],
             "where": "predict(x)", "expected": "a (n, 240, 240) array of 0/1 within the limits",
             "hint": "run 'brats-kit code run' on the public test inputs to see the failure at home"}
    return {"status": INVALID, "format": FORMAT, "errors": [error], "public": None, "private": None, "counts": None}


class _Stale(Exception):
    """A job's outcome arrived after the job was retried or failed: its prediction is not kept."""


class CodeJobs:
    """The code track's use cases: hand in, list, and the worker's claim and record.

    Parameters
    ----------
    service : CourseService
    code : CodeConfig
    """

    def __init__(self, service, code: CodeConfig):
        self.service = service
        self.course = service.course
        self.code = code
        self.wake = threading.Event()
        #: Replicas: the advisory locks of the jobs this process runs, by (job id, attempt), on its session.
        self.held: dict = {}
        self.locks = service.locks

    # -- hand in ---------------------------------------------------------------------------------
    def enqueue(self, who: Principal, upload, sha256: str) -> dict:
        """Store a checked archive and queue its job (a slot of the day's quota held): the ``queued`` receipt."""
        with self.course.store.staged(sha256, self._referenced):
            self.course.store.commit(upload, sha256)
            with write_transaction(self.course.sessions) as s:
                now = self.service.now()
                day, resets_at = self.service.day(now)
                revealed, used = self.service.quotas.standing(s.connection(), who.team_id, day)
                closed = self.service.quotas.closed(now, revealed)
                if closed:
                    raise closed
                if used["scored"] >= self.service.config.per_day:  # queued and running jobs included
                    raise self.service.quotas.refusal("scored", resets_at)
                job = CodeJob(team_id=who.team_id, sha256=sha256, bytes=upload.size, submitted_at=now, day=day,
                              state=QUEUED, attempts=0, detail="", log="")
                s.add(job)
                s.flush()
                audit.append(s, now, QUEUED_EVENT, who.team, {"job": job.id, "sha256": sha256, "bytes": upload.size})
        self.wake.set()
        return self.view(job, None)

    def _referenced(self, sha256: str) -> bool:
        with self.course.sessions() as s:
            return keeps_file(s, sha256)

    # -- what the team and the instructor see --------------------------------------------------------
    def view(self, job: CodeJob, sub: Optional[Submission], *, admin: bool = False) -> dict:
        """A job as its team sees it (the program's output only for the instructor, or with ``show_logs``)."""
        out = {"id": job.id, "kind": "code", "status": job.state, "sha256": job.sha256, "bytes": job.bytes,
               "submitted_at": iso(job.submitted_at), "attempts": job.attempts, "failure": job.failure,
               "error_type": job.error_type, "detail": job.detail, "seconds": job.seconds,
               "submission": job.submission_id, "public": None, "errors": []}
        if sub is not None:
            out["public"], out["errors"] = sub.public, sub.errors
        if admin or self.code.show_logs:
            out["log"] = job.log
        return out

    def _rows(self, *where):
        with self.course.sessions() as s:
            return s.execute(select(CodeJob, Submission, Team.name).join(Team, Team.id == CodeJob.team_id)
                             .outerjoin(Submission, Submission.id == CodeJob.submission_id)
                             .where(*where).order_by(CodeJob.id)).all()

    def list_jobs(self, who: Principal) -> dict:
        return {"team": who.team, "jobs": [self.view(j, sub) for j, sub, _ in self._rows(CodeJob.team_id == who.team_id)]}

    def get_job(self, who: Principal, job_id: int) -> dict:
        rows = self._rows(CodeJob.id == job_id, CodeJob.team_id == who.team_id)
        if not rows:
            raise Refusal(404, "not_found", "no such code job")
        job, sub, _ = rows[0]
        return self.view(job, sub)

    def all_jobs(self) -> dict:
        """Every job with its full log (the instructor's dashboard)."""
        return {"jobs": [dict(self.view(j, sub, admin=True), team=team) for j, sub, team in self._rows()]}

    # -- the worker's side -----------------------------------------------------------------------
    def claim(self) -> Optional[tuple]:
        """Take the oldest queued job: ``(id, attempt, archive path)``, or None when none waits."""
        with write_transaction(self.course.sessions) as s:
            job = s.scalars(select(CodeJob).where(CodeJob.state == QUEUED).order_by(CodeJob.id).limit(1)).first()
            if job is None:
                return None
            if self.locks is not None:  # taken before the commit: no replica ever sees it running unlocked
                lock = SessionLock(self.locks, CODE_JOB, job.id)
                if not lock.try_acquire():  # its last runner is still letting go: claimed at the next look
                    return None
                self.held[(job.id, job.attempts + 1)] = lock
            job.state, job.attempts = RUNNING, job.attempts + 1
            job.lease_until = self.service.now() + timedelta(seconds=self.code.time_limit + MARGIN_S)
            return job.id, job.attempts, str(self.course.store.path(job.sha256))

    def record(self, job_id: int, attempt: int, outcome: Optional[dict] = None,
               error: Optional[BaseException] = None) -> Optional[str]:
        """Record a job's outcome in one transaction (or, on ``error``, retry it once); return its new state.

        A scored job's prediction goes into the store first (content-addressed, fsynced, as an
        upload does) and its row refers to it; it is removed again if the transaction fails or
        the report is stale (the job was retried or failed meanwhile: nothing changes, None).
        """
        try:
            return self._record_kept(job_id, attempt, outcome, error)
        finally:  # a replica's lock on this job (attempt) ends with its report, whatever it says
            lock = self.held.pop((job_id, attempt), None)
            if lock is not None:
                lock.release()

    def _record_kept(self, job_id: int, attempt: int, outcome: Optional[dict],
                     error: Optional[BaseException]) -> Optional[str]:
        data = (outcome or {}).get("prediction") if error is None else None
        scored = data is not None and (outcome.get("fields") or {}).get("status") == SCORED
        if not scored or outcome["run"]["status"] == "failed":
            return self._record(job_id, attempt, outcome, error)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            with self.course.store.staged(sha256, self._referenced):
                upload = self.course.store.upload(len(data))
                try:
                    upload.write(data)
                    upload.finish()
                    self.course.store.commit(upload, sha256)
                except BaseException:
                    upload.discard()
                    raise
                state = self._record(job_id, attempt, outcome, prediction=sha256)
                if state is None:
                    raise _Stale()
                return state
        except _Stale:
            return None

    def _record(self, job_id: int, attempt: int, outcome: Optional[dict] = None,
                error: Optional[BaseException] = None, prediction: Optional[str] = None) -> Optional[str]:
        with write_transaction(self.course.sessions) as s:
            job = s.get(CodeJob, job_id)
            if job is None or job.state != RUNNING or job.attempts != attempt:
                return None
            now = self.service.now()
            team = s.scalar(select(Team.name).where(Team.id == job.team_id))
            if error is not None:
                return self._server_failure(s, job, team, now, f"{type(error).__name__}")
            run = outcome["run"]
            job.log, job.seconds, job.lease_until = run.get("log") or "", run.get("seconds"), None
            if run["status"] == "failed":
                fields = _failure_fields(run)
                job.state, job.failure, job.error_type = FAILED, run["failure"], run.get("error_type")
                job.detail = run.get("detail") or ""
            else:
                fields = dict(outcome["fields"], format=FORMAT)
                job.state = fields["status"]
            sub = Submission(team_id=job.team_id, sha256=job.sha256, bytes=job.bytes, submitted_at=job.submitted_at,
                             day=job.day, final=False, **fields)
            s.add(sub)
            s.flush()
            job.submission_id, job.prediction_sha256 = sub.id, prediction
            event = audit.ACCEPTED if sub.status == SCORED else audit.INVALID
            payload = {"id": sub.id, "sha256": job.sha256, "bytes": job.bytes, "status": sub.status, "job": job.id,
                       "recorded_at": iso(now)}
            if prediction is not None:  # the audit checks the stored prediction against it
                payload["prediction"] = prediction
            # Dated as its submission is (when the code was handed in, as the audit checks); recorded now.
            audit.append(s, job.submitted_at, event, team, payload)
            return job.state

    def _server_failure(self, s, job: CodeJob, team: str, now, why: str) -> str:
        job.lease_until = None
        if job.attempts < MAX_ATTEMPTS:
            job.state = QUEUED
            log.warning("code job %d: %s; queued again", job.id, why)
        else:
            job.state, job.failure = FAILED, SERVER
            job.detail = f"the server could not run it ({why}); it does not count against your quota"
            audit.append(s, now, SERVER_FAILED_EVENT, team, {"job": job.id, "why": why})
        return job.state

    def recover(self, *, all_running: bool = False) -> int:
        """Retry (once) or fail every job whose worker is gone: leases ended, or any ``running`` at start-up.

        Replicas: ``all_running`` is ignored (the other replicas' jobs run on), and a running job
        whose advisory lock no replica holds is gone too (its replica died).
        """
        now = self.service.now()
        where = [CodeJob.state == RUNNING]
        if not all_running and self.locks is None:
            where.append(CodeJob.lease_until < now)
        with write_transaction(self.course.sessions) as s:
            jobs = list(s.scalars(select(CodeJob).where(*where)))
            orphans = []
            for job in jobs:
                if self.locks is not None and job.lease_until >= now and not self._orphaned(job.id):
                    continue
                orphans.append(job)
                for key in [k for k in list(self.held) if k[0] == job.id]:  # its lease ended here: let go
                    held = self.held.pop(key, None)
                    if held is not None:
                        held.release()
                team = s.scalar(select(Team.name).where(Team.id == job.team_id))
                if self.locks is not None and job.lease_until >= now:
                    why = "its replica stopped"
                elif all_running and self.locks is None:
                    why = "server restarted"
                else:
                    why = "worker lost"
                self._server_failure(s, job, team, now, why)
        return len(orphans)

    def _orphaned(self, job_id: int) -> bool:
        """Whether no replica holds a running job's lock (this one's excepted: it is running it)."""
        if any(key[0] == job_id for key in list(self.held)):  # a snapshot: the runner's callbacks change it
            return False
        lock = SessionLock(self.locks, CODE_JOB, job_id)
        if not lock.try_acquire():
            return False
        lock.release()
        return True

    def close(self) -> None:
        """Let go of the jobs' locks (an unfinished job is then another replica's to retry)."""
        for lock in list(self.held.values()):
            lock.release()
        self.held.clear()


class JobRunner:
    """A thread of the server that hands queued jobs to the executor and records what comes back.

    Parameters
    ----------
    jobs : CodeJobs
    executor : LocalExecutor or DaskExecutor
    poll_s : float
        Seconds between two looks at the queue when nothing woke the runner.
    """

    def __init__(self, jobs: CodeJobs, executor, *, poll_s: float = 1.0):
        self.jobs, self.executor, self.poll_s = jobs, executor, poll_s
        self._stop = threading.Event()
        self._inflight = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="brats-kit-code-jobs", daemon=True)

    def start(self) -> "JobRunner":
        self.jobs.recover(all_running=True)  # replicas: only the jobs of a replica gone
        self._thread.start()
        return self

    def _loop(self) -> None:
        from .executors import execute

        code = self.jobs.code
        while not self._stop.is_set():
            try:
                self.jobs.recover()
                while self._inflight < self.executor.workers and not self._stop.is_set():
                    claimed = self.jobs.claim()
                    if claimed is None:
                        break
                    job_id, attempt, archive = claimed
                    with self._lock:
                        self._inflight += 1
                    future = self.executor.submit(execute, archive, code.hidden, code.limits(), code.user,
                                                  course_mask_scores(self.jobs.course.config),
                                                  timeout=code.time_limit + MARGIN_S)
                    future.add_done_callback(lambda f, j=job_id, a=attempt: self._done(f, j, a))
            except Exception:  # noqa: BLE001 - the database was busy or gone: look again later, never die
                log.exception("code job runner")
            self.jobs.wake.wait(self.poll_s)
            self.jobs.wake.clear()

    def _done(self, future, job_id: int, attempt: int) -> None:
        try:
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cap, no sandbox: the server's failure
                self.jobs.record(job_id, attempt, error=exc)
            else:
                self.jobs.record(job_id, attempt, outcome)
        except Exception:  # noqa: BLE001 - a recording that failed is retried when the lease ends
            log.exception("recording code job %d", job_id)
        finally:
            with self._lock:
                self._inflight -= 1
            self.jobs.wake.set()

    def close(self) -> None:
        self._stop.set()
        self.jobs.wake.set()
        self._thread.join(timeout=30)
        self.executor.close()
        self.jobs.close()


def start_code_track(service, *, executor: Optional[str] = None, workers: Optional[int] = None):
    """The course's :class:`CodeJobs` and its running :class:`JobRunner`, or ``(None, None)`` without the track."""
    code = code_config(service.config)
    if code is None:
        if executor:
            raise KitError("this course has no code track", code="no_code_track",
                           hint="create the course with 'brats-kit server init ... --code'")
        return None, None
    from .executors import make_executor

    check_code_user(service.config)  # refused at start (a named error) when its user cannot run a job here
    jobs = CodeJobs(service, code)
    return jobs, JobRunner(jobs, make_executor(executor, workers or code.workers)).start()
