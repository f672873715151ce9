"""``brats-kit validate`` (the student's check) and ``brats-kit score`` (the instructor's grader)."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress
from brats_kit.text import safe_name, safe_text

EXIT_INVALID = 1


def format_errors(errors) -> list:
    """Human lines for a list of KitErrors: code and message, then where, expected and hint."""
    lines = []
    for e in errors:
        lines.append(f"  [{e.code}] {safe_text(e.message)}")
        for label, value in (("where", e.where), ("expected", e.expected), ("hint", e.hint)):
            if value:
                lines.append(f"      {label + ':':<10}{safe_text(value)}")
    return lines


def format_validation(result) -> str:
    """Human-readable result of :func:`grader.check_submission`."""
    if result.ok:
        return f"valid: {safe_name(result.path)} ({result.format}, {result.n_slices} slices)"
    n = len(result.errors)
    return "\n".join([f"INVALID: {safe_name(result.path)} ({n} problem{'s' * (n != 1)})"] + format_errors(result.errors))


def format_scores(result: dict, submission) -> str:
    """Human-readable table of :func:`grader.grade`'s result."""
    from grader.metrics import SCORE_TYPES

    phase = "public cases only" if result.get("phase") == "public" else "all cases"
    lines = [f"{safe_name(submission)}: scored on {result['n_slices']} slices ({phase})"]
    for st in SCORE_TYPES:
        if st.name in result:
            arrow = "lower is better" if st.is_lower_the_better else ""
            lines.append(f"  {st.title:<30}{st.format(result[st.name]):>10}  {arrow}".rstrip())
    if "report" in result:
        report = result["report"]
        lines.append(f"report: {safe_name(report['csv'])}, {safe_name(report['png'])}")
        if report.get("note"):
            lines.append(f"  note: {safe_text(report['note'])}")
    return "\n".join(lines)


# readable=False: click would refuse an unreadable file as a usage error (exit 2, no JSON); the
# grader opens it itself and reports an unsafe_file verdict.
_SUBMISSION = click.argument("submission", type=click.Path(readable=False, path_type=Path))


@click.command()
@_SUBMISSION
@click.option("--data", "data", required=True, type=click.Path(exists=True, path_type=Path),
              help="The competition directory you were given (its test inputs give the slice count and ids).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: status, errors, format, n_slices.")
@click.pass_context
def validate(ctx, submission, data, as_json):
    """Check SUBMISSION exactly as the grader will, using only the public test inputs.

    Every problem is listed at once, each with where it is and a hint.
    Exit code 0 when valid, 1 when not.

    \b
    Example:
      brats-kit validate test_data_ypred.dat --data competition/
    """
    from grader.validate import check_submission

    result = check_submission(submission, data)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(result.to_dict())
    else:
        click.echo(format_validation(result))
    ctx.exit(0 if result.ok else EXIT_INVALID)


@click.command()
@_SUBMISSION
@click.option("--truth", required=True, type=click.Path(exists=True, path_type=Path),
              help="private/test_truth.h5, the course's test_data_y.dat, or a directory holding one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (status, errors, scores).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write per_slice.csv and worst_slices.png into this directory.")
@click.option("--hd95", is_flag=True, help="Also compute the mean per-slice HD95 (pixels).")
@click.option("--metrics", default=None, metavar="NAMES",
              help="Only these scores, comma-separated: f1, dice, precision, recall, dice_tumour_slices, "
                   "empty_slices_correct, hd95, lesion_dice, lesion_hd95, nsd (default: the first six).")
@click.option("--public-only", is_flag=True,
              help="Score and report only the public cases (needs the HDF5 truth's phase flags).")
@click.option("--data", type=click.Path(exists=True, path_type=Path),
              help="Competition directory with the test inputs for the report's montage (default: found from --truth).")
@click.pass_context
def score(ctx, submission, truth, as_json, report_dir, hd95, metrics, public_only, data):
    """Validate SUBMISSION and score it against the hidden truth.

    Exit code 0 when scored, 1 when the submission is invalid (with --json the
    object is still printed, with "status": "invalid" and every error).

    \b
    Example:
      brats-kit score test_data_ypred.dat --truth competition/private/test_truth.h5 --json
      brats-kit score test_data_ypred.dat --truth competition/private --metrics dice,lesion_dice,lesion_hd95,nsd
    """
    from grader.grade import grade

    result = grade(submission, truth, hd95=hd95, metrics=metrics, public_only=public_only, report_dir=report_dir,
                   data=data, progress=click_progress)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(result)
    elif result["status"] == "scored":
        click.echo(format_scores(result, submission))
    else:
        n = len(result["errors"])
        click.echo(f"INVALID: {safe_name(submission)} ({n} problem{'s' * (n != 1)})")
        for e in result["errors"]:
            click.echo(f"  [{e['code']}] {safe_text(e['message'])}")
    ctx.exit(0 if result["status"] == "scored" else EXIT_INVALID)
