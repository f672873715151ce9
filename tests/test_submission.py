"""write_submission: every format, read back by the grader's own validation; atomic and deterministic."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from data_spec import ArrayContractError, SUBMISSION_FILE
from data_spec.submission import write_submission
from grader import validate_submission

N = 2


@pytest.fixture()
def pred():
    p = np.zeros((N, 240, 240), dtype=np.uint8)
    p[0, 10:30, 40:50] = 1
    p[1, 200:, :5] = 1
    return p


@pytest.mark.parametrize("name", [SUBMISSION_FILE, "p.npy", "p.h5", "p.HDF5", "no_suffix"])
@pytest.mark.parametrize("dtype", [np.uint8, bool, np.int64, np.float32])
def test_round_trip_through_the_grader(tmp_path, pred, name, dtype):
    path = write_submission(tmp_path / name, pred.astype(dtype))
    result = validate_submission(path, n_slices=N)
    assert result.ok, result.errors
    np.testing.assert_array_equal(result.y_pred, pred)


def test_raw_bytes_are_the_course_format(tmp_path, pred):
    path = write_submission(tmp_path / SUBMISSION_FILE, pred, case_id=["test-0000", "test-0001"])  # positional
    assert path.read_bytes() == pred.tobytes()
    assert path.stat().st_size == N * 240 * 240


def test_hdf5_holds_y_pred_and_case_id(tmp_path, pred):
    ids = ["test-0000", "test-0001"]
    path = write_submission(tmp_path / "p.h5", pred, case_id=ids)
    with h5py.File(path, "r") as f:
        assert f["y_pred"].dtype == np.uint8 and f["y_pred"].shape == (N, 240, 240)
        assert [v.decode() for v in f["case_id"][()]] == ids
    assert validate_submission(path, n_slices=N, case_ids=ids).ok


def test_same_data_same_bytes(tmp_path, pred):
    for name in ("a.npy", "a.h5"):
        first = write_submission(tmp_path / "1" / name, pred, case_id=None).read_bytes()
        second = write_submission(tmp_path / "2" / name, pred, case_id=None).read_bytes()
        assert first == second


def test_bad_predictions_raise_with_hints_and_leave_nothing(tmp_path, pred):
    with pytest.raises(ArrayContractError, match="threshold"):
        write_submission(tmp_path / "p.npy", pred * 0.7)
    with pytest.raises(ArrayContractError, match="divide by 255"):
        write_submission(tmp_path / "p.dat", pred * 255)
    with pytest.raises(ArrayContractError, match="first axis"):
        write_submission(tmp_path / "p.dat", np.moveaxis(pred, 0, -1))
    for name in ("p.h5", "p.dat"):
        with pytest.raises(ArrayContractError, match="one id per slice"):
            write_submission(tmp_path / name, pred, case_id=["a"])
    for ids in (["test-0000", "x" * 40], ["test-0000", "t\u00e9st"]):  # would be truncated / cannot be encoded
        with pytest.raises(ArrayContractError, match="does not fit"):
            write_submission(tmp_path / "p.h5", pred, case_id=ids)
    assert list(tmp_path.iterdir()) == []
