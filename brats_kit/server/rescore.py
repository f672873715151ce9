"""``server rescore``: every stored submission scored again after a fix of the course's truth.

The truth is versioned: each submission row records the sha256 of the truth file its
scores came from, and every truth the course used is kept under ``private/truths/``,
named by its sha256. A rescore checks the new truth against the old one (same slices,
same case ids), writes it as an HDF5 truth holding the OLD public flags (a truth without
flags derives them from its own sha256, so a fixed ``test_data_y.dat`` would otherwise
reshuffle the public/private split), scores every stored file against it in the isolated
workers, and shows what changes (scores and both phases' ranks) before anything is
written. Once confirmed, one transaction moves the rows, keeps what each receipt said
in ``superseded``, appends one audit event per changed row and one for the truth, and
switches ``course.json`` to the new truth; the live board follows the audit log.

Stop the server during a rescore: a running server's workers keep the truth they loaded.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from sqlalchemy import func, select, update

from data_spec.errors import KitError
from data_spec.hdf5 import sha256_file, write_split_h5
from data_spec.layout import find_truth
from data_spec.truth import load_truth
from grader.leaderboard.ranking import ranking_type
from grader.score_types import RANKING
from grader.scoring import SCORED, TRANSIENT_CODES
from plumbing.atomic import atomic_path

from . import audit
from .clock import utc_now
from .course import CONFIG_JSON, Course, write_private
from .db import Submission, Team, set_meta, write_transaction
from .grading import course_mask_scores, lacks_mask_scores, make_scorer, score_files, verdict_fields
from .service import CourseService, rank_recorded
from .tracks import CODE, FILE, track_of

#: Where the course keeps every truth it has used, each named by its sha256.
TRUTHS = "truths"
#: Where a rescore's report goes by default (under ``private/``), one folder per new truth.
REPORTS = "rescore"
DIFF_CSV, SUMMARY_TXT = "diff.csv", "summary.txt"
DIFF_COLUMNS = ("kind", "team", "submission", "phase", "name", "old", "new")
_PHASES = ("public", "private")


def check_new_truth(old, new) -> None:
    """Refuse a new truth that is not a fix of ``old``: another number of slices or other case ids.

    Raises
    ------
    KitError
        ``truth_mismatch``, naming what differs.
    """
    hint = "a rescore fixes masks; a test set of other cases is a new course"
    if len(new) != len(old):
        raise KitError(f"the new truth has {len(new)} slices, the course's has {len(old)}", code="truth_mismatch",
                       path=new.path, expected=f"{len(old)} slices with the same case ids", hint=hint)
    differ = np.flatnonzero(np.asarray(new.case_id).astype(str) != np.asarray(old.case_id).astype(str))
    if differ.size:
        i = int(differ[0])
        raise KitError(f"the new truth's case ids differ from the course's at {differ.size} slice(s)",
                       code="truth_mismatch", path=new.path, where=f"slice {i}",
                       expected=f"case id {old.case_id[i]!s}", hint=hint)
    if np.array_equal(new.y, old.y):
        raise KitError("the new truth's masks are the course's truth's: nothing to fix", code="same_truth",
                       path=new.path, hint="give the fixed truth file")


def stage_truth(course: Course, old, new) -> tuple:
    """Write ``new``'s masks with ``old``'s case ids and public flags as ``private/truths/<sha256>.h5``.

    Returns ``(path, sha256, created)``. The file is deterministic, so the same fix gives the
    same name; ``created`` is False when that version was already kept (going back to it).
    """
    folder = course.private / TRUTHS
    folder.mkdir(mode=0o700, exist_ok=True)
    staging = folder / ".staged.h5"
    write_split_h5(staging, y=new.y, case_id=old.case_id, public=old.public, split="test")
    sha = sha256_file(staging)
    path = folder / f"{sha}.h5"
    created = not path.exists()
    os.replace(staging, path)
    os.chmod(path, 0o600)
    if load_truth(path).sha256 != sha or not np.array_equal(load_truth(path).public, old.public):
        raise KitError("the staged truth does not read back as written", code="bug", path=path)
    return path, sha, created


def keep_old_truth(course: Course, path: Path, sha: str) -> Path:
    """A copy of the course's current truth file under ``private/truths/``, named by its sha256 (kept once)."""
    folder = course.private / TRUTHS
    folder.mkdir(mode=0o700, exist_ok=True)
    kept = folder / f"{sha}{''.join(path.suffixes) or '.dat'}"
    if not kept.exists():
        with atomic_path(kept) as tmp:
            shutil.copyfile(path, tmp)
        os.chmod(kept, 0o600)
    return kept


