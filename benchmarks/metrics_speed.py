"""Speed of the mask scores on one 29-slice submission (HD95, lesion-wise Dice + HD95, NSD), beside references.

Target (issue 22): 20 ms each for the 29 slices (HD95 was 210 ms). References,
timed in the same run on the same masks (those of ``grader_speed.py``: discs,
shifted and resized, plus scattered false-positive pixels, so a slice's
bounding box is often the whole image):

* HD95: MedPy's ``hd95`` per slice, and a KD-tree over the surface pixels of
  the uncropped slice (scipy's erosion for the surfaces);
* NSD at 1 px: DeepMind's ``surface-distance`` (surfels, its own definition);
* lesion-wise: no package computes it on 2-D slices; the target alone.

MedPy and surface-distance are in the ``test`` extra; a missing one is skipped.

``--clock cpu`` times each call by the process's CPU time instead of the wall
clock: the same figure on an idle machine (all of this is single-threaded), and
far steadier on a busy one, where comparing two source trees turn about
(``PYTHONPATH=TREE``) is then meaningful.

Run: ``python benchmarks/metrics_speed.py [--repeat 20] [--clock cpu]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from data_spec.constants import HD95_BOTH_EMPTY, HD95_ONE_EMPTY
from grader.hausdorff import hd95_per_slice
from grader.lesions import lesion_scores_per_slice
from grader.surface import nsd_per_slice
from grader_speed import _masks as disc_masks  # the grader benchmark's masks and timer (a sibling script)
from grader_speed import _median_ms

TARGET_MS = 20.0
_CROSS = ndimage.generate_binary_structure(2, 1)


def _edge_cases(fn):
    """Per-slice ``fn(t, p)`` with the kit's HD95 conventions for empty masks."""
    def per_slice(y, p):
        out = []
        for t, q in zip(y.astype(bool), p.astype(bool)):
            if not t.any() and not q.any():
                out.append(HD95_BOTH_EMPTY)
            elif t.any() != q.any():
                out.append(HD95_ONE_EMPTY)
            else:
                out.append(fn(t, q))
        return np.array(out)
    return per_slice


def _kdtree_full(t, p) -> float:
    st = np.argwhere(t & ~ndimage.binary_erosion(t, _CROSS))
    sp = np.argwhere(p & ~ndimage.binary_erosion(p, _CROSS))
    a, b = cKDTree(st).query(sp)[0], cKDTree(sp).query(st)[0]
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    y, p = disc_masks(29, seed=0)
    rows = []  # (metric, implementation, ms, value)
    ours = hd95_per_slice(y, p)
    rows.append(("HD95", "brats-kit (crop, shifts, nearest pts)",
                 _median_ms(lambda: hd95_per_slice(y, p), args.repeat, clock), ours.mean()))
    kd = _edge_cases(_kdtree_full)
    rows.append(("HD95", "KD-tree, uncropped, erosion", _median_ms(lambda: kd(y, p), args.repeat, clock),
                 kd(y, p).mean()))
    try:
        from medpy.metric.binary import hd95 as medpy_hd95
    except ImportError:
        print("MedPy not installed (pip install -e '.[test]'): its row is skipped")
    else:
        mp = _edge_cases(lambda t, q: float(medpy_hd95(q, t)))
        rows.append(("HD95", "MedPy hd95 (pooled percentile)", _median_ms(lambda: mp(y, p), args.repeat, clock),
                     mp(y, p).mean()))
    dice, hd = lesion_scores_per_slice(y, p)
    rows.append(("lesion-wise Dice + HD95", "brats-kit (both, one pass)",
                 _median_ms(lambda: lesion_scores_per_slice(y, p), args.repeat, clock), hd.mean()))
    rows.append(("NSD, 1 px", "brats-kit (pixels)", _median_ms(lambda: nsd_per_slice(y, p), args.repeat, clock),
                 nsd_per_slice(y, p).mean()))
    try:
        import surface_distance as sd
    except ImportError:
        print("surface-distance not installed (pip install -e '.[test]'): its row is skipped")
    else:
        def deepmind(y, p):
            out = []
            for t, q in zip(y.astype(bool), p.astype(bool)):
                if not t.any() or not q.any():
                    out.append(float(t.any() == q.any()))
                else:
                    out.append(sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(t, q, (1, 1)), 1))
            return np.array(out)
        rows.append(("NSD, 1 px", "DeepMind surface-distance (surfels)",
                     _median_ms(lambda: deepmind(y, p), args.repeat, clock), deepmind(y, p).mean()))
    print(f"29-slice submission, median of {args.repeat} runs ({args.clock} clock); "
          f"target {TARGET_MS:.0f} ms for each of ours")
    print(f"{'metric':<25}{'implementation':<38}{'ms':>8}{'mean score':>12}{'vs target':>11}")
    for metric, impl, ms, value in rows:
        ratio = f"{ms / TARGET_MS:.2f}" if impl.startswith("brats-kit") else ""
        print(f"{metric:<25}{impl:<38}{ms:>8.1f}{value:>12.4f}{ratio:>11}")
    print(f"lesion-wise Dice mean: {dice.mean():.4f}")


if __name__ == "__main__":
    main()
