"""The progress protocol: library functions take a ``progress`` callable; the CLI passes a bar."""
from __future__ import annotations

from typing import Iterable, Optional


def no_progress(iterable: Iterable, label: str = "", length: Optional[int] = None) -> Iterable:
    """The library default: iterate silently.

    Any callable with this signature may be passed as ``progress=``; it must
    yield the items of ``iterable`` unchanged.
    """
    return iterable