def _ranks(entries, truth, ranking=RANKING) -> dict:
    """``(phase, team) -> (rank, submission id)`` on both phases' boards, from ``(entry, row)`` pairs."""
    ids = {id(e): row.id for e, row in entries}
    return {(phase, r.team): (r.rank, ids[id(r.submission)])
            for phase in _PHASES for r in rank_recorded([e for e, _ in entries], phase, truth, ranking)}


def _with_fields(entries, fresh: dict) -> list:
    """A copy of the board's ``(entry, row)`` pairs with each row's re-scored status, scores and mask scores."""
    out = []
    for entry, row in entries:
        fields = fresh.get(row.id)
        if fields is not None:
            entry = copy.copy(entry)
            entry.status, entry.errors = fields["status"], fields["errors"]
            scored = fields["status"] == SCORED
            entry.scores = {"public": dict(fields["public"]), "private": dict(fields["private"])} if scored else None
            entry.mask_scores = {name: np.asarray(values, dtype=np.float64)
                                 for name, values in ((fields["mask_scores"] or {}) if scored else {}).items()}
        out.append((entry, row))
    return out


def _phase_values(columns: dict, ranking, public) -> dict:
    """A row's scores of both phases, with its mask ranking score's phase values (from its per-case ones)."""
    out = {phase: dict(columns.get(phase) or {}) for phase in _PHASES}
    values = (columns.get("mask_scores") or {}).get(ranking.name)
    if ranking.needs_masks and values is not None and public is not None and len(values) == len(public):
        for phase, mask in (("public", public), ("private", ~public)):
            if out[phase]:
                out[phase][ranking.name] = ranking.aggregate(np.asarray(values, dtype=np.float64)[mask])
    return out


def diff_rows(rows: dict, teams: dict, fresh: dict, old_ranks: dict, new_ranks: dict, ranking=RANKING,
              public=None) -> list:
    """The report's rows: each changed status or score of a submission, each team's changed rank.

    ``ranking``: the course's ranking score (a mask score's phase values are compared too, from the
    per-case values; ``public``: the truth's public flags).
    """
    out = []
    for sub_id in sorted(fresh):
        row, new = rows[sub_id], fresh[sub_id]
        team = teams[row.team_id]
        if row.status != new["status"]:
            out.append({"kind": "status", "team": team, "submission": sub_id, "phase": "", "name": "status",
                        "old": row.status, "new": new["status"]})
        before = _phase_values({k: getattr(row, k) for k in (*_PHASES, "mask_scores")}, ranking, public)
        after = _phase_values(new, ranking, public)
        for phase in _PHASES:
            was, now = before[phase], after[phase]
            for name in sorted(set(was) | set(now)):
                if was.get(name) != now.get(name):
                    out.append({"kind": "score", "team": team, "submission": sub_id, "phase": phase,
                                "name": name, "old": was.get(name), "new": now.get(name)})
    for phase, team in sorted(set(old_ranks) | set(new_ranks)):
        was, now = old_ranks.get((phase, team)), new_ranks.get((phase, team))
        if (was and was[0]) != (now and now[0]):
            out.append({"kind": "rank", "team": team, "submission": now[1] if now else was[1], "phase": phase,
                        "name": ranking.name, "old": was and was[0], "new": now and now[0]})
    return out


