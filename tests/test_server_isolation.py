"""grader.isolation: scoring in worker processes that cannot hang or crash the caller."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from data_spec import load_truth
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer, evaluate_record


def sleepy_task(path, truth, max_bytes):
    """A reader that never finishes (what a hostile file can do to a library)."""
    time.sleep(600)


def crashing_task(path, truth, max_bytes):
    os._exit(3)


def greedy_task(path, truth, max_bytes):
    """Asks for 1.5 GiB: fine for the machine, three times the worker's limit below."""
    return {"size": int(np.ones(3 << 29, dtype=np.uint8).sum())}


def test_scores_like_the_grader_and_survives_hostile_tasks(competition, tmp_path):
    truth = load_truth(competition / "private")
    good, bad = tmp_path / "good.npy", tmp_path / "bad.npy"
    write_submission(good, truth.y)
    np.save(bad, truth.y.astype(np.uint8) * 255)
    with IsolatedScorer(competition / "private", workers=2, timeout=30) as scorer:
        v_good, v_bad = scorer.map([good, bad])
    assert v_good.status == "scored" and v_good.counts.scores("public")["dice"] == 1.0
    assert v_bad.status == "invalid" and [e.code for e in v_bad.errors] == ["bad_values"]
    assert v_bad.errors[0].hint and "255" in v_bad.errors[0].hint


def test_same_record_as_in_process(competition, tmp_path):
    truth = load_truth(competition / "private")
    y = truth.y.copy()
    y[0, :20, :20] = 1
    path = tmp_path / "p.npy"
    write_submission(path, y)
    with IsolatedScorer(competition / "private", workers=1, timeout=30, metrics=("nsd", "lesion_hd95")) as scorer:
        verdict = scorer.score(path)
    assert verdict.record() == evaluate_record(path, truth, None, ("nsd", "lesion_hd95"))
    assert set(verdict.record()["mask_scores"]) == {"nsd", "lesion_hd95"}


@pytest.mark.parametrize("task, code", [(sleepy_task, "timeout"), (crashing_task, "unreadable"),
                                         (greedy_task, "unreadable")])
def test_timeout_crash_and_memory_become_invalid_verdicts(competition, tmp_path, task, code):
    path = tmp_path / "any.npy"
    write_submission(path, load_truth(competition / "private").y)
    with IsolatedScorer(competition / "private", workers=1, timeout=2, memory_mb=512, task=task) as scorer:
        verdict = scorer.score(path)
    assert verdict.status == "invalid"
    assert [e.code for e in verdict.errors] == [code]
    assert verdict.counts is None


def _hanging_hdf5(path, truth) -> None:
    """A valid HDF5 submission whose variable-length ``case_id`` has its first global-heap object's size
    set to 1: libhdf5 then loops forever reading the ids (checked: ``h5py`` never returns)."""
    import struct

    import h5py

    with h5py.File(path, "w") as f:
        f["y_pred"] = truth.y
        f.create_dataset("case_id", data=np.array(list(truth.case_id), dtype=object), dtype=h5py.string_dtype())
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")  # collection header: signature, version, 3 reserved, size (8 bytes)
    assert heap > 0
    first_object = heap + 16  # index (2), reference count (2), reserved (4), size (8), data
    data[first_object + 8:first_object + 16] = struct.pack("<Q", 1)
    path.write_bytes(bytes(data))


def test_a_file_that_hangs_libhdf5_times_out(competition, tmp_path):
    truth = load_truth(competition / "private")
    path = tmp_path / "hang.h5"
    _hanging_hdf5(path, truth)
    with IsolatedScorer(competition / "private", workers=1, timeout=3) as scorer:
        verdict = scorer.score(path)
        assert [e.code for e in verdict.errors] == ["timeout"]
        # The pool replaced the killed worker: the next file is scored.
        good = tmp_path / "good.npy"
        write_submission(good, truth.y)
        assert scorer.score(good).status == "scored"
