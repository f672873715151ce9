"""Checks of a prediction array's shape, dtype and values: every problem, with where and a hint.

Each check returns a list of errors rather than raising, so that a student
sees every problem of a submission at once. The same checks run on a file's
declared shape and dtype (before any data is read) and on the data itself.
"""
from __future__ import annotations

import math

import numpy as np

from data_spec.constants import SLICE_SHAPE, Y_DTYPE

from .errors import BadDtypeError, BadValuesError, NanError, WrongShapeError

#: Numpy dtype kinds that can hold a 0/1 mask: bool, signed and unsigned integers, floats.
MASK_KINDS = "biuf"
#: The widest item read (float128 / long double).
MAX_ITEMSIZE = 16
_SHOW = 5  # values / positions quoted in a message


def expected_shape(n_slices: int) -> tuple:
    return (int(n_slices),) + SLICE_SHAPE


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def shape_errors(shape, n_slices: int, where: str = "the array") -> list:
    """A ``wrong_shape`` error (with the likely fix) unless ``shape`` is (n_slices, 240, 240)."""
    want = expected_shape(n_slices)
    if shape is None:
        shape = ()
    shape = tuple(int(s) for s in shape)
    if shape == want:
        return []
    h, w = SLICE_SHAPE
    n = want[0]
    size = math.prod(shape)
    hint = None
    if len(shape) == 3 and shape[1:] == SLICE_SHAPE:
        hint = f"the test has {n} slices: predict every slice of the test inputs, in their order"
    elif shape == (h, w, n):
        hint = "slices must be the first axis: np.moveaxis(y_pred, -1, 0)"
    elif shape == (n, h, w, 1):
        hint = "drop the channel axis: y_pred[..., 0]"
    elif len(shape) == 4 and shape[:3] == want and shape[3] > 1:
        hint = "one value per pixel: take the class with y_pred.argmax(axis=-1), or threshold the tumour channel"
    elif shape in ((n * h * w,), (n, h * w), (n * h, w)):
        hint = f"reshape the predictions: y_pred.reshape({n}, {h}, {w})"
    elif len(shape) == 1 and size % (h * w) == 0:
        hint = f"a flat vector of {size // (h * w)} slices; reshape to (N, {h}, {w}) with the test's N = {n}"
    elif len(shape) == 2 and shape == SLICE_SHAPE:
        hint = f"one slice only: stack all {n} test slices into (N, {h}, {w})"
    elif len(shape) == 3 and sorted(shape) == sorted(want):
        hint = f"axes in the wrong order: the layout is (slice, row, column) = {_fmt_shape(want)}"
    return [
        WrongShapeError(
            f"predictions have shape {_fmt_shape(shape)}",
            where=where,
            expected=_fmt_shape(want),
            hint=hint,
        )
    ]


def dtype_errors(dtype, where: str = "the array") -> list:
    """A ``bad_dtype`` error unless ``dtype`` is bool, integer or float (plain, not structured)."""
    dtype = np.dtype(dtype)
    if dtype.kind in MASK_KINDS and dtype.names is None and dtype.subdtype is None and dtype.itemsize <= MAX_ITEMSIZE:
        return []
    if dtype.hasobject:
        message = "predictions hold Python objects (pickled data, which the grader never loads)"
        hint = "stack the slices into one numeric array first: np.stack(list_of_masks).astype(np.uint8)"
    else:
        message = f"predictions have dtype {dtype}"
        hint = {
            "c": "complex numbers: keep the real part, then threshold",
            "U": "strings: convert to numbers",
            "S": "bytes strings: convert to numbers",
            "V": "a structured or raw dtype: save a plain uint8 array",
        }.get(dtype.kind)
    expected = f"{Y_DTYPE} (or bool, any integer, or float 0.0/1.0)"
    return [BadDtypeError(message, where=where, expected=expected, hint=hint)]


def readable(shape, dtype, n_slices: int) -> bool:
    """Whether the data may be read to check its values: a mask dtype, no more elements than expected."""
    if shape is None or dtype_errors(dtype):
        return False
    return math.prod(int(s) for s in shape) <= math.prod(expected_shape(n_slices))