def _csv(rows: list) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=DIFF_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def summary_text(plan: dict) -> str:
    """The report's few lines: the two truths, how many submissions, scores and ranks change."""
    lines = [f"truth {plan['old_truth']} -> {plan['new_truth']}",
             f"{plan['rescored']} submission(s) re-scored: {plan['submissions_changed']} change "
             f"({plan['scores_changed']} score(s), {plan['statuses_changed']} status(es))",
             f"{plan['ranks_changed']} rank(s) change (public board: {plan['ranks_changed_public']}, "
             f"private board: {plan['ranks_changed_private']})"]
    for r in plan["rows"]:
        if r["kind"] == "rank":
            lines.append(f"  {r['phase']} board: {r['team']} rank {r['old']} -> {r['new']}")
    return "\n".join(lines) + "\n"


def _superseded(row: Submission) -> dict:
    """What the row's receipt said, kept the first time it changes (a second rescore keeps the original)."""
    if row.superseded is not None:
        return row.superseded
    return {"status": row.status, "public": row.public, "private": row.private, "truth_sha256": row.truth_sha256}


def rescore_course(course: Course, new_truth, *, confirm: Callable[[dict], bool] = lambda plan: True,
                   out=None, clock=utc_now, rebuild_board: Optional[Callable[[Course], object]] = None) -> dict:
    """Score every stored submission against ``new_truth`` and, once ``confirm(plan)`` agrees, make it the truth.

    Parameters
    ----------
    course : Course
    new_truth : path-like
        The fixed truth (a file, or a folder holding one); same slices and case ids.
    confirm : callable
        Given the plan (``scores_changed``, ``ranks_changed``, ``rows``...) before anything
        is written; returning False leaves the course as it was.
    out : path-like, optional
        Folder of the report (``diff.csv``, ``summary.txt``); default
        ``private/rescore/<new sha256>/``.
    clock : callable
        The time of the audit events.
    rebuild_board : callable, optional
        Called with the course after the switch (the command rebuilds the live board's site).

    Returns
    -------
    dict
        The plan, with ``applied`` and, when applied, the report's paths.
    """
    old = load_truth(course.config.truth)
    new = load_truth(find_truth(new_truth))
    check_new_truth(old, new)
    staged, new_sha, created = stage_truth(course, old, new)
    applied = False
    try:
        with course.sessions() as s:
            entries = CourseService.board_entries(s)  # as the API and the gradebook rank them (times to the second)
        rows = {row.id: row for _, row in entries}
        teams = {row.team_id: entry.team for entry, row in entries}
        files = course.store.files()
        scorer = make_scorer(dataclasses.replace(course.config, truth=str(staged)))
        try:
            futures = {sha: scorer.submit(files[sha]) for sha in sorted({r.sha256 for r in rows.values()} & set(files))}
            verdicts = {sha: f.result() for sha, f in futures.items()}
        finally:
            scorer.close()
        # A timeout or a dead worker says nothing about the file: it must not turn a grade into "invalid".
        unsure = sorted(sha for sha, v in verdicts.items() if v.transient)
        if unsure:
            raise KitError(f"{len(unsure)} stored file(s) could not be re-scored (a timeout or a failed worker, "
                           f"e.g. {unsure[0]}): the course is unchanged", code="rescore_incomplete",
                           hint="run the rescore again on a quieter machine, or raise timeout_s in course.json")
        by_sha = {sha: verdict_fields(v) for sha, v in verdicts.items()}
        fresh = {i: by_sha[r.sha256] for i, r in rows.items() if r.sha256 in by_sha}
        missing = sorted(i for i, r in rows.items() if r.sha256 not in by_sha)
        if missing:
            raise KitError(f"{len(missing)} submission(s) have no stored file (e.g. {missing[0]}): they cannot be "
                           "re-scored", code="missing_files", hint="run 'brats-kit server audit' first")
        ranking = ranking_type(course.config.ranking)
        old_ranks = _ranks(_with_fields(entries, {}), old, ranking)  # the public flags stay (stage_truth)
        new_ranks = _ranks(_with_fields(entries, fresh), old, ranking)
        diff = diff_rows(rows, teams, fresh, old_ranks, new_ranks, ranking, old.public)
        changed = sorted(i for i in fresh
                         if any(getattr(rows[i], k) != fresh[i][k] for k in audit.GRADED_COLUMNS))
        ranks = [r for r in diff if r["kind"] == "rank"]
        plan = {"old_truth": old.sha256, "new_truth": new_sha, "rescored": len(fresh),
                "submissions_changed": len(changed), "scores_changed": sum(r["kind"] == "score" for r in diff),
                "statuses_changed": sum(r["kind"] == "status" for r in diff), "ranks_changed": len(ranks),
                "ranks_changed_public": sum(r["phase"] == "public" for r in ranks),
                "ranks_changed_private": sum(r["phase"] == "private" for r in ranks), "rows": diff,
                "applied": False}
        if not confirm(plan):
            return plan
        # The report first: a folder that cannot be written stops the rescore before any change.
        folder = Path(out) if out is not None else course.private / REPORTS / new_sha
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        report = {"csv": folder / DIFF_CSV, "summary": folder / SUMMARY_TXT}
        write_private(report["csv"], _csv(plan["rows"]))
        write_private(report["summary"], summary_text(plan))
        try:
            kept = keep_old_truth(course, Path(course.config.truth), old.sha256)
            _apply(course, rows, teams, fresh, changed, plan, staged, clock())
        except BaseException:
            for path in report.values():
                path.unlink(missing_ok=True)
            raise
        applied = plan["applied"] = True
        plan.update(old_truth_kept=str(kept), truth=str(staged), report={k: str(v) for k, v in report.items()})
    finally:
        if not applied and created:
            staged.unlink(missing_ok=True)
    if rebuild_board is not None:
        rebuild_board(course)
    return plan


