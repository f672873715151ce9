"""The named errors of a submission: one class per code, each saying what, where, what was expected, and a hint.

Codes raised or collected by the grader (``data_spec.errors`` provides
``missing_file``, ``wrong_size`` and ``corrupt_file``):

=================  =============================================================
``missing_file``   no file at the given path
``unsafe_file``    refused for safety: a symlink, device, FIFO, directory, the
                   truth file itself, an HDF5 external link, external storage,
                   virtual dataset or unknown compression filter
``too_large``      larger than the size cap (checked before opening)
``unknown_format`` a container the grader does not read (zip, pickle, gzip...)
``corrupt_file``   a .npy or HDF5 file that cannot be parsed
``wrong_size``     raw bytes that are not N x 240 x 240, or a .npy truncated
                   or with trailing bytes
``missing_dataset`` an HDF5 file without a ``y_pred`` dataset
``wrong_shape``    not (N, 240, 240)
``bad_dtype``      not bool, integer or float (or floats that are not all 0/1)
``bad_values``     values other than 0 and 1
``nan``            NaN values
``id_mismatch``    an HDF5 ``case_id`` that differs from the test ids
=================  =============================================================
"""
from __future__ import annotations

from data_spec.errors import (  # noqa: F401  (BadTruthError, NoPhaseFlagsError: re-exported, they live with the truth)
    ArrayContractError,
    BadTruthError,
    CorruptFileError,
    FileSizeError,
    KitError,
    LayoutError,
    NoPhaseFlagsError,
)


class UnsafeFileError(KitError, PermissionError):
    """A file refused before it is read: it could hang, exhaust or trick the grader."""

    code = "unsafe_file"


class TooLargeError(FileSizeError):
    """A file larger than the size cap (checked with ``os.lstat`` before opening)."""

    code = "too_large"


class UnknownFormatError(CorruptFileError):
    """A container the grader does not read (recognised by its magic bytes)."""

    code = "unknown_format"


class MissingDatasetError(LayoutError):
    """An HDF5 submission without the ``y_pred`` dataset."""

    code = "missing_dataset"


class IdMismatchError(LayoutError):
    """Case ids in a submission that differ from the test ids, in value or order."""

    code = "id_mismatch"


class WrongShapeError(ArrayContractError):
    """A prediction array that is not (N, 240, 240)."""

    code = "wrong_shape"


class BadDtypeError(ArrayContractError):
    """A dtype that cannot hold a 0/1 mask (objects, strings, complex...), or floats that are not all 0/1."""

    code = "bad_dtype"


class BadValuesError(ArrayContractError):
    """Values other than 0 and 1."""

    code = "bad_values"


class NanError(ArrayContractError):
    """NaN values in a float array."""

    code = "nan"


class InvalidSubmissionError(KitError, ValueError):
    """A submission that failed validation; ``errors`` holds every problem found.

    Raised by the library functions that need a valid submission to go on
    (:func:`grader.score` on arrays); :func:`grader.grade.grade` and
    :func:`grader.scoring.evaluate` report the same errors in their result instead.
    """

    code = "invalid_submission"

    def __init__(self, errors, *, path=None):
        self.errors = list(errors)
        codes = ", ".join(sorted({e.code for e in self.errors}))
        super().__init__(
            f"invalid submission ({len(self.errors)} problem{'s' * (len(self.errors) != 1)}: {codes})",
            path=path,
            hint="run 'brats-kit validate SUBMISSION --data DIR' to see each problem",
        )

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["errors"] = [e.to_dict() for e in self.errors]
        return out


class UnreadableError(KitError):
    """A file on which the validator itself failed (a hostile file, a dead worker): refused, never a crash."""

    code = "unreadable"


class ScoringTimeout(KitError):
    """A file that took longer than the time limit to read or score: stopped, refused."""

    code = "timeout"


class RecordedError(KitError):
    """An error read back from a record (a cache, a worker): it prints and serialises exactly as recorded."""

    def __init__(self, d: dict):
        self._dict = dict(d)
        super().__init__(d["message"], code=d["code"])
        for key in ("where", "expected", "hint"):
            setattr(self, key, d.get(key))

    def __str__(self) -> str:
        return self._dict["message"]

    def to_dict(self) -> dict:
        return dict(self._dict)


#: Every code a submission can fail with, in the order they are usually met.
SUBMISSION_CODES = (
    "missing_file",
    "unsafe_file",
    "too_large",
    "unknown_format",
    "corrupt_file",
    "wrong_size",
    "missing_dataset",
    "wrong_shape",
    "bad_dtype",
    "bad_values",
    "nan",
    "id_mismatch",
)


class CodePackageError(KitError, ValueError):
    """A code submission (folder or .zip) refused before it runs: a hostile path, a link, too big, no submission.py."""

    code = "bad_package"


class SandboxUnavailableError(KitError, RuntimeError):
    """No sandbox can be made on this machine (no ``bwrap``, or namespaces forbidden): student code never runs."""

    code = "no_sandbox"


class CodeUserError(SandboxUnavailableError):
    """The unprivileged user jobs run as cannot reach what the sandbox binds (e.g. a Python under ``/root``)."""

    code = "code_user_cannot_read"
