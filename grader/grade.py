"""Grade a submission against the hidden truth: validate, count once, score, report.

The truth may be the course's own ``test_data_y.dat`` (its public cases then drawn from a seed):

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from data_spec import write_course_array
>>> from grader import grade
>>> folder = Path(tempfile.mkdtemp())
>>> truth = np.zeros((4, 240, 240), np.uint8); truth[:, 100:140, 100:140] = 1
>>> _ = write_course_array(folder / "test_data_y.dat", truth, "y")
>>> _ = write_course_array(folder / "test_data_ypred.dat", np.roll(truth, 10, axis=2), "y")
>>> result = grade(folder / "test_data_ypred.dat", folder / "test_data_y.dat")
>>> result["status"], round(result["f1"], 2), round(result["dice"], 2)
('scored', 0.75, 0.75)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from data_spec.constants import TEST
from data_spec.errors import KitError, LayoutError
from data_spec.layout import open_split
from data_spec.truth import Truth, load_truth
from plumbing.progress import no_progress

from .counts import Counts, phase_mask
from .metrics import MASK_SCORES, mask_scores_per_slice, metric_names
from .scoring import evaluate


def grade(
    submission,
    truth,
    *,
    hd95: bool = False,
    metrics=None,
    public_only: bool = False,
    report_dir=None,
    data=None,
    max_bytes: Optional[int] = None,
    progress=no_progress,
) -> dict:
    """Validate and score one submission: the object ``brats-kit score --json`` prints.

    Parameters
    ----------
    submission : path-like or array-like
        The submission file (raw ``.dat``, ``.npy`` or HDF5), or an array.
    truth : path-like, Split or Truth
        ``private/test_truth.h5``, the course's ``test_data_y.dat``, or a
        directory holding either (see :func:`data_spec.find_truth`).
    hd95 : bool
        Also report the mean per-slice HD95 (pixels).
    metrics : str or list of str, optional
        Report only these scores (:func:`grader.metrics.metric_names`, e.g.
        ``"dice,lesion_dice,lesion_hd95,nsd"``; ``hd95`` is added when ``hd95``
        is true). By default the count-based scores.
    public_only : bool
        Score (and report) only the public cases. Needs the HDF5 truth's flags.
    report_dir : path-like, optional
        Write ``per_slice.csv`` and ``worst_slices.png`` there (see :mod:`grader.report`).
    data : path-like, optional
        Competition directory with the test inputs for the report's montage;
        by default the truth's competition directory is searched.
    max_bytes : int, optional
        Submission size cap (see :func:`grader.validate_submission`).
    progress : callable
        Progress reporter for the per-slice HD95 loop.

    Returns
    -------
    dict
        ``status`` "invalid" with ``errors`` (every problem); or ``status``
        "scored", ``errors`` [], ``f1``, ``dice``, ``precision``, ``recall``,
        ``dice_tumour_slices``, ``empty_slices_correct``, ``n_slices`` (the
        slices scored), ``phase`` ("all" or "public"), ``hd95`` when asked,
        ``report`` (file paths) when a report was written. With ``metrics``,
        the scores named there instead of the count-based ones.

    Raises
    ------
    KitError
        A problem with the truth or the options (never with the submission):
        no truth, a corrupt truth, ``public_only`` without phase flags or without a public case.
    """
    names = None if metrics is None else metric_names(list(metric_names(metrics)) + ["hd95"] * hd95)
    truth = load_truth(truth)
    phase = "public" if public_only else "all"
    keep = phase_mask(truth, phase, need_flags=True)  # before validating: an option error comes first
    verdict = evaluate(submission, truth, max_bytes=max_bytes)
    if not verdict.ok:
        return {"status": "invalid", "errors": verdict.error_dicts()}
    counts = verdict.counts.select(keep)
    out = {"status": "scored", "errors": []}
    scores = counts.scores()
    if names is None:
        names = ["hd95"] * hd95
        out.update(scores)
    else:
        out.update({k: v for k, v in scores.items() if k in names or k == "n_slices"})
    out["phase"] = phase
    y_true, y_pred = truth.y[keep], verdict.y_pred[keep]
    # The report always shows HD95 per slice, and every other mask score asked for.
    per_slice = mask_scores_per_slice(y_true, y_pred, names + ["hd95"] * (report_dir is not None), progress=progress)
    for st in MASK_SCORES:
        if st.name in names:
            out[st.name] = st.aggregate(per_slice[st.name])
    if report_dir is not None:
        from .report import write_report

        x, note = _test_inputs(truth, data)
        out["report"] = write_report(
            report_dir, counts, hd95=per_slice["hd95"], y_true=y_true, y_pred=y_pred,
            extra={k: v for k, v in per_slice.items() if k != "hd95"},
            show_public=truth.has_flags, x=x, index=np.flatnonzero(keep), note=note,
        )
    return out


def _test_inputs(truth: Truth, data):
    """The test inputs matching the truth (for the montage), or None and a note saying why not."""
    explicit = data is not None
    directory = Path(data) if explicit else truth.directory
    if directory is None:
        return None, "test inputs not given: the montage shows masks only"
    try:
        split = open_split(directory, TEST)
    except (KitError, OSError):
        if explicit:
            raise
        return None, f"no test inputs found in {directory}: the montage shows masks only"
    if split.x is None or len(split) != len(truth) or not np.array_equal(split.case_id, truth.case_id):
        message = f"the test inputs in {directory} do not match the truth (slice count or case ids)"
        if explicit:
            raise LayoutError(message, path=directory)
        return None, message + ": the montage shows masks only"
    return split.x, None
