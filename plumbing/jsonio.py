"""JSON for the kit's results: paths and numpy values written as plain JSON."""
from __future__ import annotations

from pathlib import PurePath

import numpy as np


def json_default(value):
    """``default=`` for :func:`json.dumps`: numpy scalars and arrays, and paths (as strings)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
