"""Validation: every accepted format, and a hostile corpus built here, each refused with a named error."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import threading
import tracemalloc
import zlib

import h5py
import numpy as np
import pytest

from data_spec import case_ids, write_course_array, write_split_h5
from data_spec.submission import write_submission
from grader import SUBMISSION_CODES, check_submission, validate_array, validate_submission

N = 3
IDS = case_ids("test", N)


@pytest.fixture(scope="module")
def masks():
    rng = np.random.default_rng(0)
    y = (rng.random((N, 240, 240)) < 0.05).astype(np.uint8)
    p = (rng.random((N, 240, 240)) < 0.05).astype(np.uint8)
    return y, p


@pytest.fixture()
def truth(tmp_path, masks):
    """A private truth in both layouts; the student's files go in tmp_path."""
    y, _ = masks
    private = tmp_path / "private"
    h5 = write_split_h5(private / "test_truth.h5", y=y, case_id=IDS, public=[True, False, False], split="test")
    dat = write_course_array(private / "test_data_y.dat", y, "y")
    return {"h5": h5, "dat": dat}


def run(path, truth=None, **kw):
    truth_paths = [truth["h5"], truth["dat"]] if truth else None
    return validate_submission(path, n_slices=N, case_ids=IDS, truth_path=truth_paths, **kw)


def codes(result):
    return [e.code for e in result.errors]


def _check_reported(result):
    """Every error is named, locatable and JSON-ready."""
    assert not result.ok and result.y_pred is None
    for e in result.errors:
        assert e.code in SUBMISSION_CODES
        d = e.to_dict()
        assert d["code"] == e.code and d["message"]
        assert e.where or e.path
        json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------- accepted formats


@pytest.mark.parametrize("name", ["test_data_ypred.dat", "sub.npy", "sub.h5", "sub.hdf5"])
def test_every_format_round_trips(tmp_path, masks, name):
    _, p = masks
    path = write_submission(tmp_path / name, p, case_id=IDS if name.endswith(("h5", "hdf5")) else None)
    result = run(path)
    assert result.ok, result.errors
    assert result.y_pred.dtype == np.uint8 and result.y_pred.flags.c_contiguous
    np.testing.assert_array_equal(result.y_pred, p)
    assert result.format == {"dat": "dat", "npy": "npy"}.get(name.rsplit(".", 1)[1], "hdf5")


def test_container_is_recognised_by_magic_not_name(tmp_path, masks):
    _, p = masks
    np.save(tmp_path / "a.npy", p)
    os.replace(tmp_path / "a.npy", tmp_path / "looks_raw.dat")
    write_submission(tmp_path / "x.h5", p)
    os.replace(tmp_path / "x.h5", tmp_path / "looks_numpy.npy")
    p.tofile(tmp_path / "looks_hdf5.h5")
    assert run(tmp_path / "looks_raw.dat").format == "npy"
    assert run(tmp_path / "looks_numpy.npy").format == "hdf5"
    assert run(tmp_path / "looks_hdf5.h5").format == "dat"
    assert all(run(tmp_path / f).ok for f in ("looks_raw.dat", "looks_numpy.npy", "looks_hdf5.h5"))


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "<i4", ">i4", "<u2", "int64", "float32", ">f8", "float16"]
)
def test_any_mask_dtype_holding_only_0_and_1_is_accepted(tmp_path, masks, dtype):
    _, p = masks
    np.save(tmp_path / "s.npy", p.astype(dtype))
    result = run(tmp_path / "s.npy")
    assert result.ok, result.errors
    np.testing.assert_array_equal(result.y_pred, p)


def test_fortran_ordered_npy_is_read_in_its_order(tmp_path, masks):
    _, p = masks
    np.save(tmp_path / "f.npy", np.asfortranarray(p))
    result = run(tmp_path / "f.npy")
    assert result.ok
    np.testing.assert_array_equal(result.y_pred, p)


