"""``brats-kit code``: run a code submission at home exactly as the grader runs it (same sandbox, same limits)."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.text import safe_name, safe_text

EXIT_INVALID = 1


@click.group()
def code():
    """Code submissions: a folder (or .zip) holding submission.py that defines predict(x)."""


@code.command("run")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The competition folder you were given: predict runs on its public test inputs.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The submission file to write (e.g. test_data_ypred.dat).")
@click.option("--time-limit", type=click.FloatRange(1, 24 * 3600), default=None,
              show_default="the server's",
              help="Wall-clock seconds for the whole run (the server's default).")
@click.option("--memory-mb", type=click.IntRange(256), default=None, show_default="the server's",
              help="Memory limit in MB (the server's default).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: status, failure, errors, log, out.")
def run(source, data, out, time_limit, memory_mb, as_json):
    """Run SOURCE's predict(x) in the sandbox on DATA's test inputs and write OUT.

    The sandbox and limits are the grader's: no network, no file outside the
    submission, no new process. Exit code 0 when the prediction is valid, 1
    when the run failed (timeout, memory, crashed, invalid_output) or the
    prediction is invalid.

    \b
    Example:
      brats-kit code run my_submission/ --data competition --out test_data_ypred.dat
    """
    from grader.code import Limits, code_run

    given = {"time_limit": time_limit, "memory_mb": memory_mb}
    limits = Limits(**{name: value for name, value in given.items() if value is not None})
    result = code_run(source, data, out, limits=limits)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(result)
    else:
        click.echo(format_result(result))
    if result["status"] != "valid":
        raise SystemExit(EXIT_INVALID)


def format_result(result: dict) -> str:
    """Human lines for :func:`grader.code.code_run`'s record."""
    from grader.errors import RecordedError

    from .grade import format_errors

    seconds = f"{result['seconds']:.1f} s"
    if result["status"] == "valid":
        return f"valid: wrote {safe_name(result['out'])} ({result['n_slices']} slices, {seconds} in the sandbox)"
    if result["status"] == "invalid":
        errors = [RecordedError(e) for e in result["errors"]]
        return "\n".join([f"INVALID prediction ({seconds}):"] + format_errors(errors))
    lines = [f"FAILED: {result['failure']}" + (f" ({result['error_type']})" if result.get("error_type") else "")
             + f": {safe_text(result['detail'])} after {seconds}"]
    if result.get("log"):
        lines.append("output of your program (the server keeps it for the instructor only):")
        lines.extend("  " + safe_text(line) for line in result["log"].splitlines()[-40:])
    return "\n".join(lines)
