"""Train a named baseline with a validation split, and predict a submission with it.

What ``brats-kit baseline train`` and ``baseline predict`` do, as functions.
The validation scores are the grader's own (:func:`grader.score`), so the
number a student sees here is computed by the code that grades the test set.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from plumbing.progress import no_progress
from data_spec import TEST, TRAIN, BadArgumentError, LayoutError, open_split

from .model_file import check_model_out, load_model, save_model
from .postprocess import IDENTITY, postprocess
from .registry import make_baseline


class Rows:
    """Some slices of an array-like (memmap, lazy HDF5), read one at a time when indexed.

    Lets a segmenter train on the training part of a split without loading it.
    """

    def __init__(self, array, rows):
        self.array = array
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows),) + tuple(array.shape[1:])
        self.dtype = array.dtype

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return np.asarray(self.array[int(self.rows[i])])
        return np.stack([np.asarray(self.array[int(r)]) for r in self.rows[i]])

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self))] if len(self) else np.zeros(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)


def split_by_patient(case_id, val_fraction: float = 0.2, seed: int = 0, groups=None):
    """Seeded train/validation split in which no patient is on both sides.

    Parameters
    ----------
    case_id : array-like (N,)
        Case ids of the training slices.
    val_fraction : float in (0, 1)
        Share of patients held out.
    seed : int
    groups : array-like (N,), optional
        Patient of each slice; default: each case is its own patient (the
        course gives one slice per patient).

    Returns
    -------
    train_rows, val_rows : sorted int arrays
    """
    from sklearn.model_selection import GroupShuffleSplit

    if not 0 < val_fraction < 1:
        raise BadArgumentError(f"val_fraction must be between 0 and 1, got {val_fraction}", expected="0 < val_fraction < 1")
    case_id = np.asarray(case_id)
    groups = case_id if groups is None else np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise LayoutError(
            f"{len(case_id)} training case(s) from one patient cannot be split for validation",
            expected="at least two patients",
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_rows, val_rows = next(splitter.split(np.zeros(len(case_id)), groups=groups))
    return np.sort(train_rows), np.sort(val_rows)


def evaluate(y_true, y_pred, foreground) -> dict:
    """The grader's scores, plus scikit-learn's pixel report and confusion matrix on the foreground."""
    from sklearn.metrics import classification_report, confusion_matrix

    from grader.metrics import score

    scores = {k: (float(v) if not isinstance(v, (int, np.integer)) else int(v)) for k, v in score(y_true, y_pred).items()}
    t, p = np.asarray(y_true)[foreground], np.asarray(y_pred)[foreground]
    names = ["non-tumour", "tumour"]
    return {
        "scores": scores,
        "report": classification_report(t, p, labels=[0, 1], target_names=names, digits=3, zero_division=0),
        "report_dict": classification_report(
            t, p, labels=[0, 1], target_names=names, output_dict=True, zero_division=0
        ),
        "confusion": confusion_matrix(t, p, labels=[0, 1]).tolist(),
    }


def train_baseline(
    name: str, data, *, val_fraction: float = 0.2, seed: int = 0, segmenter=None, progress=no_progress
) -> dict:
    """Train a named baseline on a competition's training split, tune and score it on validation.

    Parameters
    ----------
    name : str
        A name of :func:`baselines.registry.baseline_names`.
    data : path-like
        A competition directory in either layout (or a training split file).
    val_fraction : float
        Share of the training patients held out for validation.
    seed : int
        Seeds the split, the sample and the classifier.
    segmenter : PixelSegmenter, optional
        An unfitted segmenter to train instead of the named baseline's (for
        experiments; ``name`` then only labels the result).
    progress : callable

    Returns
    -------
    dict
        ``estimator`` (the fitted, tuned segmenter; trained on the training part
        only, so that its validation scores are honest), ``name``, ``seed``,
        ``n_train``/``n_val`` (slices), ``val_cases``, ``postprocess``,
        ``validation`` (the grader's scores after post-processing) and
        ``validation_raw`` (before), each with ``report`` (classification
        report on foreground pixels) and ``confusion`` ([[tn, fp], [fn, tp]]),
        and ``seconds`` (fit, tune).
    """
    split = open_split(data, TRAIN)
    if split.y is None:
        raise LayoutError("the training split holds no masks", path=split.path, expected="train_data_y.dat or y in train.h5")
    train_rows, val_rows = split_by_patient(split.case_id, val_fraction, seed)
    x_tr, y_tr = Rows(split.x, train_rows), Rows(split.y, train_rows)
    x_val, y_val = Rows(split.x, val_rows), np.asarray(Rows(split.y, val_rows))

    segmenter = make_baseline(name, seed) if segmenter is None else segmenter
    t0 = time.perf_counter()
    segmenter.fit(x_tr, y_tr, progress=progress)
    fit_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    proba, fg = segmenter.predict_proba_and_foreground(x_val, progress=progress)
    segmenter.tune(x_val, y_val, proba=proba, foreground=fg, progress=progress)
    tune_seconds = time.perf_counter() - t0

    raw = evaluate(y_val, postprocess(proba, fg, **IDENTITY), fg)
    tuned = evaluate(y_val, postprocess(proba, fg, **segmenter.postprocess_), fg)
    return {
        "estimator": segmenter,
        "name": name,
        "seed": seed,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "val_cases": [str(c) for c in split.case_id[val_rows]],
        "n_train_vectors": segmenter.n_train_vectors_,
        "postprocess": dict(segmenter.postprocess_),
        "validation": tuned,
        "validation_raw": raw,
        "seconds": {"fit": fit_seconds, "tune": tune_seconds},
    }


def train_and_save(name: str, data, out, *, val_fraction: float = 0.2, seed: int = 0, progress=no_progress,
                   force: bool = False) -> dict:
    """:func:`train_baseline`, then :func:`baselines.model_file.save_model` to ``out``; returns the result.

    ``out`` is checked before training (:func:`baselines.model_file.check_model_out`):
    an existing file that is not a model file is replaced only with ``force``.
    """
    check_model_out(out, force=force)
    result = train_baseline(name, data, val_fraction=val_fraction, seed=seed, progress=progress)
    metrics = {"validation": result["validation"]["scores"], "validation_raw": result["validation_raw"]["scores"],
               "postprocess": result["postprocess"], "val_cases": result["val_cases"]}
    result["model"] = save_model(out, result["estimator"], baseline=name, seed=seed, metrics=metrics, force=force)
    return result


def check_submission_out(out, *, force: bool = False) -> Path:
    """Refuse to write a submission at ``out`` over anything but a submission file (unless ``force``).

    Never into a competition's ``private/`` nor over a file of the contract
    (the truth ``test_data_y.dat`` is one letter from ``test_data_ypred.dat``),
    whatever ``force`` says; see :func:`data_spec.layout.check_output_file`.
    """
    from data_spec.layout import check_output_file
    from grader.readers import is_submission_file

    return check_output_file(out, what="a submission file", recognise=is_submission_file, force=force)


def predict_submission(model, data, out, *, split: str = TEST, progress=no_progress, force: bool = False) -> dict:
    """Predict a split with a model file and write a submission the grader's validator accepts.

    Parameters
    ----------
    model : path-like
        A model file of :func:`train_and_save`.
    data : path-like
        A competition directory (either layout) or a test split file.
    out : path-like
        The submission: the course's raw ``.dat`` unless the suffix is ``.npy``
        or ``.h5`` (:func:`data_spec.submission.write_submission`).
    split : {"test", "train"}
    force : bool
        Replace an existing file at ``out`` that is not a submission.

    Returns
    -------
    dict
        ``out``, ``format``, ``n_slices``, ``tumour_pixels``, ``seconds``, ``baseline``.
    """
    from data_spec.submission import write_submission
    from grader.validate import validate_submission

    check_submission_out(out, force=force)
    payload = load_model(model)
    segmenter = payload["estimator"]
    data_split = open_split(data, split)
    t0 = time.perf_counter()
    y_pred = segmenter.predict(data_split.x, progress=progress)
    seconds = time.perf_counter() - t0
    check_submission_out(out, force=force)  # again: it may have appeared while predicting
    path = write_submission(out, y_pred, case_id=data_split.case_id)
    check = validate_submission(path, n_slices=len(data_split), case_ids=data_split.case_id).raise_if_invalid()
    return {
        "out": str(Path(path)),
        "format": check.format,
        "n_slices": len(data_split),
        "tumour_pixels": int(y_pred.sum()),
        "seconds": seconds,
        "baseline": payload["baseline"],
    }
