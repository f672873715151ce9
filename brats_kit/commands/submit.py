"""The students' client commands: ``submit`` (validate locally, upload, print the receipt),
``submissions`` (the team's receipts) and ``finals`` (choose the team's final submissions)."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.text import safe_text

EXIT_INVALID, EXIT_UNREACHABLE = 1, 4


def when(value, zone=None) -> str:
    """A time of the server's (ISO 8601, UTC) as people read it: in ``zone`` (default: this machine's), to the
    minute, the zone named. Anything that is not such a time is printed as it came, escaped.

    Examples
    --------
    >>> from zoneinfo import ZoneInfo
    >>> when("2026-12-15T22:59:00.123456Z", ZoneInfo("Europe/Paris"))
    '2026-12-15 23:59 CET'
    >>> when("not a time")
    'not a time'
    """
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _t(value)
    if moment.tzinfo is None:
        return _t(value)
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or local.strftime('UTC%z')}"


def format_receipt(r) -> str:
    lines = [f"{r.status.upper()}: submission {r.id} of team {safe_text(r.team)} at {when(r.submitted_at)}",
             f"  sha256 {r.sha256} ({r.bytes} bytes)"]
    if r.public:
        lines.append("  public scores: " + _scores(r.public))
    for e in r.errors:
        lines.append(f"  [{e['code']}] {safe_text(e['message'])}")
    if r.remaining_today is not None:
        lines.append(f"  valid submissions left today: {r.remaining_today} (resets {when(r.quota_resets_at)})")
    if r.deadline:
        lines.append(f"  deadline: {when(r.deadline)}")
    return "\n".join(lines)


def format_job(job: dict) -> str:
    """One code job as ``submit`` and ``submissions`` print it: status, failure class, scores or errors."""
    status = _t(job.get("status")).upper()
    if job.get("failure"):
        status += f" ({_t(job['failure'])}{', ' + _t(job['error_type']) if job.get('error_type') else ''})"
    lines = [f"  code job {_t(job.get('id'))}  {when(job.get('submitted_at'))}  {status}"
             f"  sha256 {_t(job.get('sha256', ''))[:12]}"]
    if job.get("detail"):
        lines.append(f"        {_t(job['detail'])}")
    if job.get("public"):
        lines.append(f"        public scores: {_scores(job['public'])}")
    for e in job.get("errors") or []:
        e = e if isinstance(e, dict) else {"message": e}
        lines.append(f"        [{_t(e.get('code'))}] {_t(e.get('message'))}")
    if job.get("log"):
        lines.append("        log: " + _t(job["log"][-2000:]))
    return "\n".join(lines)


def _t(value) -> str:
    """A value from the server's JSON, printable: any type, control characters escaped."""
    return safe_text("" if value is None else str(value))


def _scores(scores: dict) -> str:
    if not isinstance(scores, dict):
        return _t(scores)
    return ", ".join(f"{_t(k)} {v:.4f}" if isinstance(v, float) else f"{_t(k)} {_t(v)}"
                     for k, v in scores.items())


def format_submissions(listing: dict) -> str:
    """The team's receipts as the ``submissions`` command prints them: one line each, oldest first."""
    subs = listing.get("submissions", [])
    lines = [f"team {_t(listing.get('team'))}: {len(subs)} submission{'s' if len(subs) != 1 else ''}"]
    for r in subs:
        final = "  FINAL" if r.get("final") else ""
        lines.append(f"  {_t(r.get('id')):>4}  {when(r.get('submitted_at'))}  {_t(r.get('status')).upper():<8}"
                     f"  sha256 {_t(r.get('sha256', ''))[:12]}{final}")
        for phase in ("public", "private"):
            if r.get(phase):
                lines.append(f"        {phase} scores: {_scores(r[phase])}")
        for e in r.get("errors") or []:
            e = e if isinstance(e, dict) else {"message": e}
            lines.append(f"        [{_t(e.get('code'))}] {_t(e.get('message'))}")
    if "remaining_today" in listing:
        lines.append(f"valid submissions left today: {_t(listing['remaining_today'])} "
                     f"(resets {when(listing.get('quota_resets_at'))})")
    if listing.get("finals_allowed") is not None:
        lines.append(f"finals: up to {_t(listing['finals_allowed'])} (brats-kit finals ID...); "
                     "none chosen means your best public score counts")
    if listing.get("deadline"):
        lines.append(f"deadline: {when(listing['deadline'])}")
    return "\n".join(lines)


def _server(ctx, param, value):
    """``--server``: a bare HOST:PORT means http://; another scheme is a usage error (exit 2) with its hint."""
    from brats_kit.server.client import server_url
    from data_spec.errors import BadArgumentError

    try:
        return server_url(value)
    except BadArgumentError as exc:
        raise click.BadParameter(str(exc)) from None


