"""``brats-kit submit``: the students' client (validate locally, upload, print the receipt)."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.text import safe_text

EXIT_INVALID, EXIT_UNREACHABLE = 1, 4


def format_receipt(r) -> str:
    lines = [f"{r.status.upper()}: submission {r.id} of team {safe_text(r.team)} at {r.submitted_at}",
             f"  sha256 {r.sha256} ({r.bytes} bytes)"]
    if r.public:
        lines.append("  public scores: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in r.public.items()))
    for e in r.errors:
        lines.append(f"  [{e['code']}] {safe_text(e['message'])}")
    if r.remaining_today is not None:
        lines.append(f"  valid submissions left today: {r.remaining_today} (resets {r.quota_resets_at})")
    if r.deadline:
        lines.append(f"  deadline: {r.deadline}")
    return "\n".join(lines)


@click.command()
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@click.option("--server", required=True, help="The course server, e.g. http://127.0.0.1:8000.")
@click.option("--token", envvar="BRATS_KIT_TOKEN", required=True, show_envvar=True,
              help="Your team's token (better from the environment variable than on the command line).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt (or the errors) as one JSON object.")
@click.pass_context
def submit(ctx, file, server, token, as_json):
    """Hand in FILE: validated here first with the grader's own validator (an invalid file is never
    uploaded), then uploaded; prints the receipt with the public score.

    Exit code 0 accepted, 1 refused or invalid, 2 usage, 4 server unreachable.
    """
    from brats_kit.commands.grade import format_errors
    from brats_kit.server.client import ServerUnreachable, SubmissionRefused, submit as send
    from grader.errors import InvalidSubmissionError

    def fail(obj: dict, text: str, code: int):
        if as_json:
            from brats_kit.output import echo_json

            echo_json(obj)
        else:
            click.echo(text, err=True)
        ctx.exit(code)

    try:
        receipt = send(file, server, token)
    except InvalidSubmissionError as exc:
        text = "\n".join([f"INVALID (not uploaded): {safe_text(str(file))}"] + format_errors(exc.errors))
        fail({"status": "invalid", "uploaded": False, "errors": [e.to_dict() for e in exc.errors]}, text, EXIT_INVALID)
    except SubmissionRefused as exc:
        fail({"status": "refused", "http_status": exc.status, "error": exc.to_dict()}, f"REFUSED: {exc}", EXIT_INVALID)
    except ServerUnreachable as exc:
        fail({"status": "unreachable", "error": exc.to_dict()}, f"error: {exc}", EXIT_UNREACHABLE)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(receipt.raw)
    else:
        click.echo(format_receipt(receipt))
    if not receipt.ok:
        ctx.exit(EXIT_INVALID)