def _where(flat_index: int, shape) -> str:
    index = np.unravel_index(int(flat_index), shape)
    if len(shape) == 3 and tuple(shape[1:]) == SLICE_SHAPE:
        return f"slice {index[0]}, row {index[1]}, column {index[2]}"
    return "index (" + ", ".join(str(int(i)) for i in index) + ")"


def _first(mask) -> int:
    """Flat index of the first True of ``mask`` (argmax stops at the first True)."""
    return int(np.argmax(mask.reshape(-1)))


def _values_hint(bad: np.ndarray, is_float: bool) -> str | None:
    """The usual mistake behind the offending values ``bad`` (sorted, distinct, finite, none 0 or 1)."""
    vals = set(bad.tolist())
    if not vals:
        return None
    if vals <= {255}:
        return "values 0/255 (an image?): divide by 255, or use (y_pred > 0).astype(np.uint8)"
    if vals <= {-1}:
        return "labels -1/+1 (a decision function's sign?): use (y_pred > 0).astype(np.uint8)"
    if vals <= {2, 3, 4}:
        return "BraTS labels (1, 2, 4): the whole tumour is (y_pred > 0).astype(np.uint8)"
    if is_float and bad.size and bad.min() > 0 and bad.max() < 1:
        return "you saved probabilities: threshold them, e.g. (proba >= 0.5).astype(np.uint8)"
    return "a mask holds 0 (background) or 1 (tumour) only"


def value_errors(arr: np.ndarray) -> list:
    """``bad_values``, ``nan`` and (for floats that are not all 0/1) ``bad_dtype`` errors.

    ``arr`` must be a readable array (bool, integer or float). Bool arrays read
    from a file must be given as their uint8 bytes (a byte other than 0/1 is
    then a bad value). The scan is cheap when the array is valid: one pass.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        return []
    kind = arr.dtype.kind
    if kind == "u":
        if not arr.size or arr.max() <= 1:
            return []
        bad = arr > 1
        nan = None
    elif kind == "i":
        if not arr.size or (arr.min() >= 0 and arr.max() <= 1):
            return []
        bad = (arr < 0) | (arr > 1)
        nan = None
    else:
        binary = (arr == 0) | (arr == 1)
        if binary.all():
            return []
        nan = np.isnan(arr)
        bad = ~binary & ~nan
    errors = []
    is_float = kind == "f"
    n_bad = int(np.count_nonzero(bad))
    if is_float:
        errors.append(
            BadDtypeError(
                f"predictions are {arr.dtype} and not all exactly 0.0 or 1.0",
                where=_where(_first(~binary), arr.shape),
                expected=f"{Y_DTYPE} 0/1 (floats only when every value is exactly 0.0 or 1.0)",
                hint="you saved probabilities or scores: threshold them, e.g. (proba >= 0.5).astype(np.uint8)",
            )
        )
    if n_bad:
        found = np.unique(arr[bad])
        finite = found[np.isfinite(found)] if is_float else found
        shown = ", ".join(f"{v:g}" if is_float else str(v) for v in found[:_SHOW].tolist())
        more = f" and {found.size - _SHOW} more" if found.size > _SHOW else ""
        hint = _values_hint(finite, is_float)
        if is_float and found.size != finite.size:
            hint = "infinite values: " + (hint or "a mask holds 0 or 1 only")
        errors.append(
            BadValuesError(
                f"{n_bad} of {arr.size} values are neither 0 nor 1 (found {shown}{more}), the first",
                where=_where(_first(bad), arr.shape),
                expected="0 (background) or 1 (tumour)",
                hint=hint,
            )
        )
    if nan is not None:
        n_nan = int(np.count_nonzero(nan))
        if n_nan:
            errors.append(
                NanError(
                    f"{n_nan} of {arr.size} values are NaN, the first",
                    where=_where(_first(nan), arr.shape),
                    expected="0 or 1 everywhere",
                    hint="NaN usually comes from dividing by zero in the features, or an unfilled output array: "
                    "check for np.isnan before saving",
                )
            )
    return errors


def as_mask(arr: np.ndarray) -> np.ndarray:
    """A valid 0/1 array of any mask dtype as C-ordered uint8 (no copy when it already is)."""
    if arr.dtype == Y_DTYPE:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr).view(Y_DTYPE)
    return np.ascontiguousarray(arr.astype(Y_DTYPE))