def client_options(command):
    """``--server``, ``--token`` (or $BRATS_KIT_TOKEN) and ``--json``, the same in every client command."""
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print the server's answer (or the error) as one JSON object.")(command)
    command = click.option("--token", envvar="BRATS_KIT_TOKEN", required=True, show_envvar=True,
                           help="Your team's token (better from the environment variable than on the "
                                "command line).")(command)
    return click.option("--server", required=True, callback=_server,
                        help="The course server, e.g. http://127.0.0.1:8000 (a bare HOST:PORT means http://).")(command)


def _fail(ctx, as_json: bool, obj: dict, text: str, code: int):
    if as_json:
        from brats_kit.output import echo_json

        echo_json(obj)
    else:
        click.echo(text, err=True)
    ctx.exit(code)


def _call_server(ctx, as_json: bool, fn, *args):
    """``fn(*args)``, with the server's refusal or a foreign answer (exit 1) and no answer (exit 4) printed as the
    commands do."""
    from brats_kit.server.client import ServerUnreachable, SubmissionRefused, UnexpectedAnswer

    try:
        return fn(*args)
    except UnexpectedAnswer as exc:
        _fail(ctx, as_json, {"status": "bad_response", "error": exc.to_dict()}, f"error: {safe_text(exc)}",
              EXIT_INVALID)
    except SubmissionRefused as exc:
        _fail(ctx, as_json, {"status": "refused", "http_status": exc.status, "error": exc.to_dict()},
              f"REFUSED: {safe_text(exc)}", EXIT_INVALID)
    except ServerUnreachable as exc:
        _fail(ctx, as_json, {"status": "unreachable", "error": exc.to_dict()}, f"error: {safe_text(exc)}",
              EXIT_UNREACHABLE)


def _echo(as_json: bool, obj: dict, text: str) -> None:
    if as_json:
        from brats_kit.output import echo_json

        echo_json(obj)
    else:
        click.echo(text)


@click.command()
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@client_options
@click.pass_context
def submit(ctx, file, server, token, as_json):
    """Hand in FILE: validated here first with the grader's own validator (an invalid file is never
    uploaded), then uploaded; prints the receipt with the public score.

    FILE may also be code (a folder, or a .zip of one, holding submission.py; try it first with
    'brats-kit code run'): the receipt says 'queued', and 'brats-kit submissions' shows its outcome.

    Exit code 0 accepted, 1 refused or invalid, 2 usage, 4 server unreachable.
    """
    from brats_kit.commands.grade import format_errors
    from brats_kit.server.client import is_code, submit_code
    from brats_kit.server.client import submit as send
    from grader.errors import InvalidSubmissionError

    if is_code(file):  # a folder or a .zip holding submission.py: a code job, queued at once
        job = _call_server(ctx, as_json, submit_code, file, server, token)
        _echo(as_json, job, format_job(job))
        return
    try:
        receipt = _call_server(ctx, as_json, send, file, server, token)
    except InvalidSubmissionError as exc:
        text = "\n".join([f"INVALID (not uploaded): {safe_text(str(file))}"] + format_errors(exc.errors))
        _fail(ctx, as_json, {"status": "invalid", "uploaded": False, "errors": [e.to_dict() for e in exc.errors]},
              text, EXIT_INVALID)
    _echo(as_json, receipt.raw, format_receipt(receipt))
    if not receipt.ok:
        ctx.exit(EXIT_INVALID)


@click.command()
@client_options
@click.pass_context
def submissions(ctx, server, token, as_json):
    """List your team's submissions (oldest first): time, status, public scores, errors, which are
    finals; then what is left today and the deadline.

    Exit code 0 listed, 1 refused (a wrong token), 2 usage, 4 server unreachable.
    """
    from brats_kit.server.client import list_submissions

    from brats_kit.server.client import list_code_jobs

    listing = _call_server(ctx, as_json, list_submissions, server, token)
    jobs = _call_server(ctx, as_json, list_code_jobs, server, token)
    text = format_submissions(listing)
    if jobs is not None:
        listing["code_jobs"] = jobs
        text += "\n" + "\n".join([f"code jobs: {len(jobs)}"] + [format_job(j) for j in jobs])
    _echo(as_json, listing, text)


@click.command()
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), metavar="ID...")
@click.option("--clear", is_flag=True, help="Choose no final: your best public score counts.")
@client_options
@click.pass_context
def finals(ctx, ids, clear, server, token, as_json):
    """Choose your team's final submissions by their ids (see 'brats-kit submissions'); the best
    of them on the private cases counts after the reveal. This replaces any earlier choice.

    Exit code 0 chosen, 1 refused (too many, invalid, another team's, after the deadline), 2 usage,
    4 server unreachable.
    """
    from brats_kit.server.client import choose_finals

    if bool(ids) == clear:
        raise click.UsageError("give the ids of your final submissions, or --clear to choose none")
    chosen = _call_server(ctx, as_json, choose_finals, server, token, ids)
    picked = ", ".join(str(i) for i in chosen.get("finals", [])) or "none"
    _echo(as_json, chosen, f"finals of team {safe_text(chosen.get('team'))}: {picked} "
                           f"(counts: {safe_text(chosen.get('rule'))})")
