"""Model files: a joblib dump of the fitted segmenter with what is needed to trust it again.

The file holds a dict: ``format``, ``format_version``, ``kit_version``,
``spec_version``, ``sklearn_version``, ``baseline`` (name), ``seed``, ``metrics``
(validation scores at training time) and ``estimator``. :func:`load_model`
refuses, with a named error, a missing file, a file that is not a brats-kit
model (or is damaged), and a model from an incompatible version: another data
contract, another kit release or another scikit-learn (pickled estimators are
not portable across scikit-learn versions).

Loading unpickles: only load model files you made or trust.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from plumbing import __version__ as KIT_VERSION
from plumbing.atomic import atomic_path
from data_spec import SPEC_VERSION, CorruptFileError, KitError, MissingFileError

MODEL_FORMAT = "brats-kit-model"
MODEL_FORMAT_VERSION = 1


class NotAModelError(CorruptFileError):
    """A file that is not a brats-kit model file, or a damaged one."""

    code = "not_a_model"


class IncompatibleModelError(KitError, ValueError):
    """A model file written by an incompatible kit, data contract or scikit-learn."""

    code = "incompatible_model"


def _release(version: str) -> str:
    """``major.minor`` of a version string: the part that must match."""
    return ".".join(str(version).split("+")[0].split(".")[:2])


def save_model(path, estimator, *, baseline: str, seed: int = 0, metrics: dict | None = None) -> Path:
    """Atomically write a fitted segmenter as a model file.

    Parameters
    ----------
    path : path-like
    estimator : fitted PixelSegmenter (or any fitted estimator)
    baseline : str
        Its name (``mlp-window3``...), or a free label for a custom model.
    seed : int
    metrics : dict, optional
        Validation scores to keep with it (shown when it is loaded).

    Returns
    -------
    Path
    """
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "kit_version": KIT_VERSION,
        "spec_version": SPEC_VERSION,
        "sklearn_version": sklearn.__version__,
        "baseline": baseline,
        "seed": seed,
        "metrics": dict(metrics or {}),
        "estimator": estimator,
    }
    with atomic_path(path) as tmp:
        joblib.dump(payload, tmp, compress=3)
    return Path(path)


def load_model(path) -> dict:
    """Read a model file written by :func:`save_model`, checking that it can be used here.

    Returns
    -------
    dict
        The saved payload; ``payload["estimator"]`` is the fitted segmenter.

    Raises
    ------
    MissingFileError
        No such file.
    NotAModelError
        Not a joblib file, or not a brats-kit model, or damaged.
    IncompatibleModelError
        Written by another model format, data contract, kit release or scikit-learn.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            "model file not found", path=path, hint="train one with 'brats-kit baseline train NAME --out MODEL'"
        )
    with warnings.catch_warnings():
        # scikit-learn warns when unpickling another version's estimator: that is our error below.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        try:
            payload = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - anything unpicklable is not a model file
            raise NotAModelError(
                f"cannot be read as a model file ({type(exc).__name__})",
                path=path,
                expected="a file written by 'brats-kit baseline train'",
            ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT or "estimator" not in payload:
        raise NotAModelError(
            "not a brats-kit model file",
            path=path,
            expected=f"a joblib dict with format {MODEL_FORMAT!r}",
            hint="a submission or a data file is not a model; pass the file 'baseline train --out' wrote",
        )
    checks = [
        ("model format", payload.get("format_version"), MODEL_FORMAT_VERSION, lambda v: v),
        ("data contract", payload.get("spec_version"), SPEC_VERSION, lambda v: v),
        ("brats-kit release", payload.get("kit_version"), KIT_VERSION, _release),
        ("scikit-learn", payload.get("sklearn_version"), sklearn.__version__, lambda v: v),
    ]
    for what, theirs, ours, key in checks:
        if theirs is None or key(theirs) != key(ours):
            raise IncompatibleModelError(
                f"written with {what} {theirs}, this is {ours}",
                path=path,
                expected=f"a model from {what} {ours}",
                hint="retrain it here with 'brats-kit baseline train'",
            )
    return payload
