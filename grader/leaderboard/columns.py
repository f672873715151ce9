"""The board's extra score columns (``brats-kit leaderboard --metrics lesion_dice,nsd,...``).

Each extra column is one score type (:mod:`grader.score_types`) of a row's selected
submission on the board's phase cases only (the public ones before the reveal).
Count-based scores come from the stored counts; mask scores (HD95, lesion-wise
Dice and HD95, NSD) cannot, so they are computed when the file is scored and
stored per case with its counts (:func:`~.scoring.score_submissions`): a row is
then the score type's own aggregate (:meth:`~grader.score_types.MaskScore.aggregate`)
of its phase cases. A submission scored without them (the server stores counts
only) shows an empty cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.score_types import SCORE_TYPES

#: Always on the board: never an extra column.
SHOWN = ("dice", "f1")


@dataclass(frozen=True)
class Column:
    """One extra column: its score's ``name`` (key and CSV header suffix), ``title`` and ``precision``."""

    name: str
    title: str
    precision: int
    needs_masks: bool


def extra_columns(metrics) -> tuple:
    """The extra columns asked for by ``metrics`` (names or ``"a,b"``), in display order.

    Raises :class:`~data_spec.errors.BadArgumentError` for an unknown name.

    Examples
    --------
    >>> [c.name for c in extra_columns("nsd,dice,lesion_dice")]
    ['lesion_dice', 'nsd']
    >>> extra_columns(None)
    ()
    """
    if not metrics:
        return ()
    from grader.metrics import metric_names

    names = metric_names(metrics)
    return tuple(Column(st.name, st.title, st.precision, st.needs_masks)
                 for st in SCORE_TYPES if st.name in names and st.name not in SHOWN)


def mask_names(columns) -> tuple:
    """The names of the columns that must be computed from the masks at scoring time."""
    return tuple(c.name for c in columns if c.needs_masks)


def fill(rows, columns, mask) -> None:
    """Set ``row[column.name]`` of every row: its submission's score on the cases where ``mask`` holds."""
    if not columns:
        return
    from grader.metrics import scores_from_counts

    types = {st.name: st for st in SCORE_TYPES}
    for r in rows:
        sub = r["sub"]
        counted = None
        for col in columns:
            if col.needs_masks:
                values = sub.mask_scores.get(col.name)
                r[col.name] = None if values is None else float(types[col.name].aggregate(np.asarray(values)[mask]))
            else:
                if counted is None:
                    c = sub.counts
                    counted = scores_from_counts(c.tp[mask], c.fp[mask], c.fn[mask])
                r[col.name] = float(counted[col.name])
