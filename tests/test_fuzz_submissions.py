"""Fuzzing: mutants of valid .npy, .dat and HDF5 submissions all get a verdict, in time, without a traceback.

Each mutant (byte flips, a truncation, an insertion) is scored in the isolated
worker (:class:`grader.isolation.IsolatedScorer`, the one the server uses) with a
time limit, and the leaderboard's in-process path (:func:`score_bytes`, HDF5 in
its own worker) must agree on the status.
"""
from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_spec import load_truth
from grader.isolation import IsolatedScorer
from grader.leaderboard.scoring import score_bytes

#: Seconds a worker may spend on one mutant: generous, a verdict not a benchmark.
TIME_LIMIT = 20
#: Codes of a refusal that would say the validator itself failed (a traceback caught): never expected
#: from our own readers (.dat, .npy).
CRASH_CODES = {"unreadable"}


def _valid_files(truth) -> dict:
    y = truth.y.astype(np.uint8)
    npy = io.BytesIO()
    np.save(npy, y)
    h5 = io.BytesIO()
    with h5py.File(h5, "w") as f:
        f["y_pred"] = y
        f.create_dataset("case_id", data=np.array(list(truth.case_id), dtype=object), dtype=h5py.string_dtype())
    return {"npy": npy.getvalue(), "dat": y.tobytes(), "hdf5": h5.getvalue()}


@pytest.fixture(scope="module")
def fuzz_env(competition):
    truth = load_truth(competition / "private")
    with IsolatedScorer(competition / "private", workers=2, timeout=TIME_LIMIT, memory_mb=1024) as scorer:
        yield truth, _valid_files(truth), scorer


@st.composite
def mutations(draw, size: int):
    """A list of edits: ("flip", offset, byte), ("truncate", length), ("insert", offset, bytes)."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "truncate", "insert"]))
        if kind == "flip":
            # Headers and metadata sit at both ends; weight the offsets there.
            offset = draw(st.one_of(st.integers(0, 511), st.integers(max(0, size - 8192), size - 1),
                                    st.integers(0, size - 1)))
            edits.append(("flip", offset, draw(st.integers(1, 255))))
        elif kind == "truncate":
            edits.append(("truncate", draw(st.integers(0, size - 1))))
        else:
            edits.append(("insert", draw(st.integers(0, size)), draw(st.binary(min_size=1, max_size=16))))
    return edits


def _apply(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for edit in edits:
        if edit[0] == "flip" and edit[1] < len(out):
            out[edit[1]] ^= edit[2]
        elif edit[0] == "truncate":
            del out[edit[1]:]
        elif edit[0] == "insert":
            out[min(edit[1], len(out)):min(edit[1], len(out))] = edit[2]
    return bytes(out)


@pytest.mark.parametrize("fmt", ["npy", "dat", "hdf5"])
def test_every_mutant_gets_a_verdict_in_time(fuzz_env, tmp_path_factory, fmt):
    truth, files, scorer = fuzz_env
    original = files[fmt]
    folder = tmp_path_factory.mktemp(f"fuzz-{fmt}")
    counter = iter(range(10**6))

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(mutations(len(original)))
    def check(edits):
        data = _apply(original, edits)
        path = folder / f"mutant-{next(counter)}.{fmt}"
        path.write_bytes(data)
        verdict = scorer.submit(path).result(timeout=TIME_LIMIT + 30)
        assert verdict.status in ("scored", "invalid")
        assert verdict.ok or verdict.errors
        codes = {e.code for e in verdict.errors}
        if fmt != "hdf5":
            assert not codes & CRASH_CODES, verdict.error_dicts()
        assert "timeout" not in codes, "a mutant made the reader overrun its limit"
        for e in verdict.errors:
            assert "Traceback" not in str(e)
        # The leaderboard's path (bytes read once, HDF5 in its own worker) says the same.
        again = score_bytes(data, truth, str(path))
        assert again.status == verdict.status
        assert {e.code for e in again.errors} == codes
        path.unlink()

    check()
