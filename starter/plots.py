"""The course's figures: slices side by side, intensity histograms, 2D histograms by label.

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``show``. Where pyplot is in use (a notebook), the figure is a pyplot figure
and displays like any other; elsewhere (the CLI, scripts without pyplot) it is
a standalone figure on the Agg canvas, outside pyplot's global state.
:func:`save_figure` writes a PNG atomically, with the same bytes for the same
figure, and closes it.

>>> import tempfile
>>> import numpy as np
>>> from starter.plots import course_figure, save_figure
>>> x = np.random.default_rng(0).normal(size=(2, 240, 240, 4)).astype(np.float32)
>>> y = np.zeros((2, 240, 240), np.uint8); y[:, 100:130, 100:130] = 1
>>> fig = course_figure(x, y_true=y, cases=[0, 1])
>>> path = save_figure(fig, tempfile.mkdtemp() + "/cases.png")
>>> path.read_bytes()[1:4]
b'PNG'
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from plumbing.atomic import atomic_path
from data_spec import (
    MODALITIES,
    N_MODALITIES,
    TEST,
    TRAIN,
    X_ITEM_SHAPE,
    ArrayContractError,
    BadArgumentError,
    KitError,
    LayoutError,
    MissingFileError,
    open_split,
    truth_for,
)

from .features import foreground_mask, pixel_vectors

#: Column titles, in the order of the modalities.
MODALITY_TITLES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
HEALTHY_COLOUR = (0.12, 0.47, 0.71)
TUMOUR_COLOUR = (0.84, 0.15, 0.16)
#: Pixels sampled (seeded) for the histograms when given whole images.
MAX_PIXELS = 200_000
DPI = 100


def _figure(width: float, height: float) -> Figure:
    """A new figure: managed by pyplot when the caller uses pyplot, else a standalone Agg figure.

    In a notebook (where pyplot is imported) the figure then shows like any
    other; in the CLI and scripts that never import pyplot, nothing touches a
    GUI backend or pyplot's global list of figures.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        return pyplot.figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_cases(cases, n: int, what: str = "case") -> list:
    """Slice indices as ints, each in ``range(n)``; a KitError naming the valid range otherwise."""
    out = []
    for c in cases:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise KitError(f"{what} index must be an integer, got {c!r}", code="bad_case")
        if not 0 <= c < n:
            valid = f"0 to {n - 1}" if n else "none: the split is empty"
            raise KitError(
                f"{what} {c} does not exist: there are {n} slices",
                code="bad_case",
                expected=f"a {what} index from {valid}",
            )
        out.append(int(c))
    if not out:
        raise KitError(f"no {what} to show", code="bad_case", expected="at least one index")
    return out


def _check_images(x):
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 3 and shape == X_ITEM_SHAPE:
        return np.asarray(x)[None]
    if len(shape) != 4 or shape[1:] != X_ITEM_SHAPE:
        raise ArrayContractError(f"inputs have shape {shape}", expected=f"(N, {', '.join(map(str, X_ITEM_SHAPE))})")
    return x


