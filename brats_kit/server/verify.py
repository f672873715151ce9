"""``server audit``: the audit chain, the store and the database checked against each other."""
from __future__ import annotations

from sqlalchemy import select

from grader.scoring import SCORED

from . import audit
from .course import Course
from .db import AuditEvent, CodeJob, Submission, Team, is_revealed
from .grading import course_mask_scores, lacks_mask_scores, score_files
from .store import sha256_file


def _differences(stored: dict, fresh: dict, prefix: str = "") -> list:
    """``(field, stored, re-scored)`` for every leaf that differs between two rows' graded columns."""
    out = []
    for key in sorted(set(stored) | set(fresh), key=str):
        a, b = stored.get(key), fresh.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def rescore(course: Course, subs, teams: dict, scorer=None) -> tuple:
    """Score every stored file again (isolated workers, the course's truth) and compare with its rows.

    Returns ``(problems, rescored)``: one sentence per differing field of each
    submission, and how many distinct files were scored.
    """
    files = course.store.files()
    fresh = score_files(course.config, {sub.sha256: files[sub.sha256] for sub in subs if sub.sha256 in files},
                        scorer)
    problems = []
    for sub in subs:
        if sub.sha256 not in fresh:
            continue
        stored = {k: getattr(sub, k) for k in audit.GRADED_COLUMNS}
        again = fresh[sub.sha256]
        # The mask scores both hold are compared: a row recorded before the course ranked by one
        # (or before they were stored) lacks it, a note of audit_course rather than a difference.
        held, scored = sub.mask_scores or {}, again["mask_scores"] or {}
        common = set(held) & set(scored)
        stored["mask_scores"] = {k: held[k] for k in common} or None
        again = dict(again, mask_scores={k: scored[k] for k in common} or None)
        for name, was, now in _differences(stored, again):
            problems.append(f"submission {sub.id} ({teams.get(sub.team_id, sub.team_id)}): {name} is "
                            f"{_shown(was)} in the database but {_shown(now)} when re-scored")
    return problems, len(fresh)


def _check_predictions(jobs, events, files, teams) -> list:
    """Each recorded code job's kept prediction: in the store, of its sha256, as its audit entry says."""
    logged = {ev.payload.get("job"): ev.payload.get("prediction") for ev in events
              if ev.kind in (audit.ACCEPTED, audit.INVALID) and ev.payload.get("job") is not None}
    problems, checked = [], set()
    for job in jobs:
        team = teams.get(job.team_id, f"<team id {job.team_id}>")
        if logged.get(job.id) != job.prediction_sha256:
            problems.append(f"code job {job.id} ({team}): its kept prediction differs from its audit entry")
        sha = job.prediction_sha256
        if sha is None or sha in checked:
            continue
        path = files.get(sha)
        if path is None:
            problems.append(f"code job {job.id} ({team}): its prediction {sha} is missing from the store")
        elif sha256_file(path) != sha:
            problems.append(f"code job {job.id} ({team}): its stored prediction {path.name} does not match its sha256")
        checked.add(sha)
    return problems


