"""Printing names that come from outside (file, folder and team names, case ids) safely.

A file name may hold a carriage return, ANSI escape sequences or Unicode
bidirectional overrides that redraw a terminal line ("INVALID: x" shown as
"valid: test_data_ypred.dat"), or undecodable bytes. :func:`safe_name` makes
every such character visible as an escape, so what the terminal shows is what
the name holds.
"""
from __future__ import annotations

import os
import unicodedata

# Categories that change how a line is drawn or are invisible: controls (C0, C1: CR, ESC...),
# format characters (bidi overrides and isolates, zero-width joiners, BOM), line and paragraph
# separators, surrogates (undecodable bytes of a file name) and private or unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by os.fsdecode's surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_name(name) -> str:
    """``name`` (str, bytes or path) with every control, format or invisible character escaped.

    Printable text, accents and other scripts are kept as they are; a
    backslash is doubled so that an escape cannot be faked.

    >>> safe_name("a\\rvalid: b\\x1b[2K")
    'a\\\\rvalid: b\\\\x1b[2K'
    """
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return "".join(
        _escape(ch) if ch in _SHORT or unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )


def safe_text(text) -> str:
    """A one-line message that quotes names (a KitError's text): every control character escaped.

    Like :func:`safe_name`, line breaks included (the kit's messages are one
    line; a break in one comes from a name), but backslashes are kept as they are.
    """
    return "".join(
        _escape(ch) if ch != "\\" and (ch in _SHORT or unicodedata.category(ch) in _UNSAFE_CATEGORIES) else ch
        for ch in str(text)
    )
