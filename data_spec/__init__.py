"""The one data contract of brats-kit: constants, both on-disk layouts, and their readers and writers.

See ``SPEC.md`` in this package for the full specification.
"""
from .constants import *  # noqa: F401,F403  (the constants are the contract)
from .background import foreground_mask
from .course import check_array, count_slices, read_course_array, write_course_array
from .errors import (
    ArrayContractError,
    BadArgumentError,
    BadTruthError,
    CorruptFileError,
    FileSizeError,
    KitError,
    LayoutError,
    MissingFileError,
    NoPhaseFlagsError,
    OverwriteError,
    check_choice,
    check_range,
)
from .hdf5 import LazyH5Array, is_hdf5, read_split_h5, sha256_array, sha256_file, write_split_h5
from .layout import (
    COURSE,
    HDF5,
    LAYOUTS,
    Split,
    detect_layout,
    find_hidden,
    find_truth,
    open_hidden,
    open_split,
    open_truth,
    write_competition,
)
from .truth import Truth, load_hidden_truth, load_truth, truth_for