def _apply(course: Course, rows: dict, teams: dict, fresh: dict, changed: list, plan: dict, staged: Path,
           now) -> None:
    """One transaction: the rows, their audit events and the truth's; ``course.json`` switched before commit."""
    config_path = course.private / CONFIG_JSON
    before = config_path.read_text(encoding="utf-8")
    config = dataclasses.replace(course.config, truth=str(staged))
    try:
        with write_transaction(course.sessions) as s:
            arrived = s.scalar(select(func.count()).select_from(Submission).where(Submission.id.notin_(list(fresh))))
            if arrived:
                raise KitError(f"{arrived} submission(s) arrived during the rescore: the course is unchanged",
                               code="course_changed", hint="stop the server, then run the rescore again")
            chain = audit.Chain(s)
            for sub_id in changed:
                row, fields = rows[sub_id], fresh[sub_id]
                # Only what a receipt shows is superseded: mask scores filled in (an upgraded row) are not.
                shown = any(getattr(row, k) != fields[k] for k in ("status", "public", "private"))
                superseded = _superseded(row) if shown else row.superseded
                s.execute(update(Submission).where(Submission.id == sub_id)
                          .values(truth_sha256=plan["new_truth"], superseded=superseded, **fields))
                payload = dict(audit.submission_payload(sub_id, row.sha256, row.bytes, fields),
                               truth_sha256=plan["new_truth"], superseded=superseded)
                chain.append(now, audit.RESCORED, teams[row.team_id], payload)
            unchanged = update(Submission)
            if changed:
                unchanged = unchanged.where(Submission.id.notin_(changed))
            s.execute(unchanged.values(truth_sha256=plan["new_truth"]))
            chain.append(now, audit.TRUTH_REPLACED, None,
                         {key: plan[key] for key in ("old_truth", "new_truth", "rescored", "submissions_changed",
                                                     "scores_changed", "ranks_changed")})
            chain.close()
            set_meta(s, "truth_sha256", plan["new_truth"])  # a server still running refuses uploads from now on
            # Switched inside the transaction: a failed commit puts the old configuration back below.
            write_private(config_path, json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
    except BaseException:
        write_private(config_path, before)
        raise
    course.config = config
    course.__dict__.pop("truth_sha256", None)  # the cached version of the course's truth


def backfill_mask_scores(course: Course, *, clock=utc_now, scorer=None) -> dict:
    """Store the course's mask scores (its ranking score's) of the file-track submissions recorded without them.

    Rows recorded before uploads stored mask scores (an upgraded database), or before the
    course was ranked by this one. Each such stored file is scored again against the course's
    present truth in the isolated workers; its grade must come back as recorded (status and
    counts), else nothing is written. One transaction then adds the values to ``mask_scores``
    and appends a ``submission_rescored`` event per row (``backfilled``; the receipt's scores
    do not change, so nothing is marked superseded). Code-track rows cannot be scored from a
    file: they are counted in ``code_lacking``.

    Parameters
    ----------
    course : Course
    clock : callable
        The time of the audit events.
    scorer : IsolatedScorer, optional
        Workers that compute at least the course's mask scores (default: the course's own).

    Returns
    -------
    dict
        ``backfilled`` (rows filled), ``files`` (scored), ``code_lacking``.

    Raises
    ------
    KitError
        ``missing_files`` (a row's file is not in the store), ``rescore_incomplete`` (a
        timeout or a failed worker), ``grade_changed`` (a re-scored grade differs from the
        stored one: the truth changed, see ``server audit --rescore``), ``course_changed``.
    """
    names = course_mask_scores(course.config)
    with course.sessions() as s:
        scored = s.scalars(select(Submission).where(Submission.status == SCORED).order_by(Submission.id))
        lacking = [r for r in scored if lacks_mask_scores(r.mask_scores, names)]
        teams = dict(s.execute(select(Team.id, Team.name)).all())
    code = [r for r in lacking if track_of(r.format) == CODE]
    rows = [r for r in lacking if track_of(r.format) == FILE]
    if not rows:
        return {"backfilled": 0, "files": 0, "code_lacking": len(code)}
    files = course.store.files()
    missing = [r.id for r in rows if r.sha256 not in files]
    if missing:
        raise KitError(f"{len(missing)} submission(s) have no stored file (e.g. {missing[0]}): their mask scores "
                       "cannot be computed", code="missing_files", hint="run 'brats-kit server audit' first")
    fields = score_files(course.config, {r.sha256: files[r.sha256] for r in rows}, scorer)
    for r in rows:
        got = fields[r.sha256]
        if got["status"] != SCORED and any(e["code"] in TRANSIENT_CODES for e in got["errors"]):
            raise KitError(f"submission {r.id}'s file could not be scored again (a timeout or a failed worker): "
                           "nothing was written", code="rescore_incomplete",
                           hint="run it again on a quieter machine, or raise timeout_s in course.json")
        if got["status"] != r.status or got["counts"] != r.counts or lacks_mask_scores(got["mask_scores"], names):
            raise KitError(f"submission {r.id} does not score as recorded against the course's truth: nothing was "
                           "written", code="grade_changed",
                           hint="'brats-kit server audit COURSE --rescore' names what differs")
    now = clock()
    with write_transaction(course.sessions) as s:
        chain = audit.Chain(s)
        for r in rows:
            current = s.get(Submission, r.id)
            if current is None or current.mask_scores != r.mask_scores or current.counts != r.counts:
                raise KitError(f"submission {r.id} changed during the backfill: nothing was written",
                               code="course_changed", hint="stop the server, then run it again")
            masks = {**(current.mask_scores or {}), **fields[r.sha256]["mask_scores"]}
            s.execute(update(Submission).where(Submission.id == r.id).values(mask_scores=masks))
            graded = {k: getattr(current, k) for k in audit.GRADED_COLUMNS}
            graded["mask_scores"] = masks
            payload = dict(audit.submission_payload(r.id, r.sha256, r.bytes, graded),
                           truth_sha256=current.truth_sha256, superseded=current.superseded, backfilled=True)
            chain.append(now, audit.RESCORED, teams[r.team_id], payload)
        chain.close()
    return {"backfilled": len(rows), "files": len(fields), "code_lacking": len(code)}
