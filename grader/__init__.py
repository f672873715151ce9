"""The grader: safe validation of a submission and exact scores from per-slice counts.

Students and the instructor run the same code: ``check_submission`` (the
student's check against the public test inputs), ``grade`` (the instructor's,
against the hidden truth), and the pure metrics on arrays.
"""
from .errors import (
    BadDtypeError,
    BadTruthError,
    BadValuesError,
    IdMismatchError,
    InvalidSubmissionError,
    MissingDatasetError,
    NanError,
    NoPhaseFlagsError,
    SUBMISSION_CODES,
    TooLargeError,
    UnknownFormatError,
    UnsafeFileError,
    WrongShapeError,
)
from data_spec.truth import Truth, load_truth

from .counts import Counts, count, phase_mask
from .grade import grade
from .scoring import Verdict, evaluate
from .metrics import (
    HD95,
    SCORE_TYPES,
    DiceTumourSlices,
    EmptySlicesCorrect,
    MeanDice,
    PixelF1,
    Precision,
    Recall,
    ScoreType,
    confusion_counts,
    dice_per_slice,
    hd95_per_slice,
    score,
    scores_from_counts,
)
from .validate import Validation, check_submission, validate_array, validate_submission

__all__ = [
    "score", "confusion_counts", "scores_from_counts", "dice_per_slice", "hd95_per_slice",
    "validate_submission", "validate_array", "check_submission", "Validation",
    "grade", "load_truth", "Counts", "Truth", "count", "phase_mask", "evaluate", "Verdict",
    "ScoreType", "PixelF1", "MeanDice", "Precision", "Recall", "DiceTumourSlices", "EmptySlicesCorrect", "HD95",
    "SCORE_TYPES", "SUBMISSION_CODES",
    "BadDtypeError", "BadTruthError", "BadValuesError", "IdMismatchError", "InvalidSubmissionError",
    "MissingDatasetError", "NanError", "NoPhaseFlagsError", "TooLargeError", "UnknownFormatError",
    "UnsafeFileError", "WrongShapeError",
]
