"""``server audit``: the audit chain, the store and the database checked against each other."""
from __future__ import annotations

from sqlalchemy import select

from . import audit
from .course import Course
from .db import AuditEvent, CodeJob, Submission, Team, is_revealed
from .store import sha256_file


def audit_course(course: Course) -> dict:
    """Every difference between the audit log, the database and the store.

    Returns
    -------
    dict
        ``ok`` (no problem), ``problems`` (sentences naming what differs),
        ``notes`` (harmless leftovers, such as an unreferenced stored file), and counts.
    """
    problems, notes = [], []
    with course.sessions() as s:
        problems += audit.verify_chain(s)
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        subs = list(s.scalars(select(Submission).order_by(Submission.id)))
        teams = {t.id: t.name for t in s.scalars(select(Team))}
        archives = set(s.scalars(select(CodeJob.sha256)))  # code jobs' archives, queued ones included
        revealed = is_revealed(s)
    logged = {}
    finals: dict = {}
    reveals = 0
    for ev in events:
        if ev.kind in (audit.ACCEPTED, audit.INVALID):
            logged[ev.payload.get("id")] = ev
        elif ev.kind == audit.FINALS:
            finals[ev.team] = set(ev.payload.get("ids", []))
        elif ev.kind == audit.REVEAL:
            reveals += 1
    files = course.store.files()
    referenced, checked = set(), set()
    for sub in subs:
        team = teams.get(sub.team_id, f"<team id {sub.team_id}>")
        ev = logged.pop(sub.id, None)
        expected_kind = audit.ACCEPTED if sub.status == "scored" else audit.INVALID
        if ev is None:
            problems.append(f"submission {sub.id} ({team}) has no audit entry")
        elif (ev.team != team or ev.kind != expected_kind or ev.payload.get("sha256") != sub.sha256
              or ev.payload.get("bytes") != sub.bytes or ev.at != sub.submitted_at):
            problems.append(f"submission {sub.id} ({team}) differs from its audit entry {ev.seq}")
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
    for sub_id, ev in sorted(logged.items(), key=lambda kv: kv[1].seq):
        problems.append(f"audit entry {ev.seq} records submission {sub_id} ({ev.team}), which is not in the database")
    if revealed != (reveals > 0):
        problems.append("the reveal flag of the database differs from the audit log")
    for sha in sorted(set(files) - referenced - archives):
        notes.append(f"stored file {sha} is not referenced by any submission (removed at the next start)")
    tmp = course.store.temporary_files()
    if tmp:
        notes.append(f"{len(tmp)} temporary upload file(s) in {course.store.tmp} (removed at the next start)")
    return {"ok": not problems, "problems": problems, "notes": notes, "events": len(events),
            "submissions": len(subs), "files": len(files)}

