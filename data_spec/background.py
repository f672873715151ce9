"""The course's background rule, part of the contract: background is each modality's slice minimum.

Two named rules decide which pixels are foreground:

- ``"all"`` (the default, the course's own): every modality is above its
  slice minimum. The course notebook's ``slices_to_masks`` is
  ``np.all(x > x.min(axis=(1, 2)), axis=-1)`` and the clustering lesson's mask
  is ``(t1 > 0) & (t1c > 0) & (t2 > 0) & (flair > 0)``.
- ``"any"``: some modality is above its slice minimum (a pixel is dropped only
  when it sits at the minimum in all four). It keeps the few brain pixels that
  touch the minimum of one modality; choose it explicitly.
"""
from __future__ import annotations

import numpy as np

from .errors import KitError

#: The course's rule first: it is the default everywhere.
FOREGROUND_RULES = ("all", "any")
DEFAULT_FOREGROUND_RULE = "all"


class UnknownForegroundRuleError(KitError, ValueError):
    """A foreground rule that is not one of :data:`FOREGROUND_RULES`."""

    code = "unknown_foreground_rule"


def check_rule(rule: str) -> str:
    """Return ``rule`` if it is a known foreground rule, else raise :class:`UnknownForegroundRuleError`."""
    if rule not in FOREGROUND_RULES:
        raise UnknownForegroundRuleError(
            f"unknown foreground rule {rule!r}",
            expected=" or ".join(repr(r) for r in FOREGROUND_RULES),
            hint="'all' is the course's rule (every modality above its slice minimum)",
        )
    return rule


def foreground_mask(x, rule: str = DEFAULT_FOREGROUND_RULE) -> np.ndarray:
    """Pixels that are not background.

    Background is, per slice and per modality, the slice's minimum (the course
    data set background pixels to exactly that value).

    Parameters
    ----------
    x : array-like (H, W, C) or (N, H, W, C)
        Modalities last. A stack is processed one slice at a time, so a
        memory-mapped or lazy split is never loaded whole.
    rule : {"all", "any"}, default "all"
        ``"all"``: foreground when every modality is above its slice minimum
        (the course's definition). ``"any"``: when at least one is.

    Returns
    -------
    ndarray of bool, (H, W) or (N, H, W)
        A constant slice (all pixels equal) has no foreground.
    """
    check_rule(rule)
    shape = tuple(x.shape)
    if len(shape) == 3:
        xi = np.asarray(x)
        above = xi > xi.min(axis=(0, 1))
        return above.all(axis=-1) if rule == "all" else above.any(axis=-1)
    out = np.empty(shape[:3], dtype=bool)
    for i in range(shape[0]):
        out[i] = foreground_mask(x[i], rule)
    return out
