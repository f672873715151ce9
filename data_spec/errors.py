"""Named errors for bad input: what is wrong, where, what was expected, and a hint."""
from __future__ import annotations

import os
from typing import Optional


class KitError(Exception):
    """Base of every error the kit raises for bad input (CLI exit code 1).

    Parameters
    ----------
    message : str
        What is wrong, in one sentence.
    code : str, optional
        Stable machine-readable name (``wrong_size``, ``missing_file``...).
    path : str or os.PathLike, optional
        The file concerned.
    where : str, optional
        Position inside it (``slice 3, row 10, column 200``, ``dataset 'x'``...).
    expected : str, optional
        What the kit expected to find.
    hint : str, optional
        The likely fix, when the mistake is a common one.
    """

    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        path=None,
        where: Optional[str] = None,
        expected: Optional[str] = None,
        hint: Optional[str] = None,
    ):
        self.message = message
        if code is not None:
            self.code = code
        self.path = os.fspath(path) if path is not None else None
        self.where = where
        self.expected = expected
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.where:
            text += f" (at {self.where})"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        """JSON-ready form: ``code``, ``message`` and the optional fields that are set."""
        out = {"code": self.code, "message": str(self)}
        for key in ("path", "where", "expected", "hint"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class MissingFileError(KitError, FileNotFoundError):
    """A file the layout needs is not there."""

    code = "missing_file"


class FileSizeError(KitError, ValueError):
    """A raw memmap whose size is not a whole number of slices."""

    code = "wrong_size"


class CorruptFileError(KitError, ValueError):
    """A file that cannot be parsed, or whose checksum does not match."""

    code = "corrupt_file"


class LayoutError(KitError, ValueError):
    """A directory or file that is in neither data layout, or an inconsistent one."""

    code = "unknown_layout"


class ArrayContractError(KitError, ValueError):
    """An in-memory array of the wrong shape, dtype or values."""

    code = "bad_array"


class OverwriteError(KitError):
    """Writing would replace a file the command did not create for the same purpose, or touch ``private/``."""

    code = "would_overwrite"


class BadArgumentError(KitError, ValueError):
    """A function or command argument out of its range or not among its choices.

    The same bad argument gives this error, and exit code 1, in every command.
    """

    code = "bad_argument"


class BadTruthError(CorruptFileError):
    """A truth file whose masks are not 0/1 (the instructor's file, not the student's)."""

    code = "bad_truth"


class NoPhaseFlagsError(LayoutError):
    """``--public-only`` on a truth file that does not say which cases are public."""

    code = "no_phase_flags"


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`BadArgumentError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise BadArgumentError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}",
                               expected=" or ".join(map(str, choices)))


def check_range(name: str, value, low=None, high=None) -> None:
    """Raise :class:`BadArgumentError` unless ``low <= value <= high`` (either bound may be None)."""
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f"at least {low}" if low is not None else f"at most {high}")
        raise BadArgumentError(f"{name} must be {bounds}, got {value!r}", expected=bounds)