def test_hdf5_bool_and_soft_link_inside_the_file_are_accepted(tmp_path, masks):
    _, p = masks
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("masks/data", data=p.astype(bool))
        f["y_pred"] = h5py.SoftLink("/masks/data")
        f["case_id"] = IDS.astype("S")  # fixed-length strings
    result = run(tmp_path / "s.h5")
    assert result.ok, result.errors
    np.testing.assert_array_equal(result.y_pred, p)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["y_pred"] = p
        f.create_dataset("case_id", data=list(IDS), dtype=h5py.string_dtype())  # variable-length strings
    assert run(tmp_path / "v.h5").ok


def test_check_submission_uses_the_public_test_inputs(competition, tmp_path):
    y = np.zeros((6, 240, 240), dtype=np.uint8)
    good = write_submission(tmp_path / "test_data_ypred.dat", y)
    assert check_submission(good, competition).ok
    bad = write_submission(tmp_path / "short.dat", y[:5])
    result = check_submission(bad, competition)
    assert codes(result) == ["wrong_size"]
    assert "6 test slices" in result.errors[0].hint


# ---------------------------------------------------------------- the mistakes students make


def test_values_0_255_say_divide_by_255_and_where(tmp_path, masks):
    _, p = masks
    (p * 255).tofile(tmp_path / "s.dat")
    result = run(tmp_path / "s.dat")
    _check_reported(result)
    (err,) = result.errors
    assert err.code == "bad_values" and "divide by 255" in err.hint
    s, r, c = np.argwhere(p == 1)[0]
    assert err.where == f"slice {s}, row {r}, column {c}"


def test_probabilities_nan_and_wrong_shape_are_all_reported_at_once(tmp_path, masks):
    _, p = masks
    proba = (0.7 * p + 0.1).astype(np.float32)
    proba[1, 5, 7] = np.nan
    np.save(tmp_path / "s.npy", np.moveaxis(proba, 0, -1))  # (240, 240, N)
    result = run(tmp_path / "s.npy")
    _check_reported(result)
    assert codes(result) == ["wrong_shape", "bad_dtype", "bad_values", "nan"]
    by_code = {e.code: e for e in result.errors}
    assert "slices must be the first axis" in by_code["wrong_shape"].hint
    assert "threshold" in by_code["bad_dtype"].hint and "probabilities" in by_code["bad_values"].hint
    assert by_code["nan"].where == "index (5, 7, 1)"


def test_float_probabilities_in_the_right_shape(tmp_path, masks):
    _, p = masks
    np.save(tmp_path / "s.npy", (0.2 + 0.6 * p).astype(np.float32))
    result = run(tmp_path / "s.npy")
    assert codes(result) == ["bad_dtype", "bad_values"]
    assert "probabilities" in result.errors[0].hint


@pytest.mark.parametrize(
    "values, hint",
    [((0, 1, 2, 4), "BraTS labels"), ((-1, 1), "(y_pred > 0)"), ((0, 7), "0 (background) or 1")],
)
def test_other_label_sets_have_hints(tmp_path, values, hint):
    rng = np.random.default_rng(1)
    arr = rng.choice(values, size=(N, 240, 240)).astype(np.int16)
    np.save(tmp_path / "s.npy", arr)
    result = run(tmp_path / "s.npy")
    assert codes(result) == ["bad_values"] and hint in result.errors[0].hint


def test_a_raw_float32_file_says_probabilities(tmp_path, masks):
    _, p = masks
    p.astype(np.float32).tofile(tmp_path / "test_data_ypred.dat")
    result = run(tmp_path / "test_data_ypred.dat")
    assert codes(result) == ["wrong_size"]
    assert "probabilities" in result.errors[0].hint


def test_a_raw_int64_file_says_astype_uint8(tmp_path, masks):
    _, p = masks
    p.astype(np.int64).tofile(tmp_path / "s.dat")
    result = run(tmp_path / "s.dat")
    assert codes(result) == ["wrong_size"] and "astype(np.uint8)" in result.errors[0].hint


@pytest.mark.parametrize("n", [N - 1, N + 1])
def test_wrong_number_of_slices(tmp_path, n):
    y = np.zeros((n, 240, 240), dtype=np.uint8)
    y.tofile(tmp_path / "s.dat")
    np.save(tmp_path / "s.npy", y)
    assert codes(run(tmp_path / "s.dat")) == ["wrong_size"]
    result = run(tmp_path / "s.npy")
    assert codes(result) == ["wrong_shape"] and f"{N} slices" in result.errors[0].hint


