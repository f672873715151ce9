"""What storing mask scores adds to one upload's scoring, beside the upload as it was (counts only).

Issue 22: the server's isolated scoring worker also computes the per-case values of the mask
score a course ranks by (HD95, lesion-wise Dice or HD95, NSD), so the board ranks by it without
reading the file again. This times :meth:`grader.isolation.IsolatedScorer.score` of one 29-slice
``.npy`` submission (the masks of ``metrics_speed.py``: discs, shifted and resized, plus
scattered false-positive pixels) in the same run:

* reference: ``IsolatedScorer(metrics=())``, the worker as it was (validate, count), which a
  course ranked by Dice still uses;
* ours: a course ranked by each mask score (its one score), and every mask score at once
  (why the server stores only the course's).

Each figure is the median over ``--repeat`` files scored one after the other (the worker
started once, as in the server); the difference is the added time per upload.

Run: ``python benchmarks/upload_mask_scores.py [--repeat 30] [--slices 29]``
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from data_spec import case_ids, public_mask
from data_spec.hdf5 import write_split_h5
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from grader_speed import _masks as disc_masks  # the grader benchmark's masks and timer (a sibling script)
from grader_speed import _median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--slices", type=int, default=29)
    args = parser.parse_args()
    y, p = disc_masks(args.slices, seed=0)
    with tempfile.TemporaryDirectory(prefix="brats-kit-upload-bench-") as tmp:
        truth = Path(tmp) / "test_truth.h5"
        write_split_h5(truth, y=y, case_id=case_ids("test", len(y)), public=public_mask(len(y), 0), split="test")
        sub = Path(tmp) / "pred.npy"
        write_submission(sub, p)
        times = {}
        kinds = [("counts only (dice; the worker before)", ())]
        kinds += [(f"+ {name} (a course ranked by it)", (name,)) for name in ("hd95", "lesion_dice", "nsd")]
        kinds.append(("+ every mask score", None))
        for label, metrics in kinds:
            with IsolatedScorer(truth, workers=1, timeout=120, metrics=metrics) as scorer:
                verdict = scorer.score(sub)
                assert verdict.ok and (verdict.mask_scores is None) == (metrics == ())
                times[label] = _median_ms(lambda: scorer.score(sub), args.repeat)
    (ref_label, ref), *ours = times.items()
    print(f"one upload's scoring in the isolated worker, {args.slices} slices, median of {args.repeat}")
    print(f"  {ref_label:<40} {ref:8.1f} ms")
    for label, ms in ours:
        print(f"  {label:<40} {ms:8.1f} ms   (x{ms / ref:.2f}; added {ms - ref:.1f} ms per upload)")


if __name__ == "__main__":
    main()
