"""``brats-kit server init|run|export|audit|rescore|reveal|status|tokens``: the submission server's instructor commands."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.text import safe_name, safe_text

EXIT_INVALID = 1
_COURSE = click.argument("course", type=click.Path(file_okay=False, path_type=Path))


def _echo_json(obj) -> None:
    from brats_kit.output import echo_json

    echo_json(obj)


@click.group()
def server():
    """Run a course: teams hand in over HTTP and get an instant receipt.

    \b
    brats-kit server init course --competition competition --roster roster.csv --deadline 2026-12-15T23:59:00+01:00
    brats-kit server run course                 # then hand out course/private/tokens.csv
    brats-kit server status course
    brats-kit server reveal course
    brats-kit server export course --out submissions
    """


@server.command()
@_COURSE
@click.option("--competition", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The competition directory (with private/: the test truth).")
@click.option("--roster", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with student_id,name,email,team (team = display name on the board).")
@click.option("--per-day", default=5, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Valid submissions per team and day.")
@click.option("--max-invalid-per-day", default=20, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Invalid submissions per team and day (they never count against --per-day).")
@click.option("--deadline", default=None, help="ISO 8601 with its offset, e.g. 2026-12-15T23:59:00+01:00.")
@click.option("--finals", default=2, show_default=True, type=click.IntRange(1, 100),
              help="Final submissions a team may choose.")
@click.option("--db", default=None, help="Database URL (default: SQLite in the course folder; "
                                         "or postgresql+psycopg://USER@/DB?host=/run/postgresql).")
@click.option("--timezone", "timezone_name", default=None,
              help="The course's time zone (IANA name or +HH:MM): the quota day resets at its midnight, pages show "
                   "times in it. Default: the deadline's offset (UTC without a deadline).")
@click.option("--baselines", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Reference submissions (DIR/<baseline>/<file>): reference rows on the live board, and the "
                   "gradebook's default scale (flair-threshold = 0, the best baseline = full marks).")
@click.option("--max-inflight-per-team", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Uploads of one team scored at once; the others wait their turn (server run may override it).")
@click.option("--code", "code_track", is_flag=True,
              help="Enable the code track: teams hand in their model's code, run in a sandbox on the hidden test "
                   "slices (refused without hidden slices or a working bubblewrap sandbox).")
@click.option("--code-time-limit", default=300.0, show_default=True, type=click.FloatRange(1, 24 * 3600),
              help="Wall-clock seconds of one code job.")
@click.option("--code-memory-mb", default=4096, show_default=True, type=click.IntRange(256, 1 << 20),
              help="Memory of one code job (MB).")
@click.option("--code-workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Code jobs run at once by the local pool (server run --code-workers overrides it).")
@click.option("--code-show-logs", is_flag=True,
              help="Show teams their program's output (off: it could print the hidden inputs).")
@click.option("--code-user", default=None, metavar="USER",
              help="The unprivileged host user code jobs run as (default: nobody when the server runs as root, "
                   "else the server's own user). It must be able to read the kit's Python environment.")
@click.option("--ranking", default=None, metavar="SCORE",
              help="The score the live board, the API's leaderboard and the gradebook rank by (default: the "
                   "competition's, else dice): dice, hd95, lesion_dice, lesion_hd95 or nsd (each upload stores "
                   "every mask score per case).")
@click.option("--json", "as_json", is_flag=True)
def init(course, competition, roster, per_day, max_invalid_per_day, deadline, finals, db, timezone_name, baselines,
         max_inflight_per_team, code_track, code_time_limit, code_memory_mb, code_workers, code_show_logs, code_user,
         ranking, as_json):
    """Create the course folder COURSE: configuration, database, store, one token per team."""
    from brats_kit.server.baselines import attach_baselines, check_baselines
    from brats_kit.server.course import Course, init_course

    code = None
    if code_track:  # refused (exit 1) before the course exists: no hidden slices, or no sandbox
        from brats_kit.server.jobs import check_code_track

        code = check_code_track(competition, time_limit=code_time_limit, memory_mb=code_memory_mb,
                                workers=code_workers, show_logs=code_show_logs, user=code_user)
    if baselines is not None:
        check_baselines(competition, baselines)  # an invalid baseline is refused before the course exists
    info = init_course(course, competition=competition, roster=roster, per_day=per_day,
                       max_invalid_per_day=max_invalid_per_day, deadline=deadline, finals=finals, db=db,
                       timezone_name=timezone_name, extra={"max_inflight_per_team": max_inflight_per_team},
                       ranking=ranking)
    if code is not None:
        from brats_kit.server.jobs import enable_code_track

        enable_code_track(course, code)
        info["code"] = {"time_limit": code.time_limit, "memory_mb": code.memory_mb, "workers": code.workers,
                        "show_logs": code.show_logs, "user": code.user}
    if baselines is not None:
        with Course(course) as opened:
            info["baselines"] = attach_baselines(opened, baselines)["baselines"]
    if as_json:
        _echo_json(info)
        return
    click.echo(f"course: {safe_name(info['course'])} ({info['teams']} teams, {info['students']} students; "
               f"database {safe_text(info['db'])})")
    click.echo(f"team tokens (hand one to each team, keep the file private): {safe_name(info['tokens'])}")
    click.echo(f"admin token: {safe_name(info['admin_token'])}")
    click.echo(f"next: brats-kit server run {safe_name(course)}")


@server.command()
@_COURSE
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--https-only", is_flag=True,
              help="The class reaches the server over HTTPS only (a reverse proxy): session cookies are Secure.")
@click.option("--forwarded-allow-ips", default=None, metavar="ADDRESSES",
              help="Comma-separated addresses of your reverse proxies: a request from one of them is from the "
                   "client its X-Forwarded-For names (default: none; every request is from its peer).")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 300),
              help="Seconds a connection may take to send a request's headers before it is closed.")
@click.option("--keep-alive", default=5, show_default=True, type=click.IntRange(1, 300),
              help="Seconds an idle kept-alive connection stays open.")
@click.option("--max-inflight-per-team", default=None, type=click.IntRange(1, 64),
              help="Uploads of one team scored at once; the others wait their turn (default: the course's, "
                   "set by server init, else 1).")
@click.option("--limit-concurrency", default=2048, show_default=True, type=click.IntRange(16, 1_000_000),
              help="Open connections and requests at once before the server answers 503.")
@click.option("--executor", default=None,
              help="Where code jobs run: the local pool (default) or tcp://HOST:8786, a Dask scheduler.")
@click.option("--code-workers", default=None, type=click.IntRange(1, 256),
              help="Code jobs run at once by the local pool (default: the course's).")
@click.option("--replica", is_flag=True,
              help="One of several servers of this course (PostgreSQL only; the course folder on a file system "
                   "they all mount): limits, the live board's builder and start-up tidying are per course.")
def run(course, host, port, https_only, forwarded_allow_ips, header_timeout, keep_alive, max_inflight_per_team,
        limit_concurrency, executor, code_workers, replica):
    """Serve the API of COURSE (OpenAPI page at /docs) until interrupted."""
    from brats_kit.server.course import Course
    from brats_kit.server.run import serve
    from brats_kit.server.jobs import check_code_user
    from brats_kit.server.shared import require_postgresql

    # Refused before binding: not a course, a replica on SQLite, a code user that cannot run.
    with Course(course) as opened:
        if replica:
            require_postgresql(opened.engine, opened.root)
        check_code_user(opened.config)
    click.echo(f"serving {safe_name(course)} on http://{host}:{port}{' as a replica' if replica else ''} "
               "(API at /api/v1/, documentation at /docs)", err=True)
    serve(course, host=host, port=port, https_only=https_only, forwarded_allow_ips=forwarded_allow_ips,
          header_timeout=header_timeout, keep_alive_s=keep_alive, limit_concurrency=limit_concurrency,
          max_inflight_per_team=max_inflight_per_team, executor=executor, code_workers=code_workers,
          replica=replica)


@server.command()
@_COURSE
@click.option("--out", required=True, type=click.Path(path_type=Path), help="SUBMISSIONS folder to write.")
@click.option("--track", type=click.Choice(["file", "code"]), default="file", show_default=True,
              help="The file track's predictions, or the code track's: each scored job's kept prediction "
                   "(rank it with --truth COMPETITION/private/hidden_test.h5), the archive of any other job.")
@click.option("--json", "as_json", is_flag=True)
def export(course, out, track, as_json):
    """Write SUBMISSIONS/<team>/<file> and manifest.csv for 'brats-kit leaderboard'."""
    from brats_kit.server.course import Course
    from brats_kit.server.export import export_submissions

    with Course(course) as c:
        info = export_submissions(c, out, track)
    if as_json:
        _echo_json(info)
    else:
        click.echo(f"exported {info['submissions']} submissions of {info['teams']} teams to {safe_name(info['out'])}")


@server.command()
@_COURSE
@click.option("--rescore", is_flag=True,
              help="Also score every stored file again against the truth (isolated workers) and list each "
                   "score that differs from the database.")
@click.option("--adopt", "adopt_sha", default=None, metavar="SHA256",
              help="Record the quarantined file with this hash again (the team's receipt names it); needs --team.")
@click.option("--team", default=None, help="With --adopt: the team on the receipt.")
@click.option("--at", "at_text", default=None,
              help="With --adopt: the receipt's submitted_at (ISO 8601; default: when the file was stored).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit(ctx, course, rescore, adopt_sha, team, at_text, as_json):
    """Check the audit log's hash chain and the store against the database (exit 1 when they differ).

    Files the database does not know are in store/quarantine/ (never deleted): --adopt SHA256 --team TEAM
    scores one again and records it, with its audit event.
    """
    from brats_kit.server.course import Course
    from brats_kit.server.verify import audit_course

    adopted = None
    if adopt_sha is not None:
        adopted = _adopt(course, adopt_sha, team, at_text)
    elif team is not None or at_text is not None:
        raise click.UsageError("--team and --at go with --adopt")
    with Course(course) as c:
        result = audit_course(c, rescore_files=rescore)
    if adopted is not None:
        result["adopted"] = adopted
        if not as_json:
            click.echo(f"adopted {adopted['sha256']} as submission {adopted['id']} of "
                       f"{safe_text(adopted['team'])} ({adopted['status']}, {adopted['submitted_at']})")
    if as_json:
        _echo_json(result)
    else:
        for p in result["problems"]:
            click.echo(f"DIFFERS: {safe_text(p)}")
        for n in result["notes"]:
            click.echo(f"note: {safe_text(n)}")
        verdict = "ok" if result["ok"] else f"FAILED ({len(result['problems'])} problems)"
        rescored = "" if result["rescored"] is None else f", {result['rescored']} files re-scored"
        click.echo(f"audit {verdict}: {result['events']} events, {result['submissions']} submissions, "
                   f"{result['files']} stored files{rescored}")
    if not result["ok"]:
        ctx.exit(EXIT_INVALID)


@server.command("rescore")
@_COURSE
@click.option("--truth", "new_truth", default=None, type=click.Path(exists=True, path_type=Path),
              help="The fixed truth (file or folder): the same slices and case ids as the course's.")
@click.option("--backfill", is_flag=True,
              help="Instead: compute the per-case mask scores of submissions recorded before uploads stored "
                   "them (an upgraded course), against the course's truth; their grades do not change.")
@click.option("--yes", is_flag=True, help="Replace the truth without asking.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the report (diff.csv, summary.txt); default COURSE/private/rescore/<sha256>/.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its diff (no prompt).")
def rescore_command(course, new_truth, backfill, yes, out, as_json):
    """Re-score every stored submission against a fixed truth, then make it the course's truth.

    Shows how many scores and ranks change and asks first (--yes or --json: no question).
    Stop the server first: its workers keep the truth they loaded. With --backfill, store the
    mask scores (hd95, lesion_dice, lesion_hd95, nsd) the submissions recorded before lack.
    """
    from brats_kit.server.board import build_board
    from brats_kit.server.course import Course
    from brats_kit.server.rescore import backfill_mask_scores, rescore_course, summary_text

    if backfill == (new_truth is not None):
        raise click.UsageError("give either --truth NEW (a truth fix) or --backfill")
    if backfill:
        with Course(course) as c:
            done = backfill_mask_scores(c)
            if done["backfilled"]:
                build_board(c)
        if as_json:
            _echo_json(done)
        else:
            code = (f"; {done['code_lacking']} code-track submission(s) have none (a code run is not re-scored: "
                    "rank the code track by dice)") if done["code_lacking"] else ""
            click.echo(f"mask scores stored for {done['backfilled']} submission(s) ({done['files']} file(s) "
                       f"scored){code}")
        return

    def confirm(plan):
        if yes or as_json:
            return True
        click.echo(safe_text(summary_text(plan)).rstrip("\n"))
        return click.confirm(f"{plan['scores_changed']} score(s) in {plan['submissions_changed']} submission(s) "
                             f"and {plan['ranks_changed']} rank(s) change: replace the course's truth?",
                             default=False)


    with Course(course) as c:
        plan = rescore_course(c, new_truth, confirm=confirm, out=out, rebuild_board=build_board)
    if as_json:
        _echo_json(plan)
    elif plan["applied"]:
        click.echo(f"truth replaced; report: {safe_name(plan['report']['summary'])}, "
                   f"{safe_name(plan['report']['csv'])}")
    else:
        click.echo("nothing changed")


def _adopt(course, sha, team, at_text):
    from datetime import datetime

    from brats_kit.server.adoption import adopt
    from brats_kit.server.course import Course
    from data_spec.errors import BadArgumentError

    if team is None:
        raise click.UsageError("--adopt needs --team (the team on the receipt)")
    at = None
    if at_text is not None:
        try:
            at = datetime.fromisoformat(at_text.replace("Z", "+00:00"))
        except ValueError:
            raise BadArgumentError(f"unreadable time {at_text!r}", expected="ISO 8601, e.g. 2026-11-02T09:00:00Z") \
                from None
    with Course(course) as c:
        return adopt(c, sha, team, at=at)


@server.command()
@_COURSE
@click.option("--out", required=True, type=click.Path(path_type=Path), help="A new folder for the backup.")
@click.option("--json", "as_json", is_flag=True)
def backup(course, out, as_json):
    """Back up a course, running or not: a database snapshot, then its private files and store (a course folder)."""
    from brats_kit.server.backup import backup_course
    from brats_kit.server.course import Course

    with Course(course) as c:
        info = backup_course(c, out)
    if as_json:
        _echo_json(info)
    else:
        click.echo(f"backed up {safe_name(course)} to {safe_name(info['out'])}: database "
                   f"{safe_name(info['database'])}, {info['files']} stored files")


def _service(course):
    from brats_kit.server.course import Course
    from brats_kit.server.service import CourseService

    return CourseService(Course(course))


def _refusal(exc) -> None:
    from data_spec.errors import KitError

    raise KitError(exc.message, code=exc.code, hint=exc.extra.get("hint"))


@server.command()
@_COURSE
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--before-deadline", is_flag=True,
              help="Reveal although the deadline has not passed (closes the competition early for every team).")
@click.option("--json", "as_json", is_flag=True)
def reveal(course, yes, before_deadline, as_json):
    """Reveal the private board and close submissions (cannot be undone); refused before the deadline."""
    from brats_kit.server.service import Refusal
    from grader.score_types import MeanDice

    service = _service(course)
    try:
        early = service.early_reveal()
        if early is not None and not before_deadline:
            _refusal(early)
        if not yes:
            info = service.status()
            when = "the deadline has not passed" if early is not None else "the deadline has passed"
            click.confirm(f"{info['handed_in']} of {len(info['teams'])} teams handed in; {when} "
                          f"({service.deadline_text() or 'no deadline'}). Reveal the private leaderboard and close "
                          "submissions? This cannot be undone", abort=True)
        board = service.reveal(before_deadline=before_deadline)
    except Refusal as exc:
        _refusal(exc)
    finally:
        service.course.close()
    if as_json:
        _echo_json(board)
        return
    click.echo("revealed: the private board")
    for r in board["rows"]:
        click.echo(f"  {r['rank']:>3}  {safe_text(r['team'])}  {MeanDice.name} {r[MeanDice.name]:.4f}  "
                   f"(public rank {r['public_rank']}, move {r['move']:+d})")


@server.command()
@_COURSE
@click.option("--json", "as_json", is_flag=True)
def status(course, as_json):
    """Teams, submissions, quota use today and last activity."""
    service = _service(course)
    try:
        info = service.status()
    finally:
        service.course.close()
    if as_json:
        _echo_json(info)
        return
    when = service.local  # people read the course's zone, to the minute; --json keeps ISO 8601 UTC
    click.echo(f"now {when(info['now'])}; quota day {info['quota_day']} (resets {when(info['quota_resets_at'])}); "
               f"deadline {when(info['deadline']) or 'none'}; {'revealed' if info['revealed'] else 'not revealed'}; "
               f"{info['handed_in']} of {len(info['teams'])} teams handed in")
    click.echo(f"{'team':<24} {'scored':>6} {'invalid':>7} {'today':>9} {'over quota':>10} {'late':>4}  last activity")
    for r in info["teams"]:
        today = f"{r['today_scored']}/{info['per_day']}"
        click.echo(f"{safe_text(r['team'])[:24]:<24} {r['scored']:>6} {r['invalid']:>7} {today:>9} "
                   f"{r['over_quota']:>10} {r['refused_late']:>4}  {when(r['last_activity']) or '-'}")
    click.echo(f"{info['submissions']} submissions in all")
    for sha in info["quarantined"]:
        click.echo(f"quarantined: {sha} (not in the database: a restored backup? "
                   f"'brats-kit server audit --adopt {sha} --team TEAM')")


@server.command()
@_COURSE
@click.option("--rotate", "team", default=None,
              help="Give this team a new token (the old one stops working, its sessions end); "
                   "'admin': the instructor's token.")
@click.option("--end-sessions", is_flag=True, help="Sign every browser out (teams and instructor), server-side.")
@click.option("--json", "as_json", is_flag=True)
def tokens(course, team, end_sessions, as_json):
    """Where the tokens are; --rotate TEAM|admin replaces one token; --end-sessions signs everyone out."""
    service = _service(course)
    try:
        info = {"tokens": str(service.course.tokens_csv), "admin_token": str(service.course.admin_token_file)}
        if team is not None:
            service.rotate_token(team)
            info["rotated"] = team
        if end_sessions:
            info["sessions_ended"] = service.end_all_sessions()
    finally:
        service.course.close()
    if as_json:
        _echo_json(info)
        return
    if team is None and not end_sessions:
        click.echo(f"team tokens: {safe_name(service.course.tokens_csv)}")
        click.echo(f"admin token: {safe_name(service.course.admin_token_file)}")
    if team is not None:
        from brats_kit.server.service import ADMIN

        where = service.course.admin_token_file if team == ADMIN else service.course.tokens_csv
        click.echo(f"new token for {safe_text(team)} written to {safe_name(where)} (its sessions are ended)")
    if end_sessions:
        click.echo(f"ended {info['sessions_ended']} session(s): everyone signs in again")


@server.command()
@_COURSE
@click.option("--format", "fmt", type=click.Choice(["moodle", "canvas", "csv"]), default="csv", show_default=True,
              help="Moodle's or Canvas's grade import CSV, or plain CSV.")
@click.option("--scale", default="linear:100", show_default=True,
              help="Marks: linear[:LOW..HIGH]:MARKS (default points: the flair-threshold baseline = 0, the best "
                   "baseline = MARKS; without baselines Dice 0 = 0 and Dice 1 = MARKS, stated in the README) "
                   "or thresholds 0.6:10,0.7:14,0.8:18,0.85:20.")
@click.option("--baselines", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Reference submissions, DIR/<baseline>/<file>: the scale's reference points (default: the "
                   "course's, from server init --baselines).")
@click.option("--assignment", default="BraTS competition", show_default=True, help="The grade column's name.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Gradebook file (private: names and e-mails), with a README beside it.")
@click.option("--force", is_flag=True, help="Replace an existing file (an earlier gradebook too).")
@click.option("--zeros", is_flag=True, help="0 marks for a student whose team has no valid submission "
                                            "(default: an empty grade).")
@click.option("--track", type=click.Choice(["file", "code"]), default="file", show_default=True,
              help="Whose board: the file track (test slices) or the code track (hidden slices).")
@click.option("--json", "as_json", is_flag=True)
def grades(course, fmt, scale, baselines, assignment, out, force, zeros, track, as_json):
    """One row per student with the team's final private score, as marks (after the reveal)."""
    from brats_kit.server.baselines import baselines_of
    from brats_kit.server.gradebook import course_grades

    service = _service(course)
    try:
        info = course_grades(service, out, fmt=fmt, scale=scale, assignment=assignment, force=force, zeros=zeros,
                             track=track, baselines=baselines if baselines is not None else baselines_of(service.course))
    finally:
        service.course.close()
    if as_json:
        _echo_json(info)
        return
    for note in info["notes"]:
        click.echo(f"note: {safe_text(note)}")
    click.echo(f"scale: {safe_text(info['scale'])}")
    click.echo(f"wrote {safe_name(info['out'])} ({fmt}, {info['students']} students, {info['graded']} with a score) "
               f"and {safe_name(Path(info['readme']).name)}")


