"""Per-slice counts of one valid submission: the one thing every score, report and cache derives from.

``grade``, the per-slice report, the leaderboard's score cache and the
submission server all start from a :class:`Counts`, produced by
:func:`count`; no other code counts true and false positives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_spec.constants import PRIVATE_DIR, TRUTH_H5
from data_spec.errors import LayoutError, NoPhaseFlagsError, check_choice
from data_spec.truth import Truth

from .metrics import confusion_counts, dice_per_slice, scores_from_counts

#: The phases a set of cases can be selected by.
PHASES = ("all", "public", "private")


def phase_mask(truth_or_public, phase: str, *, need_flags: bool = False) -> np.ndarray:
    """The cases of ``phase`` ("all", "public" or "private") as a bool mask.

    Parameters
    ----------
    truth_or_public : Truth or ndarray of bool
        The truth (its ``public`` flags) or the flags themselves.
    phase : {"all", "public", "private"}
    need_flags : bool
        Refuse flags the truth file does not hold itself (derived ones), with
        :class:`~data_spec.errors.NoPhaseFlagsError`: the instructor's
        ``--public-only`` must mean the phases the students were told.

    Raises
    ------
    BadArgumentError
        An unknown phase.
    NoPhaseFlagsError
        ``need_flags`` and a truth without flags of its own.
    LayoutError
        No case in that phase (scores on zero cases would be a perfect 1.0).
    """
    check_choice("phase", phase, PHASES)
    public = truth_or_public.public if isinstance(truth_or_public, Truth) else np.asarray(truth_or_public, bool)
    if phase == "all":
        return np.ones(len(public), dtype=bool)
    if need_flags and isinstance(truth_or_public, Truth) and not truth_or_public.has_flags:
        raise NoPhaseFlagsError(
            "the truth file has no phase flags: it does not say which cases are public",
            expected=f"the HDF5 truth file ({PRIVATE_DIR}/{TRUTH_H5}) with its 'public' dataset",
            hint="a course test_data_y.dat has no flags; grade without --public-only, or use the HDF5 truth",
        )
    keep = public if phase == "public" else ~public
    if not keep.any():
        raise LayoutError(f"the truth marks no test case {phase}", expected=f"at least one {phase} case",
                          hint="grade without --public-only" if phase == "public" else None)
    return keep


@dataclass(frozen=True, eq=False)
class Counts:
    """Per-slice true positives, false positives and false negatives, with the truth's ids and flags.

    Attributes
    ----------
    tp, fp, fn : ndarray of int64 (N,)
    case_id : ndarray of str (N,)
    public : ndarray of bool (N,)
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    case_id: np.ndarray
    public: np.ndarray

    def __len__(self) -> int:
        return len(self.tp)

    def select(self, keep) -> "Counts":
        """The counts of the cases where ``keep`` (a bool mask or an index) holds."""
        return Counts(self.tp[keep], self.fp[keep], self.fn[keep], self.case_id[keep], self.public[keep])

    def phase(self, phase: str) -> "Counts":
        """The counts of one phase ("all", "public" or "private")."""
        return self if phase == "all" else self.select(phase_mask(self.public, phase))

    def scores(self, phase: str = "all") -> dict:
        """:func:`~grader.metrics.scores_from_counts` on the cases of ``phase``."""
        c = self.phase(phase)
        return scores_from_counts(c.tp, c.fp, c.fn)

    def dice(self) -> np.ndarray:
        """Per-slice Dice."""
        return dice_per_slice(self.tp, self.fp, self.fn)

    def to_record(self) -> dict:
        """``tp``, ``fp``, ``fn`` as lists of ints: what a cache stores (ids and flags belong to the truth)."""
        return {k: np.asarray(getattr(self, k), dtype=np.int64).tolist() for k in ("tp", "fp", "fn")}

    @classmethod
    def from_record(cls, record: dict, truth: Truth) -> "Counts":
        """The inverse of :meth:`to_record`, given the truth the counts were made against."""
        tp, fp, fn = (np.asarray(record[k], dtype=np.int64) for k in ("tp", "fp", "fn"))
        return cls(tp, fp, fn, truth.case_id, truth.public)


def count(truth: Truth, y_pred) -> Counts:
    """Count a valid prediction against the truth, slice by slice.

    Parameters
    ----------
    truth : Truth
    y_pred : ndarray (N, 240, 240)
        A validated prediction (any 0/1 integer or bool dtype).

    Returns
    -------
    Counts
    """
    tp, fp, fn = confusion_counts(truth.mask, y_pred)
    return Counts(tp, fp, fn, truth.case_id, truth.public)
