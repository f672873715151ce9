"""Describe a competition directory: layouts, counts, tumour fraction, intensity statistics."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .background import foreground_mask
from .constants import MODALITIES, PRIVATE_DIR, SPLITS
from .errors import LayoutError
from .layout import LAYOUTS, detect_layout, open_split, open_truth


def _split_stats(split) -> dict:
    """Streaming statistics over one split, one slice at a time."""
    n = len(split)
    out = {"layout": split.layout, "n_slices": n, "path": str(split.path)}
    if split.x is not None and n:
        count = np.zeros(len(MODALITIES))
        total = np.zeros(len(MODALITIES))
        total_sq = np.zeros(len(MODALITIES))
        fg_pixels = 0
        tumour_pixels = 0
        tumour_slices = 0
        for i in range(n):
            xi = np.asarray(split.x[i], dtype=np.float64)
            fg = foreground_mask(xi)
            v = xi[fg]
            count += len(v)
            total += v.sum(axis=0)
            total_sq += (v * v).sum(axis=0)
            fg_pixels += int(fg.sum())
            if split.y is not None:
                yi = np.asarray(split.y[i]).astype(bool)
                tumour_pixels += int(yi.sum())
                tumour_slices += bool(yi.any())
        mean = total / np.maximum(count, 1)
        std = np.sqrt(np.maximum(total_sq / np.maximum(count, 1) - mean**2, 0))
        out["foreground_fraction"] = fg_pixels / (n * split.x.shape[1] * split.x.shape[2])
        out["modalities"] = {
            m: {"foreground_mean": float(mu), "foreground_std": float(sd)} for m, mu, sd in zip(MODALITIES, mean, std)
        }
        if split.y is not None:
            out["tumour_fraction_of_foreground"] = tumour_pixels / max(fg_pixels, 1)
            out["tumour_slices"] = tumour_slices
    elif split.y is not None and n:
        y = np.asarray(split.y).astype(bool)
        out["tumour_slices"] = int(y.any(axis=(1, 2)).sum())
    if split.public is not None:
        out["public_cases"] = int(split.public.sum())
        out["private_cases"] = int((~split.public).sum())
    return out


def describe(path) -> dict:
    """Summarise a competition directory as a JSON-ready dict.

    Reports, for each split present: the layout read (HDF5 preferred) and the
    layouts available, slice count, foreground fraction, mean and standard
    deviation of each modality over foreground pixels, and, where masks are
    present, tumour fraction and number of tumour slices. The private test
    truth, when present, is summarised under ``"test_truth"``.
    """
    path = Path(path)
    summary = {"path": str(path.resolve()), "splits": {}}
    for split in SPLITS:
        try:
            detect_layout(path, split)
        except LayoutError:
            continue
        stats = _split_stats(open_split(path, split))
        stats["layouts_available"] = [
            layout for layout in LAYOUTS if _has_layout(path, split, layout)
        ]
        summary["splits"][split] = stats
    if not summary["splits"]:
        detect_layout(path, "train")  # raises the explanatory error
    private = path / PRIVATE_DIR
    if private.is_dir():
        try:
            summary["test_truth"] = _split_stats(open_truth(private))
        except LayoutError:
            pass
        except FileNotFoundError:
            pass
    return summary


def _has_layout(path: Path, split: str, layout: str) -> bool:
    try:
        open_split(path, split, layout)
    except (LayoutError, FileNotFoundError):
        return False
    return True