@server.command()
@_COURSE
@click.option("--threshold", default=0.98, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Pooled Dice between two teams' predictions at or above which the pair is flagged.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the flagged pairs as CSV (private: it names teams).")
@click.option("--json", "as_json", is_flag=True)
def integrity(course, threshold, out, as_json):
    """Identical files and near-identical predictions between teams: leads to look into, never a penalty."""
    from brats_kit.server.integrity import integrity_of_course
    from data_spec.errors import KitError
    from grader.integrity import COLUMNS, report_csv
    from plumbing.atomic import write_text

    if out is not None and out.exists() and not out.read_bytes().startswith(",".join(COLUMNS).encode()):
        raise KitError("refusing to replace a file that is not an integrity report", code="exists", path=out,
                       hint="give a new file name")
    service = _service(course)
    try:
        report = integrity_of_course(service, threshold)
    finally:
        service.course.close()
    if out is not None:
        write_text(out, report_csv(report))
    if as_json:
        _echo_json(report.to_dict())
        return
    for f in report.flags:
        what = "identical file" if f.kind == "identical_file" else f"Dice {f.dice:.4f}"
        click.echo(f"{what}: {safe_text(f.team_a)} ({safe_text(f.submission_a)}, {f.submitted_at_a}) and "
                   f"{safe_text(f.team_b)} ({safe_text(f.submission_b)}, {f.submitted_at_b})")
    typical = "n/a" if report.median_dice is None else f"{report.median_dice:.4f}"
    click.echo(f"{len(report.flags)} flagged pair(s) among {report.compared} teams ({report.pairs} pairs compared; "
               f"median pairwise Dice {typical}, threshold {threshold:g}); scores and ranks unchanged")
    if out is not None:
        click.echo(f"wrote {safe_name(out)}")
