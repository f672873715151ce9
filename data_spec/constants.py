"""The data contract: every shape, dtype, name and convention, defined once.

Everything else in the kit imports these; nothing restates them.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "SPEC_VERSION", "HEIGHT", "WIDTH", "SLICE_SHAPE", "MODALITIES", "N_MODALITIES", "X_DTYPE", "Y_DTYPE",
    "X_ITEM_SHAPE", "Y_ITEM_SHAPE", "X_ITEM_BYTES", "Y_ITEM_BYTES", "TRAIN", "TEST", "SPLITS",
    "COURSE_X", "COURSE_Y", "SUBMISSION_FILE", "H5_FILES", "TRUTH_H5", "PRIVATE_DIR", "MANIFEST_FILE",
    "HIDDEN", "HIDDEN_H5",
    "H5_X", "H5_Y", "H5_CASE_ID", "H5_PUBLIC", "H5_Y_PRED", "CASE_ID_DTYPE", "PUBLIC_FRACTION",
    "NORMALISATION", "F1_ALL_EMPTY", "DICE_BOTH_EMPTY", "DICE_ONE_EMPTY", "HD_PERCENTILE",
    "HD95_BOTH_EMPTY", "HD95_ONE_EMPTY", "NSD_TOLERANCE", "NSD_BOTH_EMPTY", "NSD_ONE_EMPTY",
    "LESION_DILATION", "LESION_SIZE_THRESHOLD", "case_ids", "public_mask", "hidden_public_mask",
]

#: Version of the on-disk contract, written into every HDF5 file.
SPEC_VERSION = "1.0"

HEIGHT = 240
WIDTH = 240
#: One axial slice, rows then columns.
SLICE_SHAPE = (HEIGHT, WIDTH)
#: Channel order of the last axis of every input array.
MODALITIES = ("t1", "t1ce", "t2", "flair")
N_MODALITIES = len(MODALITIES)

#: Inputs: little-endian float32, (N, 240, 240, 4), channels last (the course's memmaps).
X_DTYPE = np.dtype("<f4")
#: Masks and submissions: uint8 holding 0 or 1, (N, 240, 240).
Y_DTYPE = np.dtype("u1")
X_ITEM_SHAPE = SLICE_SHAPE + (N_MODALITIES,)
Y_ITEM_SHAPE = SLICE_SHAPE
X_ITEM_BYTES = HEIGHT * WIDTH * N_MODALITIES * X_DTYPE.itemsize
Y_ITEM_BYTES = HEIGHT * WIDTH * Y_DTYPE.itemsize

TRAIN = "train"
TEST = "test"
SPLITS = (TRAIN, TEST)
#: The hidden test slices of the code track: inputs and truth, under PRIVATE_DIR only (never a split a student opens).
HIDDEN = "hidden"

# Course layout: raw C-order memmaps without a header, N inferred from the size.
COURSE_X = {TRAIN: "train_data_x.dat", TEST: "test_data_x.dat"}
COURSE_Y = {TRAIN: "train_data_y.dat", TEST: "test_data_y.dat"}
#: What a student hands in, in the course layout.
SUBMISSION_FILE = "test_data_ypred.dat"

# Canonical layout: one HDF5 file per split.
H5_FILES = {TRAIN: "train.h5", TEST: "test.h5"}
#: The test truth, with the public/private flag of each case; lives under PRIVATE_DIR.
TRUTH_H5 = "test_truth.h5"
#: Everything a student must never receive goes below this sub-directory.
PRIVATE_DIR = "private"
#: Provenance of a built competition (source cases, parameters, checksums); private.
MANIFEST_FILE = "manifest.json"
#: The hidden test slices (inputs ``x``, masks ``y``, ``case_id``, ``public``); lives under PRIVATE_DIR.
HIDDEN_H5 = "hidden_test.h5"

# HDF5 dataset names.
H5_X = "x"
H5_Y = "y"
H5_CASE_ID = "case_id"
H5_PUBLIC = "public"
#: Dataset name of a submission stored as HDF5.
H5_Y_PRED = "y_pred"
#: Case ids are short ASCII strings stored fixed-length.
CASE_ID_DTYPE = np.dtype("S32")

#: Share of test cases on the public leaderboard (the rest are private until the reveal).
PUBLIC_FRACTION = 1 / 3

NORMALISATION = (
    "z-score per patient and modality over the brain voxels of the 3D volume; "
    "background pixels set to the slice's minimum of that modality"
)

# Metric conventions (implemented by grader.metrics, stated in SPEC.md).
#: Pixel F1 when truth and prediction are empty on every test pixel.
F1_ALL_EMPTY = 1.0
#: Per-slice Dice when truth and prediction are both empty.
DICE_BOTH_EMPTY = 1.0
#: Per-slice Dice when exactly one of truth and prediction is empty.
DICE_ONE_EMPTY = 0.0
HD_PERCENTILE = 95.0
HD95_BOTH_EMPTY = 0.0
#: HD95 when exactly one mask is empty: the image diagonal, in pixels (339.41).
HD95_ONE_EMPTY = math.hypot(HEIGHT, WIDTH)
#: Normalised surface distance: default tolerance tau, in pixels (a surface pixel within tau counts).
NSD_TOLERANCE = 1.0
NSD_BOTH_EMPTY = 1.0
NSD_ONE_EMPTY = 0.0
#: Lesion-wise scores (BraTS 2023, in 2D): iterations of the cross dilation that merges truth lesions
#: and matches predicted components (BraTS-GLI: 3 iterations of a 3-D 18-neighbourhood).
LESION_DILATION = 3
#: Truth lesions of at most this many pixels are left out of the lesion-wise scores (BraTS-GLI: 50 voxels;
#: 16 pixels is the central cross-section of a 50-voxel ball, pi * (3 * 50 / (4 pi)) ** (2/3) = 16.4).
LESION_SIZE_THRESHOLD = 16


def case_ids(split: str, n: int) -> np.ndarray:
    """Positional case ids, ``"<split>-0000"``...; the same in both layouts.

    Ids never name the source patient (a public BraTS case would reveal its truth);
    the mapping to source cases lives in the private manifest.
    """
    if split not in SPLITS + (HIDDEN,):
        from .errors import BadArgumentError  # constants is imported by errors' users; keep it a leaf

        raise BadArgumentError(f"split must be one of {SPLITS + (HIDDEN,)}, got {split!r}",
                               expected=" or ".join(SPLITS + (HIDDEN,)))
    return np.array([f"{split}-{i:04d}" for i in range(n)])


def public_mask(n: int, seed: int) -> np.ndarray:
    """Seeded public/private split of ``n`` test cases: about a third public.

    At least one case is public and, from two cases on, at least one private.
    """
    if n <= 0:
        return np.zeros(0, dtype=bool)
    n_public = min(max(1, round(n * PUBLIC_FRACTION)), max(1, n - 1))
    order = np.random.default_rng([seed, 0x9B11C]).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[:n_public]] = True
    return mask


def hidden_public_mask(n: int, seed: int) -> np.ndarray:
    """The public/private split of the ``n`` hidden test slices: :func:`public_mask`'s rule on its own stream.

    The same build seed gives the test split and the hidden slices independent splits.

    Examples
    --------
    >>> mask = hidden_public_mask(29, 0)
    >>> int(mask.sum()), bool((mask != public_mask(29, 0)).any())
    (10, True)
    """
    return public_mask(n, (int(seed) + 0x41DDE) % 2**128)