@pytest.mark.parametrize(
    "shape, hint",
    [((N, 240, 240, 1), "drop the channel axis"), ((N * 240 * 240,), "reshape"), ((N, 240, 240, 2), "argmax")],
)
def test_shape_hints(tmp_path, shape, hint):
    np.save(tmp_path / "s.npy", np.zeros(shape, dtype=np.uint8))
    result = run(tmp_path / "s.npy")
    assert codes(result) == ["wrong_shape"] and hint in result.errors[0].hint


def test_hdf5_ids_wrong_or_reordered(tmp_path, masks):
    _, p = masks
    write_submission(tmp_path / "wrong.h5", p, case_id=["a", "b", "c"])
    result = run(tmp_path / "wrong.h5")
    _check_reported(result)
    assert codes(result) == ["id_mismatch"]
    assert result.errors[0].where == "dataset 'case_id', position 0: 'a'"
    assert result.errors[0].expected.startswith("'test-0000' (")
    write_submission(tmp_path / "order.h5", p, case_id=IDS[::-1])
    result = run(tmp_path / "order.h5")
    assert codes(result) == ["id_mismatch"] and "another order" in result.errors[0].hint
    write_submission(tmp_path / "short.h5", p[:2], case_id=IDS[:2])
    assert codes(run(tmp_path / "short.h5")) == ["wrong_shape", "id_mismatch"]


def test_hdf5_without_y_pred_names_what_it_found(tmp_path, masks):
    _, p = masks
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["y"] = p
    result = run(tmp_path / "s.h5")
    assert codes(result) == ["missing_dataset"] and "rename 'y'" in result.errors[0].hint
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_group("y_pred")
    assert codes(run(tmp_path / "g.h5")) == ["missing_dataset"]


def test_validate_array_for_in_memory_predictions(masks):
    _, p = masks
    assert validate_array(p, n_slices=N) == []
    assert validate_array(p.astype(np.int64), n_slices=N) == []
    assert validate_array(p.astype(bool), n_slices=N) == []
    assert validate_array(p.astype(np.float64), n_slices=N) == []
    assert [e.code for e in validate_array(p * 255, n_slices=N)] == ["bad_values"]
    assert [e.code for e in validate_array(p.astype(complex), n_slices=N)] == ["bad_dtype"]
    assert [e.code for e in validate_array(p[0], n_slices=N)] == ["wrong_shape"]
    assert [e.code for e in validate_array(np.array([p[0], None], dtype=object), n_slices=N)] == [
        "wrong_shape", "bad_dtype"]


# ---------------------------------------------------------------- the hostile corpus


class _Exploit:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _npy_header(shape, descr="|u1"):
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def test_symlink_to_the_truth_is_refused(tmp_path, truth):
    os.symlink(truth["dat"], tmp_path / "test_data_ypred.dat")
    result = run(tmp_path / "test_data_ypred.dat", truth)
    _check_reported(result)
    assert codes(result) == ["unsafe_file"] and "symbolic link" in result.errors[0].message


def test_hard_link_to_the_truth_is_refused(tmp_path, truth):
    os.link(truth["dat"], tmp_path / "test_data_ypred.dat")
    result = run(tmp_path / "test_data_ypred.dat", truth)
    assert codes(result) == ["unsafe_file"] and "same inode" in result.errors[0].message
    assert codes(run(truth["h5"], truth)) == ["unsafe_file"]  # the truth file itself


