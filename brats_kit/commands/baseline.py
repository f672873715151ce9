"""``brats-kit baseline``: the reference models: list, train, predict, compare."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress
from brats_kit.text import safe_name

_DATA = click.option(
    "--data", "data", required=True, type=click.Path(exists=True, path_type=Path),
    help="Competition directory (course or HDF5 layout).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")


def _force(what: str):
    return click.option(
        "--force", is_flag=True,
        help=f"Replace an existing file at --out that is not {what}. Never a competition's data or truth, "
        "nor anything under its private/ folder.",
    )


def _echo_json(obj):
    from brats_kit.output import echo_json

    echo_json(obj)


def _log(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def baseline():
    """Reference models: SVM, MLP, windows, multi-scale features, clustering, FLAIR threshold."""


@baseline.command("list")
@_JSON
def list_(as_json):
    """The baselines, one line each, from the floor to the strongest."""
    from baselines.registry import BASELINES

    if as_json:
        _echo_json([{"name": b.name, "summary": b.summary} for b in BASELINES.values()])
        return
    width = max(len(n) for n in BASELINES)
    for b in BASELINES.values():
        click.echo(f"{b.name.ljust(width)}  {b.summary}")


@baseline.command()
@click.argument("name")
@_DATA
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (a skops archive; an existing file is replaced only if it is a model file).")
@click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of training patients held out to tune and score.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Seeds the split, the sample and the model.")
@_force("a model file")
@_JSON
def train(name, data, out, val_fraction, seed, force, as_json):
    """Train baseline NAME on the training split, tune its post-processing on validation, save it.

    Prints scikit-learn's classification report and confusion matrix on the
    validation pixels (foreground only), and the grader's validation F1 and Dice.
    """
    from baselines.registry import get_baseline
    from baselines.train import train_and_save

    get_baseline(name)
    result = train_and_save(name, data, out, val_fraction=val_fraction, seed=seed, progress=click_progress, force=force)
    if as_json:
        _echo_json(train_summary(result))
        return
    click.echo(format_train(result))


def train_summary(result: dict) -> dict:
    """The JSON-ready part of :func:`baselines.train.train_and_save`'s result."""
    return {
        "name": result["name"],
        "model": str(result["model"]),
        "seed": result["seed"],
        "n_train": result["n_train"],
        "n_val": result["n_val"],
        "n_train_vectors": result["n_train_vectors"],
        "postprocess": result["postprocess"],
        "validation": {
            "scores": result["validation"]["scores"],
            "confusion": result["validation"]["confusion"],
            "report": result["validation"]["report_dict"],
        },
        "validation_raw": {"scores": result["validation_raw"]["scores"]},
        "seconds": result["seconds"],
    }


def format_train(result: dict) -> str:
    v, raw = result["validation"], result["validation_raw"]
    (tn, fp), (fn, tp) = v["confusion"]
    pp = result["postprocess"]
    lines = [
        f"{result['name']}: trained on {result['n_train']} slices ({result['n_train_vectors']} sampled pixels), "
        f"validated on {result['n_val']} in {result['seconds']['fit']:.1f} s + {result['seconds']['tune']:.1f} s",
        "",
        "classification report (validation foreground pixels, after post-processing):",
        v["report"],
        "confusion matrix (rows: truth, columns: prediction):",
        f"{'':>12}{'non-tumour':>12}{'tumour':>12}",
        f"{'non-tumour':>12}{tn:>12}{fp:>12}",
        f"{'tumour':>12}{fn:>12}{tp:>12}",
        "",
        f"post-processing: threshold {pp['threshold']:g}, remove components < {pp['min_size']} px, "
        f"fill holes {'yes' if pp['fill_holes'] else 'no'}",
        f"validation (grader):  F1 {v['scores']['f1']:.4f}  Dice {v['scores']['dice']:.4f}"
        f"   (before post-processing: F1 {raw['scores']['f1']:.4f}  Dice {raw['scores']['dice']:.4f})",
        f"model written to {safe_name(result['model'])}",
    ]
    return "\n".join(lines)


@baseline.command()
@click.argument("model", type=click.Path(path_type=Path))
@_DATA
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Submission to write: course .dat (default test_data_ypred.dat), or .npy / .h5 by suffix. "
              "An existing file is replaced only if it is a submission.")
@_force("a submission")
@_JSON
def predict(model, data, out, force, as_json):
    """Predict the test split of DATA with MODEL and write a submission the grader accepts.

    MODEL is a file written by 'brats-kit baseline train'. Loading it never
    runs code from it: it is a skops archive, and a file that names any type
    outside the kit's own classes and the scikit-learn and numpy types skops
    trusts is refused before anything is built; so are pickles (joblib files)
    and models from another kit release or scikit-learn.
    """
    from baselines.train import predict_submission
    from data_spec import SUBMISSION_FILE

    out = Path(SUBMISSION_FILE) if out is None else out
    result = predict_submission(model, data, out, progress=click_progress, force=force)
    if as_json:
        _echo_json(result)
        return
    click.echo(
        f"wrote {safe_name(result['out'])} ({result['format']}, {result['n_slices']} slices, "
        f"{result['tumour_pixels']} tumour pixels) with {result['baseline']} in {result['seconds']:.1f} s; "
        "it passes the grader's validation"
    )


@baseline.command()
@_DATA
@click.option("--truth", type=click.Path(exists=True, path_type=Path), default=None,
              help="Test truth (private/test_truth.h5, test_data_y.dat, or the competition directory): adds test scores.")
@click.option("--only", "names", multiple=True, help="A baseline to include (repeat); default all.")
@click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--in-process", is_flag=True, help="Do not spawn one process per baseline (faster, no peak memory).")
@_JSON
def compare(data, truth, names, val_fraction, seed, in_process, as_json):
    """Train every baseline and print one table: validation (and test) F1/Dice, seconds, peak memory."""
    from baselines.compare import compare_baselines, format_table

    result = compare_baselines(
        data, truth=truth, names=list(names) or None, val_fraction=val_fraction, seed=seed,
        isolate=not in_process, log=None if as_json else _log,
    )
    if as_json:
        _echo_json(result)
        return
    click.echo(format_table(result))