def _display_range(image: np.ndarray, foreground: np.ndarray):
    """Grey levels from the 0.5th to the 99.5th percentile of the brain (robust to bright spots)."""
    values = image[foreground] if foreground.any() else image.ravel()
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def course_figure(x, y_true=None, y_pred=None, *, cases=None, case_ids=None) -> Figure:
    """The course's figure: one row per case; T1, T1ce, T2, FLAIR, prediction, truth.

    Parameters
    ----------
    x : array-like (N, 240, 240, 4)
        Inputs (memmap or lazy arrays are read only at the cases shown).
    y_true, y_pred : array-like (N, 240, 240), optional
        Truth and prediction masks; each adds a column when given.
    cases : sequence of int, optional
        Slices to show, one row each. Default: the first (up to) four.
    case_ids : sequence of str (N,), optional
        Row labels (e.g. ``split.case_id``); default ``"case <i>"``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KitError
        A case index outside ``0 .. N-1`` (the message names the valid range).
    """
    x = _check_images(x)
    n = len(x)
    cases = _check_cases(range(min(n, 4)) if cases is None else cases, n)
    masks = [(name, m) for name, m in (("prediction", y_pred), ("truth", y_true)) if m is not None]
    for name, m in masks:
        if len(m) != n:
            raise ArrayContractError(f"{name} has {len(m)} slices but the inputs have {n}")
    ncols = N_MODALITIES + len(masks)
    fig = _figure(2.1 * ncols, 2.2 * len(cases) + 0.3)
    axes = fig.subplots(len(cases), ncols, squeeze=False)
    for row, case in zip(axes, cases):
        xi = np.asarray(x[case])
        fg = foreground_mask(xi)
        for m, name in enumerate(MODALITIES):
            lo, hi = _display_range(xi[..., m], fg)
            row[m].imshow(xi[..., m], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for j, (name, mask) in enumerate(masks):
            row[N_MODALITIES + j].imshow(np.asarray(mask[case]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        label = str(case_ids[case]) if case_ids is not None else f"case {case}"
        row[0].set_ylabel(label, fontsize=9)
    titles = [MODALITY_TITLES[m] for m in MODALITIES] + [name for name, _ in masks]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def sample_pixels(x, y=None, *, max_pixels: int = MAX_PIXELS, seed: int = 0):
    """A seeded uniform sample of foreground pixels: (values (n, 4), labels (n,) or None).

    Reads one slice at a time (twice: once for the foreground, once for the
    values), so a lazy split is never loaded whole.
    """
    x = _check_images(x)
    mask = foreground_mask(x)
    counts = mask.sum(axis=(1, 2))
    total = int(counts.sum())
    # Ranks of the chosen pixels among all foreground pixels in reading order; only
    # these become (slice, row, column) rows, never one row per foreground pixel.
    if total > max_pixels:
        ranks = np.sort(np.random.default_rng(seed).choice(total, size=max_pixels, replace=False))
    else:
        ranks = np.arange(total)
    starts = np.cumsum(counts) - counts
    slices = np.searchsorted(starts + counts, ranks, side="right")
    index = np.empty((len(ranks), 3), dtype=np.int64)
    index[:, 0] = slices
    for i in np.unique(slices):
        rows = slices == i
        flat = np.flatnonzero(mask[i])[ranks[rows] - starts[i]]
        index[rows, 1], index[rows, 2] = np.unravel_index(flat, mask.shape[1:])
    values, labels, _ = pixel_vectors(x, y, index=index)
    return values, labels


def _as_pixels(x, y, max_pixels, seed):
    """Accept images (N, 240, 240, 4) with masks, or pixel vectors (n, 4) with labels (n,)."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 2 and shape[1] == N_MODALITIES:
        values = np.asarray(x)
        labels = None if y is None else np.asarray(y).ravel()
        if labels is not None and len(labels) != len(values):
            raise ArrayContractError(f"{len(labels)} labels for {len(values)} pixel vectors")
        return values, labels
    return sample_pixels(x, y, max_pixels=max_pixels, seed=seed)


def _split_by_label(values, labels):
    if labels is None:
        return [("foreground", values, HEALTHY_COLOUR)]
    tumour = labels.astype(bool)
    return [("non-tumour", values[~tumour], HEALTHY_COLOUR), ("tumour", values[tumour], TUMOUR_COLOUR)]


def foreground_histograms(x, y=None, bins: int = 50, *, max_pixels: int = MAX_PIXELS, seed: int = 0) -> Figure:
    """Per-modality histograms of foreground intensities; tumour vs non-tumour when ``y`` is given.

    Parameters
    ----------
    x : array-like (N, 240, 240, 4) or (n, 4)
        Images (foreground pixels are sampled, see :func:`sample_pixels`) or pixel vectors.
    y : array-like (N, 240, 240) or (n,), optional
        Masks or labels matching ``x``.
    bins : int
    max_pixels, seed : int
        Size and seed of the pixel sample drawn from images.

    Returns
    -------
    matplotlib.figure.Figure
        Densities, so that the small tumour class stays visible.
    """
    values, labels = _as_pixels(x, y, max_pixels, seed)
    groups = _split_by_label(values, labels)
    fig = _figure(3.2 * N_MODALITIES, 2.8)
    axes = fig.subplots(1, N_MODALITIES, squeeze=False)[0]
    for m, (ax, name) in enumerate(zip(axes, MODALITIES)):
        if len(values):
            edges = np.histogram_bin_edges(values[:, m], bins=bins)
            for label, v, colour in groups:
                if len(v):
                    ax.hist(v[:, m], bins=edges, density=True, histtype="stepfilled", alpha=0.55,
                            color=colour, label=f"{label} ({len(v)})")
        ax.set_title(MODALITY_TITLES[name], fontsize=10)
        ax.set_xlabel("normalised intensity", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("density", fontsize=8)
    if len(values):
        axes[-1].legend(fontsize=7, frameon=False)
    return fig


def _pair_indices(pairs):
    if pairs is None:
        return list(itertools.combinations(range(N_MODALITIES), 2))
    out = []
    for a, b in pairs:
        out.append(tuple(MODALITIES.index(m) if isinstance(m, str) else int(m) for m in (a, b)))
    for a, b in out:
        if not (0 <= a < N_MODALITIES and 0 <= b < N_MODALITIES):
            raise BadArgumentError(f"modality pairs must name {MODALITIES} or index 0-{N_MODALITIES - 1}, got {pairs!r}")
    return out


def label_hist2d(x, y, pairs=None, bins: int = 100, *, max_pixels: int = MAX_PIXELS, seed: int = 0) -> Figure:
    """2D histograms of modality pairs, coloured by label (blue non-tumour, red tumour, dark where both).

    As the clustering lesson plots foreground pixels in modality pairs: each
    class's counts are log-scaled and normalised on their own, so the small
    tumour class shows as clearly as the healthy brain.

    Parameters
    ----------
    x : array-like (N, 240, 240, 4) or (n, 4)
        Images (foreground pixels are sampled) or pixel vectors.
    y : array-like (N, 240, 240) or (n,), or None
        Masks or labels; None draws one colour.
    pairs : sequence of (modality, modality), optional
        Names (``"flair"``) or indices; default all six pairs.
    bins : int
    max_pixels, seed : int
        Size and seed of the pixel sample drawn from images.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, labels = _as_pixels(x, y, max_pixels, seed)
    pair_idx = _pair_indices(pairs)
    groups = _split_by_label(values, labels)
    ncols = min(3, len(pair_idx))
    nrows = -(-len(pair_idx) // ncols)
    fig = _figure(3.4 * ncols, 3.2 * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (a, b) in zip(axes, pair_idx):
        ax.set_xlabel(MODALITY_TITLES[MODALITIES[a]], fontsize=9)
        ax.set_ylabel(MODALITY_TITLES[MODALITIES[b]], fontsize=9)
        ax.tick_params(labelsize=7)
        if not len(values):
            continue
        # Clip the extreme 0.1% so that a few outliers do not squash the picture.
        lo = np.percentile(values[:, [a, b]], 0.1, axis=0)
        hi = np.percentile(values[:, [a, b]], 99.9, axis=0)
        rgb = np.ones((bins, bins, 3))
        for _, v, colour in groups:
            if not len(v):
                continue
            h, _, _ = np.histogram2d(v[:, a], v[:, b], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
            strength = np.log1p(h) / np.log1p(h.max()) if h.max() > 0 else h
            rgb *= 1 - strength.T[..., None] * (1 - np.asarray(colour)) * 0.9
        ax.imshow(np.clip(rgb, 0, 1), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto",
                  interpolation="nearest")
    for ax in axes[len(pair_idx):]:
        ax.set_visible(False)
    fig.legend(handles=[Patch(color=c, label=name) for name, _, c in groups], loc="outside upper center",
               ncols=len(groups), fontsize=8, frameon=False)
    return fig


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` as a PNG, atomically, and close it.

    The PNG carries no metadata that varies (no software version, no time), so
    the same figure gives the same bytes.
    """
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure made with pyplot is also held by pyplot
        pyplot.close(fig)
    return path


def _truth_for(directory, split):
    """Masks of a split: the training masks, or the test truth when the instructor has it."""
    if split.y is not None:
        return split.y
    try:
        return truth_for(directory, split).y
    except (MissingFileError, LayoutError):
        return None


def save_course_figure(directory, out, cases=(0,), split: str = TRAIN) -> Path:
    """Draw the course's figure for ``cases`` of a competition directory and save it as a PNG.

    The truth column shows the training masks, or for the test split the
    private truth when it is present (the instructor's copy).

    Raises
    ------
    KitError
        A case index outside the split (the message names the valid range);
        a directory that holds no such split.
    """
    if split not in (TRAIN, TEST):
        raise BadArgumentError(f"split must be {TRAIN!r} or {TEST!r}, got {split!r}")
    data = open_split(directory, split)
    cases = _check_cases(list(cases), len(data), what=f"{split} case")
    fig = course_figure(data.x, y_true=_truth_for(directory, data), cases=cases, case_ids=data.case_id)
    return save_figure(fig, out)


def save_overview_figures(directory, out_dir, *, seed: int = 0) -> list:
    """The demo's figures for a competition directory, as PNGs in ``out_dir``.

    ``course_figure.png`` (four training cases spread over the split),
    ``foreground_histograms.png`` and ``label_hist2d.png`` (from one seeded
    sample of training foreground pixels; slices are read one at a time).

    Returns
    -------
    list of Path
    """
    out_dir = Path(out_dir)
    train = open_split(directory, TRAIN)
    n = len(train)
    cases = sorted(set(np.linspace(0, n - 1, min(n, 4)).round().astype(int).tolist()))
    paths = [
        save_figure(course_figure(train.x, y_true=train.y, cases=cases, case_ids=train.case_id),
                    out_dir / "course_figure.png")
    ]
    values, labels = sample_pixels(train.x, train.y, seed=seed)
    paths.append(save_figure(foreground_histograms(values, labels), out_dir / "foreground_histograms.png"))
    paths.append(save_figure(label_hist2d(values, labels), out_dir / "label_hist2d.png"))
    return paths