def audit_course(course: Course, *, rescore_files: bool = False, scorer=None) -> dict:
    """Every difference between the audit log, the database and the store.

    Parameters
    ----------
    course : Course
    rescore_files : bool
        Also score every stored file again against the truth (isolated workers) and
        name each graded field that differs from the database (:func:`rescore`).
    scorer : IsolatedScorer, optional
        Workers to re-score with (default: the course's own, started and stopped here).

    Returns
    -------
    dict
        ``ok`` (no problem), ``problems`` (sentences naming what differs),
        ``notes`` (harmless leftovers, such as an unreferenced stored file), and counts
        (``rescored``: the files scored again, None without ``rescore_files``).
    """
    problems, notes = [], []
    with course.sessions() as s:
        problems += audit.verify_chain(s)
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        subs = list(s.scalars(select(Submission).order_by(Submission.id)))
        teams = {t.id: t.name for t in s.scalars(select(Team))}
        archives = set(s.scalars(select(CodeJob.sha256)))  # code jobs' archives, queued ones included
        jobs = s.execute(select(CodeJob.id, CodeJob.team_id, CodeJob.submission_id, CodeJob.prediction_sha256)
                         .where(CodeJob.submission_id.is_not(None)).order_by(CodeJob.id)).all()
        revealed = is_revealed(s)
    logged, regraded = {}, {}
    finals: dict = {}
    reveals = 0
    for ev in events:
        if ev.kind in (audit.ACCEPTED, audit.INVALID):
            logged[ev.payload.get("id")] = ev
        elif ev.kind == audit.RESCORED:  # the latest grade of a re-scored submission (``server rescore``)
            regraded[ev.payload.get("id")] = ev
        elif ev.kind == audit.FINALS:
            finals[ev.team] = set(ev.payload.get("ids", []))
        elif ev.kind == audit.REVEAL:
            reveals += 1
    files = course.store.files()
    referenced, checked = set(), set()
    for sub in subs:
        team = teams.get(sub.team_id, f"<team id {sub.team_id}>")
        ev = logged.pop(sub.id, None)
        graded = regraded.pop(sub.id, ev)
        expected_kind = audit.ACCEPTED if (ev is graded and sub.status == "scored") or (
            ev is not graded and ev is not None and ev.payload.get("status") == "scored") else audit.INVALID
        if ev is None:
            problems.append(f"submission {sub.id} ({team}) has no audit entry")
        elif (ev.team != team or ev.kind != expected_kind or ev.payload.get("sha256") != sub.sha256
              or ev.payload.get("bytes") != sub.bytes or ev.at != sub.submitted_at
              or graded.team != team or graded.payload.get("status", sub.status) != sub.status):
            problems.append(f"submission {sub.id} ({team}) differs from its audit entry {graded.seq}")
        elif ((graded.payload.get("v", 1) >= 2 and graded.payload.get("grade")
               != audit.grade_digest({k: getattr(sub, k) for k in audit.GRADED_COLUMNS}))
              or graded.payload.get("superseded") != sub.superseded):
            problems.append(f"submission {sub.id} ({team}): its scores, status or errors differ from its audit "
                            f"entry {graded.seq} (edited in the database)")
        if sub.final != (sub.id in finals.get(team, set())):
            problems.append(f"submission {sub.id} ({team}): final is {sub.final} but the audit log says otherwise")
        referenced.add(sub.sha256)
        path = files.get(sub.sha256)
        if path is None:
            problems.append(f"submission {sub.id} ({team}): its file {sub.sha256} is missing from the store")
        elif sub.sha256 not in checked:
            size = path.stat().st_size
            if size != sub.bytes or sha256_file(path) != sub.sha256:
                problems.append(f"submission {sub.id} ({team}): its stored file {path.name} does not match its sha256/size")
            checked.add(sub.sha256)
    for sub_id, ev in sorted(list(logged.items()) + list(regraded.items()), key=lambda kv: kv[1].seq):
        problems.append(f"audit entry {ev.seq} records submission {sub_id} ({ev.team}), which is not in the database")
    if revealed != (reveals > 0):
        problems.append("the reveal flag of the database differs from the audit log")
    problems += _check_predictions(jobs, events, files, teams)
    predictions = {job.prediction_sha256 for job in jobs}
    for sha in sorted(set(files) - referenced - archives - predictions):
        notes.append(f"stored file {sha} is not referenced by any submission (quarantined at the next start)")
    for sha in sorted(course.store.quarantined()):
        notes.append(f"quarantined file {sha}: not in the database (a restored backup?); if a team holds its "
                     f"receipt: brats-kit server audit COURSE --adopt {sha} --team TEAM")
    names = course_mask_scores(course.config)
    lacking = sum(sub.status == SCORED and lacks_mask_scores(sub.mask_scores, names) for sub in subs)
    if lacking:
        notes.append(f"{lacking} scored submission(s) have no stored {names[0]}, the course's ranking score "
                     "(recorded before uploads stored it): 'brats-kit server rescore COURSE --backfill'")
    tmp = course.store.temporary_files()
    if tmp:
        notes.append(f"{len(tmp)} temporary upload file(s) in {course.store.tmp} (never acknowledged: "
                     "removed at the next start)")
    rescored = None
    if rescore_files:
        found, rescored = rescore(course, subs, teams, scorer)
        problems += found
    return {"ok": not problems, "problems": problems, "notes": notes, "events": len(events),
            "submissions": len(subs), "files": len(files), "rescored": rescored,
            "quarantined": sorted(course.store.quarantined())}

