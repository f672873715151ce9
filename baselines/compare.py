"""Train every baseline and put them side by side: ``brats-kit baseline compare``.

Peak memory is measured by running each baseline in a fresh child process
(``spawn``) and reading that process's ``ru_maxrss`` (``resource.getrusage``)
when it is done: the resident set of everything it held (interpreter,
libraries, mapped data, features, model), not only Python's allocations.
"""
from __future__ import annotations

import time


from plumbing.progress import no_progress
from data_spec import TEST, KitError, open_split, truth_for

from .registry import baseline_names, get_baseline
from .train import train_baseline

#: Columns of the table, in order: (key, header, format).
COLUMNS = (
    ("name", "baseline", "{}"),
    ("val_f1", "val F1", "{:.3f}"),
    ("val_dice", "val Dice", "{:.3f}"),
    ("val_dice_raw", "val raw", "{:.3f}"),
    ("test_f1", "test F1", "{:.3f}"),
    ("test_dice", "test Dice", "{:.3f}"),
    ("fit_s", "fit s", "{:.1f}"),
    ("predict_s", "predict s", "{:.1f}"),
    ("total_s", "total s", "{:.1f}"),
    ("peak_mb", "peak MB", "{:.0f}"),
)


def run_one(
    name: str, data, truth=None, *, val_fraction: float = 0.2, seed: int = 0, segmenter=None, progress=no_progress
) -> dict:
    """Train, tune and (with the truth) test one baseline; returns one row of the table.

    Test scores come from :func:`grader.score` on the whole test set.
    ``segmenter`` replaces the named baseline's model (see
    :func:`baselines.train.train_baseline`).
    """
    from grader.metrics import score

    t0 = time.perf_counter()
    result = train_baseline(name, data, val_fraction=val_fraction, seed=seed, segmenter=segmenter, progress=progress)
    segmenter = result["estimator"]
    test = open_split(data, TEST)
    t1 = time.perf_counter()
    y_pred = segmenter.predict(test.x, progress=progress)
    predict_s = time.perf_counter() - t1
    row = {
        "name": name,
        "val_f1": result["validation"]["scores"]["f1"],
        "val_dice": result["validation"]["scores"]["dice"],
        "val_f1_raw": result["validation_raw"]["scores"]["f1"],
        "val_dice_raw": result["validation_raw"]["scores"]["dice"],
        "postprocess": result["postprocess"],
        "n_train_vectors": result["n_train_vectors"],
        "fit_s": result["seconds"]["fit"],
        "tune_s": result["seconds"]["tune"],
        "predict_s": predict_s,
        "test_f1": None,
        "test_dice": None,
    }
    if truth is not None:
        y_true = truth_for(truth, test).y
        scores = score(y_true, y_pred)
        row["test_f1"], row["test_dice"] = float(scores["f1"]), float(scores["dice"])
    row["total_s"] = time.perf_counter() - t0
    return row


def _run_isolated(name, data, truth, val_fraction, seed) -> dict:
    """In the child process: one row, plus this process's peak resident memory."""
    import resource

    row = run_one(name, data, truth, val_fraction=val_fraction, seed=seed)
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    return row


def compare_baselines(
    data,
    *,
    truth=None,
    names=None,
    val_fraction: float = 0.2,
    seed: int = 0,
    isolate: bool = True,
    progress=no_progress,
    log=None,
) -> dict:
    """Train every baseline (or ``names``) on ``data`` and measure them.

    Parameters
    ----------
    data : path-like
        Competition directory (either layout).
    truth : path-like, optional
        The test truth (``private/test_truth.h5``, a course ``test_data_y.dat``,
        or the competition directory holding ``private/``): adds test scores.
    names : list of str, optional
        Default: every baseline, in the order of ``baseline list``.
    val_fraction, seed : see :func:`baselines.train.train_baseline`
    isolate : bool, default True
        One fresh process per baseline, giving its peak memory (``peak_mb``);
        False runs in this process and leaves ``peak_mb`` None.
    progress : callable
        Wraps the loop over baselines.
    log : callable, optional
        Receives one line per finished baseline.

    Returns
    -------
    dict
        ``rows`` (one dict per baseline: ``val_f1``, ``val_dice``, ``val_dice_raw``,
        ``test_f1``, ``test_dice``, ``fit_s``, ``tune_s``, ``predict_s``,
        ``total_s``, ``peak_mb``, ``postprocess``...), ``total_s``, ``memory``
        (how peak memory was measured).
    """
    names = baseline_names() if names is None else list(names)
    for name in names:
        get_baseline(name)  # fail early on a typo
    data = str(data)
    truth = None if truth is None else str(truth)
    if truth is not None:
        truth_for(truth, open_split(data, TEST))  # fail before hours of training
    rows = []
    if log is not None:
        log(format_header())
    t0 = time.perf_counter()
    for name in progress(names, label="baselines", length=len(names)):
        if isolate:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                row = pool.submit(_run_isolated, name, data, truth, val_fraction, seed).result()
        else:
            row = run_one(name, data, truth, val_fraction=val_fraction, seed=seed)
            row["peak_mb"] = None
        rows.append(row)
        if log is not None:
            log(format_row(row))
    return {
        "rows": rows,
        "total_s": time.perf_counter() - t0,
        "memory": "ru_maxrss of one spawned process per baseline" if isolate else "not measured (isolate=False)",
        "seed": seed,
        "val_fraction": val_fraction,
    }


def format_row(row: dict) -> str:
    return "  ".join(_align(key, _cell(row, key, fmt), _width(key, header)) for key, header, fmt in COLUMNS)


def _align(key, text, width):
    return text.ljust(width) if key == "name" else text.rjust(width)


def _cell(row, key, fmt):
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def _width(key, header):
    return 16 if key == "name" else max(len(header), 7)


def format_header() -> str:
    header = "  ".join(_align(k, h, _width(k, h)) for k, h, _ in COLUMNS)
    return header + "\n" + "-" * len(header)


def format_table(result: dict) -> str:
    """The comparison as a plain-text table, one line per baseline."""
    lines = [format_header()] + [format_row(r) for r in result["rows"]]
    lines.append("val raw: validation Dice before post-processing; F1 and Dice are the grader's")
    lines.append(f"total {result['total_s']:.0f} s; peak memory: {result['memory']}")
    return "\n".join(lines)
