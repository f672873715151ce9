"""The grading report: a per-slice CSV and a montage of the worst slices, so students see where they lose."""
from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

import numpy as np

from plumbing.atomic import atomic_path, write_text
from data_spec.constants import MODALITIES
from data_spec.errors import OverwriteError
from data_spec.layout import private_folder

from .metrics import dice_per_slice

_LABELS = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
CSV_NAME = "per_slice.csv"
PNG_NAME = "worst_slices.png"
#: Colours of the error map: true positive, false positive (predicted, not tumour), false negative (missed).
TP_RGB, FP_RGB, FN_RGB = (0.30, 0.75, 0.30), (0.95, 0.25, 0.20), (0.25, 0.55, 1.00)


def worst_slices(tp, fp, fn, n: int) -> np.ndarray:
    """Indices of the ``n`` worst slices: lowest Dice first, then most wrong pixels, then position."""
    dice = dice_per_slice(tp, fp, fn)
    wrong = np.asarray(fp) + np.asarray(fn)
    order = np.lexsort((np.arange(len(dice)), -wrong, dice))
    return order[:n]


def error_map(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """RGB image (H, W, 3) of a slice's errors: green TP, red FP, blue FN, black elsewhere."""
    t, p = np.asarray(t, dtype=bool), np.asarray(p, dtype=bool)
    out = np.zeros(t.shape + (3,), dtype=np.float32)
    out[t & p] = TP_RGB
    out[~t & p] = FP_RGB
    out[t & ~p] = FN_RGB
    return out


def _csv(case_id, public, tp, fp, fn, dice, hd95, extra=None) -> str:
    extra = dict(extra or {})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["case_id"] + (["public"] if public is not None else []) + ["tp", "fp", "fn", "dice", "hd95"]
    writer.writerow(head + list(extra))
    for i in range(len(tp)):
        row = [str(case_id[i])] + ([int(bool(public[i]))] if public is not None else [])
        row += [int(tp[i]), int(fp[i]), int(fn[i]), f"{dice[i]:.6f}", f"{hd95[i]:.3f}"]
        row += [f"{values[i]:.6f}" for values in extra.values()]
        writer.writerow(row)
    return buf.getvalue()


#: The montage's geometry in inches: image panel, gap between panels, a row's heading, the column titles, margin.
PANEL, GAP, ROW_HEAD, COL_HEAD, MARGIN = 1.75, 0.05, 0.24, 0.22, 0.06


def _montage_figure(rows, *, case_id, dice, tp, fp, fn, y_true, y_pred, x, index, note):
    """The worst slices, one row each; every label sits in a margin, never on an image.

    Column titles head the columns; each row's case id, Dice and counts head its row.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    titles = ([_LABELS.get(m, m) for m in MODALITIES] if x is not None else []) + ["prediction", "truth", "errors"]
    n_rows, n_cols = max(len(rows), 1), len(titles)
    fig_w = 2 * MARGIN + n_cols * PANEL + (n_cols - 1) * GAP
    width = int(14 * n_cols)
    title = textwrap.fill("Worst slices, lowest Dice first. Errors: green = true positive, red = false positive, "
                          "blue = missed tumour.", width)
    if note:
        title += "\n" + textwrap.fill(note, width)
    head = 0.3 + 0.16 * title.count("\n")  # inches above the column titles
    fig_h = head + COL_HEAD + n_rows * (ROW_HEAD + PANEL) + MARGIN
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=8, y=1 - 0.05 / fig_h, va="top")

    def left(c):
        return MARGIN + c * (PANEL + GAP)

    for c, name in enumerate(titles):
        fig.text((left(c) + PANEL / 2) / fig_w, 1 - (head + COL_HEAD / 2) / fig_h, name, fontsize=9,
                 ha="center", va="center")
    for r in range(n_rows):
        bottom = fig_h - head - COL_HEAD - (r + 1) * (ROW_HEAD + PANEL)
        axes = [fig.add_axes((left(c) / fig_w, bottom / fig_h, PANEL / fig_w, PANEL / fig_h)) for c in range(n_cols)]
        for ax in axes:
            ax.set_axis_off()
        if r >= len(rows):
            continue
        i = rows[r]
        panels = []
        if x is not None:
            xi = np.asarray(x[int(index[i])], dtype=np.float32)
            panels += [dict(X=xi[..., m], cmap="gray") for m in range(len(MODALITIES))]  # auto contrast
        panels += [dict(X=y_pred[i], cmap="gray", vmin=0, vmax=1), dict(X=y_true[i], cmap="gray", vmin=0, vmax=1),
                   dict(X=error_map(y_true[i], y_pred[i]))]
        for ax, panel in zip(axes, panels):
            ax.imshow(interpolation="nearest", **panel)
        label = str(case_id[i])
        label = label if len(label) <= 40 else label[:39] + "\u2026"
        fig.text(MARGIN / fig_w, (bottom + PANEL + ROW_HEAD / 2) / fig_h,
                 f"{label}    Dice {dice[i]:.3f}    TP {tp[i]}   FP {fp[i]}   FN {fn[i]}", fontsize=7.5,
                 va="center", ha="left", parse_math=False)
    return fig


def _montage(path: Path, rows, **panels) -> None:
    fig = _montage_figure(rows, **panels)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def write_report(
    report_dir,
    counts,
    *,
    hd95,
    y_true,
    y_pred,
    show_public: bool = True,
    x=None,
    index=None,
    note=None,
    n_worst: int = 6,
    extra=None,
) -> dict:
    """Write ``per_slice.csv`` and ``worst_slices.png`` into ``report_dir`` (each file atomically).

    Parameters
    ----------
    report_dir : path-like
        Created if needed; other files in it are left alone.
    counts : Counts
        Per-slice counts, ids and phase flags of the slices reported.
    hd95 : array (n,)
        Per-slice HD95 of the slices reported.
    y_true, y_pred : arrays (n, 240, 240)
    show_public : bool
        Write the phase flags as a 0/1 ``public`` column (when the truth holds them).
    x : array-like (N, 240, 240, 4), optional
        Test inputs for the montage; ``index`` maps the reported slices to its rows.
    note : str, optional
        Shown under the montage's title (e.g. why the inputs are missing).
    n_worst : int
        Rows of the montage.
    extra : dict, optional
        More per-slice scores (name -> array (n,), e.g. ``lesion_dice``, ``nsd``),
        written as CSV columns after ``hd95``, in the dict's order.

    Returns
    -------
    dict
        ``csv`` and ``png`` paths (str), ``inputs`` (bool: whether the montage shows them), ``note``.
    """
    report_dir = Path(report_dir)
    if private_folder(report_dir) is not None:
        raise OverwriteError("a report is never written into a competition's private/ folder", path=report_dir,
                             hint="write it beside the submission, e.g. --report report")
    report_dir.mkdir(parents=True, exist_ok=True)
    tp, fp, fn = counts.tp, counts.fp, counts.fn
    dice = counts.dice()
    public = counts.public if show_public else None
    csv_path = write_text(report_dir / CSV_NAME, _csv(counts.case_id, public, tp, fp, fn, dice, np.asarray(hd95),
                                                          extra))
    if index is None:
        index = np.arange(len(tp))
    rows = worst_slices(tp, fp, fn, n_worst)
    png_path = report_dir / PNG_NAME
    _montage(png_path, rows, case_id=counts.case_id, dice=dice, tp=tp, fp=fp, fn=fn, y_true=y_true, y_pred=y_pred,
             x=x, index=index, note=note)
    return {"csv": str(csv_path), "png": str(png_path), "inputs": x is not None, "note": note}
