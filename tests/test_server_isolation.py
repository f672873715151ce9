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
    with IsolatedScorer(competition / "private", workers=1, timeout=30) as scorer:
        verdict = scorer.score(path)
    assert verdict.record() == evaluate_record(path, truth, None)


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