def test_directory_fifo_and_device_are_refused_without_blocking(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for path, word in ((tmp_path / "dir", "directory"), (tmp_path / "fifo", "FIFO"), ("/dev/zero", "device")):
        result = run(path)
        assert codes(result) == ["unsafe_file"] and word in result.errors[0].message


def test_missing_file(tmp_path):
    result = run(tmp_path / "nothing.dat")
    assert codes(result) == ["missing_file"]


def test_size_cap_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.dat"
    with open(big, "wb") as fh:
        fh.truncate(50 << 20)  # sparse: 50 MB claimed, nothing written
    result = run(big)
    assert codes(result) == ["too_large"]
    exact = tmp_path / "exact.dat"
    np.zeros((N, 240, 240), np.uint8).tofile(exact)
    assert codes(run(exact, max_bytes=1000)) == ["too_large"]


def test_empty_and_truncated_files(tmp_path, masks):
    _, p = masks
    (tmp_path / "empty.dat").write_bytes(b"")
    assert codes(run(tmp_path / "empty.dat")) == ["wrong_size"]
    np.save(tmp_path / "s.npy", p)
    data = (tmp_path / "s.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-1000])
    result = run(tmp_path / "cut.npy")
    assert codes(result) == ["wrong_size"] and "truncated" in result.errors[0].message
    (tmp_path / "twice.npy").write_bytes(data + data)
    assert codes(run(tmp_path / "twice.npy")) == ["wrong_size"]
    write_submission(tmp_path / "s.h5", p)
    h5 = (tmp_path / "s.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(h5[: len(h5) // 2])
    assert codes(run(tmp_path / "cut.h5")) == ["corrupt_file"]


def test_huge_declared_npy_shape_is_refused_before_any_allocation(tmp_path):
    header = _npy_header((10**9, 240, 240))
    (tmp_path / "huge.npy").write_bytes(header + b"\x00" * 100)
    tracemalloc.start()
    result = run(tmp_path / "huge.npy")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(result) == ["wrong_shape", "wrong_size"]
    assert peak < 2 << 20


def test_declared_shape_larger_than_expected_is_not_read(tmp_path):
    big = np.zeros((N, 480, 480), dtype=np.uint8)
    np.save(tmp_path / "big.npy", big)
    tracemalloc.start()
    result = run(tmp_path / "big.npy")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(result) == ["wrong_shape"]
    assert peak < big.nbytes / 2


def test_pickled_objects_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.empty(N, dtype=object)
    arr[:] = [_Exploit(marker)] * N
    np.save(tmp_path / "obj.npy", arr, allow_pickle=True)
    result = run(tmp_path / "obj.npy")
    assert codes(result) == ["wrong_shape", "bad_dtype"] and "never loads" in result.errors[1].message
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    result = run(tmp_path / "raw.pkl")
    assert codes(result) == ["unknown_format"] and "pickle" in result.errors[0].message
    assert not marker.exists()


@pytest.mark.parametrize(
    "builder, word",
    [
        (lambda p, a: np.savez(p, y_pred=a), "zip"),
        (lambda p, a: p.write_bytes(gzip.compress(a.tobytes())), "gzip"),
        (lambda p, a: np.savetxt(p, a.reshape(-1, 240), fmt="%d"), "text"),
    ],
)
def test_foreign_containers_are_named(tmp_path, masks, builder, word):
    _, p = masks
    path = tmp_path / "sub.dat"
    builder(path, p)
    if not path.exists():  # np.savez appends .npz
        os.replace(str(path) + ".npz", path)
    result = run(path)
    _check_reported(result)
    assert codes(result) == ["unknown_format"] and word in result.errors[0].message


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "r1").write_bytes(rng.bytes(12345))
    assert codes(run(tmp_path / "r1")) == ["wrong_size"]
    exact = rng.integers(2, 256, size=N * 240 * 240, dtype=np.uint8)  # never a magic
    exact.tofile(tmp_path / "r2")
    assert codes(run(tmp_path / "r2")) == ["bad_values"]


def test_hdf5_external_link_to_the_truth_is_refused(tmp_path, truth):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["y_pred"] = h5py.ExternalLink(str(truth["h5"]), "/y")
    result = run(tmp_path / "s.h5", truth)
    _check_reported(result)
    assert codes(result) == ["unsafe_file"] and "external link" in result.errors[0].message
    with h5py.File(tmp_path / "soft.h5", "w") as f:  # a soft link chained to the external link
        f["elsewhere"] = h5py.ExternalLink(str(truth["h5"]), "/y")
        f["y_pred"] = h5py.SoftLink("/elsewhere")
    assert codes(run(tmp_path / "soft.h5", truth)) == ["unsafe_file"]


def test_hdf5_external_storage_on_the_truth_is_refused(tmp_path, truth):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("y_pred", shape=(N, 240, 240), dtype="u1",
                         external=[(str(truth["dat"]), 0, N * 240 * 240)])
    result = run(tmp_path / "s.h5", truth)
    assert codes(result) == ["unsafe_file"] and "external file" in result.errors[0].message


def test_hdf5_virtual_dataset_mapping_the_truth_is_refused(tmp_path, truth):
    layout = h5py.VirtualLayout(shape=(N, 240, 240), dtype="u1")
    layout[:] = h5py.VirtualSource(str(truth["h5"]), "y", shape=(N, 240, 240))
    with h5py.File(tmp_path / "s.h5", "w", libver="latest") as f:
        f.create_virtual_dataset("y_pred", layout)
    result = run(tmp_path / "s.h5", truth)
    assert codes(result) == ["unsafe_file"] and "virtual dataset" in result.errors[0].message


def test_hdf5_virtual_dataset_on_a_fifo_cannot_hang_the_grader(tmp_path):
    # An unlimited mapping makes HDF5 open the source when the dataset is opened;
    # through the file-object driver it opens the submission itself, not the FIFO.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    unlimited = h5py.h5s.UNLIMITED
    layout = h5py.VirtualLayout(shape=(N, 240, 240), maxshape=(None, 240, 240), dtype="u1")
    source = h5py.VirtualSource(str(fifo), "y", shape=(N, 240, 240), maxshape=(None, 240, 240))
    layout[0:unlimited] = source[0:unlimited]
    with h5py.File(tmp_path / "s.h5", "w", libver="latest") as f:
        f.create_virtual_dataset("y_pred", layout)
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("result", run(tmp_path / "s.h5")), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # release the blocked open before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("validation blocked on a FIFO named by a virtual dataset")
    assert codes(box["result"]) == ["unsafe_file"]


def test_hdf5_gzip_bomb_is_refused_before_inflating(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        ds = f.create_dataset("y_pred", shape=(N, 240, 240), dtype="u1", chunks=(1, 240, 240), compression="gzip")
        ds.id.write_direct_chunk((0, 0, 0), zlib.compress(bytes(32 << 20), 1))
    assert (tmp_path / "s.h5").stat().st_size < 1 << 20
    tracemalloc.start()
    result = run(tmp_path / "s.h5")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(result) == ["unsafe_file"] and "decompression bomb" in result.errors[0].message
    assert peak < 8 << 20


def test_hdf5_chunks_far_larger_than_the_dataset_are_refused_before_inflating(tmp_path, masks):
    # Chunks may exceed the extent of a resizable dataset: one gzip chunk of 200 slices of
    # zeros is a small file that passes a per-chunk bomb check and inflates to 11.5 MB.
    with h5py.File(tmp_path / "s.h5", "w") as f:
        ds = f.create_dataset("y_pred", shape=(N, 240, 240), maxshape=(None, 240, 240), dtype="u1",
                              chunks=(200, 240, 240), compression="gzip")
        ds.id.write_direct_chunk((0, 0, 0), zlib.compress(bytes(200 * 240 * 240), 9))
    assert (tmp_path / "s.h5").stat().st_size < 1 << 20
    tracemalloc.start()
    result = run(tmp_path / "s.h5")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(result) == ["unsafe_file"] and "larger than the dataset" in result.errors[0].message
    assert peak < 4 << 20
    _, p = masks  # a resizable dataset with a generous chunk is still a valid submission
    with h5py.File(tmp_path / "ok.h5", "w") as f:
        f.create_dataset("y_pred", data=p, maxshape=(None, 240, 240), chunks=(64, 240, 240), compression="gzip")
    assert run(tmp_path / "ok.h5").ok


def test_hdf5_more_chunks_than_tile_the_dataset_are_refused(tmp_path):
    # Write 50 chunks, then patch the stored extent to N slices: the chunk index keeps 50.
    with h5py.File(tmp_path / "s.h5", "w") as f:
        ds = f.create_dataset("y_pred", shape=(50, 240, 240), maxshape=(None, 240, 240), dtype="u1",
                              chunks=(1, 240, 240), compression="gzip")
        for i in range(50):
            ds.id.write_direct_chunk((i, 0, 0), zlib.compress(bytes(240 * 240), 1))
    data = bytearray((tmp_path / "s.h5").read_bytes())
    dims = np.array([50, 240, 240], "<u8").tobytes()
    assert data.count(dims) == 1
    at = data.find(dims)
    data[at : at + 8] = np.array([N], "<u8").tobytes()
    (tmp_path / "s.h5").write_bytes(bytes(data))
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["y_pred"].shape == (N, 240, 240) and f["y_pred"].id.get_num_chunks() == 50
    result = run(tmp_path / "s.h5")
    assert codes(result) == ["unsafe_file"] and "50 chunks" in result.errors[0].message


def test_hdf5_huge_fixed_length_case_ids_are_not_read(tmp_path, masks):
    _, p = masks
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["y_pred"] = p
        f.create_dataset("case_id", shape=(N,), dtype=np.dtype(f"S{16 << 20}"))  # no storage: a tiny file
    assert (tmp_path / "s.h5").stat().st_size < 1 << 20
    tracemalloc.start()
    result = run(tmp_path / "s.h5")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(result) == ["id_mismatch"]
    assert peak < 4 << 20  # reading them would allocate N x 16 MB


def test_hdf5_unknown_filters_are_refused(tmp_path, masks):
    _, p = masks
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("y_pred", data=p, scaleoffset=0)
    result = run(tmp_path / "s.h5")
    assert codes(result) == ["unsafe_file"] and "filter pipeline" in result.errors[0].message
    with h5py.File(tmp_path / "lzf.h5", "w") as f:
        f.create_dataset("y_pred", data=p, compression="lzf", shuffle=True)
    assert run(tmp_path / "lzf.h5").ok


def test_hdf5_object_compound_and_oversized_datasets(tmp_path, masks):
    _, p = masks
    with h5py.File(tmp_path / "vlen.h5", "w") as f:
        f.create_dataset("y_pred", shape=(N, 240, 240), dtype=h5py.vlen_dtype(np.uint8))
    assert "bad_dtype" in codes(run(tmp_path / "vlen.h5"))
    with h5py.File(tmp_path / "compound.h5", "w") as f:
        f.create_dataset("y_pred", shape=(N, 240, 240), dtype=np.dtype([("a", "u1"), ("b", "f4")]))
    assert codes(run(tmp_path / "compound.h5")) == ["bad_dtype"]
    with h5py.File(tmp_path / "big.h5", "w") as f:  # a declared shape far beyond the test: never read
        f.create_dataset("y_pred", shape=(10**6, 240, 240), dtype="u1", chunks=(1, 240, 240), compression="gzip")
    assert codes(run(tmp_path / "big.h5")) == ["wrong_shape"]


def test_mutated_files_never_raise(tmp_path, masks):
    """Random byte flips in valid files (mostly in the headers and HDF5 metadata): always a Validation."""
    _, p = masks
    with h5py.File(tmp_path / "lzf.h5", "w") as f:
        f.create_dataset("y_pred", data=p, compression="lzf", shuffle=True)
    bases = [
        write_submission(tmp_path / "b.npy", p).read_bytes(),
        write_submission(tmp_path / "b.h5", p, case_id=IDS).read_bytes(),
        (tmp_path / "lzf.h5").read_bytes(),
    ]
    rng = np.random.default_rng(0)
    seen = set()
    for i in range(90):
        data = bytearray(bases[i % 3])
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(0, min(len(data), 4096)))] = int(rng.integers(0, 256))
        (tmp_path / "m").write_bytes(bytes(data))
        result = run(tmp_path / "m")
        assert result.ok == (not result.errors)
        seen.update(codes(result))
    assert {"corrupt_file", "bad_values"} <= seen
