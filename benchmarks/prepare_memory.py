"""Peak memory and time of ``prepare_competition`` on full-size (240x240x155) fake BraTS 2018 patients.

Prints our peak RSS next to the issue's budget (2 GB for a 285-patient release) and next to what
holding every patient's volumes would need, all measured or computed in the same run.
Usage: python benchmarks/prepare_memory.py [N_PATIENTS]   (285: a whole BraTS 2018 training release)
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEPTH = 155


def write_release(root: Path, n: int, n_distinct: int = 12) -> None:
    """``n`` cases; only ``n_distinct`` are written, the others are folders of symlinks to them."""
    import nibabel as nib

    rows, cols = np.mgrid[:240, :240]
    rng = np.random.default_rng(0)
    brain2d = ((rows - 120) / 95) ** 2 + ((cols - 120) / 75) ** 2 < 1
    brain = np.repeat(brain2d[..., None], DEPTH, axis=2)
    brain[..., :10] = brain[..., -10:] = False
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for i in range(min(n, n_distinct)):
        case = f"Brats18_BENCH_{i:03d}"
        seg = np.zeros(brain.shape, np.uint8)
        seg[80:110, 130:160, 60 + i % 20 : 90 + i % 20] = 2
        for c, tag in enumerate(("t1", "t1ce", "t2", "flair")):
            v = np.where(brain, 300 * (c + 1) + rng.integers(0, 100, brain.shape), 0).astype(np.int16)
            (root / case).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(v.transpose(1, 0, 2), affine), str(root / case / f"{case}_{tag}.nii.gz"))
        nib.save(nib.Nifti1Image(seg.transpose(1, 0, 2), affine), str(root / case / f"{case}_seg.nii.gz"))
    for i in range(n_distinct, n):
        case, twin = f"Brats18_BENCH_{i:03d}", f"Brats18_BENCH_{i % n_distinct:03d}"
        (root / case).mkdir()
        for tag in ("t1", "t1ce", "t2", "flair", "seg"):
            (root / case / f"{case}_{tag}.nii.gz").symlink_to(root / twin / f"{twin}_{tag}.nii.gz")


CHILD = """
import re, sys, time
def hwm():  # peak RSS of this process in KiB (VmHWM starts afresh at exec, unlike ru_maxrss)
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
import cohorts.prepare  # imports first, so that their memory is the baseline
base = hwm()
t = time.perf_counter()
from cohorts.prepare import prepare_competition
n = int(sys.argv[3])
prepare_competition(sys.argv[1], sys.argv[2], n_train=n - 1, n_test=1, warn=print)
print(base, hwm(), time.perf_counter() - t)
"""


def main(n: int = 285) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "release"
        write_release(src, n)
        out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(Path(tmp) / "out"), str(n)],
                             check=True, capture_output=True, text=True).stdout.split()
    base_kb, peak_kb, seconds = int(out[-3]), int(out[-2]), float(out[-1])
    one_patient = 240 * 240 * DEPTH * (4 * 4 + 1)  # four float32 volumes and a uint8 label map
    slice_bytes = 240 * 240 * (4 * 4 + 1)
    peak = peak_kb * 1024
    projected = peak + max(285 - n, 0) * slice_bytes  # the kept slices are the only per-patient growth
    print(f"patients: {n} of 240x240x{DEPTH}; {seconds / n:.2f} s per patient")
    print(f"peak RSS: {peak / 2**20:.0f} MiB (imports alone: {base_kb / 1024:.0f} MiB)")
    print(f"one patient's volumes: {one_patient / 2**20:.0f} MiB; peak / one patient = {peak / one_patient:.1f}")
    print(f"285 patients{', projected' if n < 285 else ''}: {projected / 2**20:.0f} MiB vs the 2048 MiB budget "
          f"(ratio {projected / 2**31:.2f}); holding every volume would need {285 * one_patient / 2**30:.1f} GiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 285)
