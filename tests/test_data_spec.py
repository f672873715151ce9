"""The data contract: both layouts, lazy reading, checksums, errors, atomic writes."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import data_spec as ds
from plumbing.atomic import atomic_dir, atomic_path
from conftest import make_slices


def test_constants_are_the_course_contract():
    assert ds.SLICE_SHAPE == (240, 240)
    assert ds.MODALITIES == ("t1", "t1ce", "t2", "flair")
    assert ds.X_DTYPE == np.float32 and ds.Y_DTYPE == np.uint8
    assert ds.X_ITEM_BYTES == 240 * 240 * 4 * 4
    assert ds.COURSE_X["train"] == "train_data_x.dat" and ds.SUBMISSION_FILE == "test_data_ypred.dat"
    assert ds.HD95_ONE_EMPTY == pytest.approx(339.41, abs=0.01)


def test_case_ids_are_positional_and_anonymous():
    ids = ds.case_ids("test", 3)
    assert list(ids) == ["test-0000", "test-0001", "test-0002"]
    with pytest.raises(ValueError):
        ds.case_ids("val", 2)


@pytest.mark.parametrize("n", [1, 2, 3, 29, 100])
def test_public_mask_is_seeded_and_about_a_third(n):
    a, b = ds.public_mask(n, 7), ds.public_mask(n, 7)
    assert np.array_equal(a, b) and a.dtype == bool and a.shape == (n,)
    assert a.sum() >= 1
    if n >= 2:
        assert (~a).sum() >= 1
    if n >= 29:
        assert abs(a.mean() - 1 / 3) < 0.05
        assert not np.array_equal(a, ds.public_mask(n, 8))


def test_course_layout_is_byte_compatible(tmp_path):
    x, y = make_slices(3)
    ds.write_course_array(tmp_path / "train_data_x.dat", x, "x")
    ds.write_course_array(tmp_path / "train_data_y.dat", y, "y")
    # Exactly what the course's own np.memmap(..., mode="w+") writes: raw C-order bytes.
    assert (tmp_path / "train_data_x.dat").read_bytes() == x.astype("<f4").tobytes()
    assert (tmp_path / "train_data_y.dat").read_bytes() == y.tobytes()
    split = ds.open_split(tmp_path, "train")
    assert split.layout == "course" and isinstance(split.x, np.memmap)
    assert np.array_equal(split.x, x) and np.array_equal(split.y, y)
    assert list(split.case_id) == ["train-0000", "train-0001", "train-0002"]


def test_course_size_not_a_multiple_is_a_clear_error(tmp_path):
    path = tmp_path / "train_data_x.dat"
    path.write_bytes(b"\0" * (ds.X_ITEM_BYTES + 5))
    with pytest.raises(ds.FileSizeError) as err:
        ds.read_course_array(path, "x")
    assert "train_data_x.dat" in str(err.value) and f"multiple of {ds.X_ITEM_BYTES}" in str(err.value)
    assert err.value.hint == "is the file truncated?"
    # Common mistakes get a hint: uint8 or float16 inputs.
    path.write_bytes(b"\0" * (ds.X_ITEM_BYTES * 3 // 4))
    with pytest.raises(ds.FileSizeError) as err:
        ds.read_course_array(path, "x")
    assert "3 slices of uint8" in err.value.hint
    path.write_bytes(b"\0" * (240 * 240 * 4 * 2 * 3))
    with pytest.raises(ds.FileSizeError) as err:
        ds.read_course_array(path, "x")
    assert "3 slices of float16" in err.value.hint
    ypath = tmp_path / "train_data_y.dat"
    ypath.write_bytes(b"\0" * (240 * 240 * 2 + 1))
    with pytest.raises(ds.FileSizeError):
        ds.read_course_array(ypath, "y")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ds.MissingFileError) as err:
        ds.read_course_array(tmp_path / "nope.dat", "x")
    assert "nope.dat" in str(err.value)
    with pytest.raises(ds.LayoutError) as err:
        ds.open_split(tmp_path, "train")
    assert "train.h5" in str(err.value) and "train_data_x.dat" in str(err.value)
    assert "brats-kit data synth" in str(err.value)


def test_hdf5_layout_roundtrip_is_lazy_and_checksummed(tmp_path):
    x, y = make_slices(4)
    path = tmp_path / "train.h5"
    ds.write_split_h5(path, x=x, y=y, case_id=ds.case_ids("train", 4), split="train", attrs={"seed": 3})
    split = ds.open_split(path, "train", verify=True)
    assert split.layout == "hdf5" and isinstance(split.x, ds.LazyH5Array)
    assert split.x.shape == (4, 240, 240, 4) and split.x.dtype == np.float32
    assert np.array_equal(split.x[2], x[2]) and np.array_equal(np.asarray(split.y), y)
    assert np.array_equal(split.x[np.array([3, 1])], x[[3, 1]])
    assert split.attrs["seed"] == 3 and split.attrs["modalities"] == "t1,t1ce,t2,flair"
    assert split.attrs["sha256_x"] == hashlib.sha256(x.tobytes()).hexdigest()
    with h5py.File(path) as f:
        assert f["x"].chunks == (1, 240, 240, 4)
        assert "y" in f and f["case_id"].shape == (4,)
    x_, y_, ids = split
    assert ids[0] == "train-0000"


def test_lazy_reading_does_not_load_the_split(tmp_path):
    import pickle
    import tracemalloc

    x, y = make_slices(16)
    path = tmp_path / "train.h5"
    ds.write_split_h5(path, x=x, y=y, case_id=ds.case_ids("train", 16), split="train")
    tracemalloc.start()
    split = ds.open_split(path, "train")
    one = split.x[5]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * ds.X_ITEM_BYTES  # far below the 16 slices of the split
    assert np.array_equal(one, x[5])
    clone = pickle.loads(pickle.dumps(split.x))
    assert np.array_equal(clone[1], x[1])


def test_hdf5_checksum_mismatch_is_detected(tmp_path):
    x, y = make_slices(2)
    path = tmp_path / "train.h5"
    ds.write_split_h5(path, x=x, y=y, case_id=ds.case_ids("train", 2), split="train")
    with h5py.File(path, "r+") as f:
        f["y"][0, 0, 0] = 1
    with pytest.raises(ds.CorruptFileError) as err:
        ds.open_split(path, "train", verify=True)
    assert "'y'" in str(err.value)


def test_not_hdf5_or_incomplete_hdf5_is_a_clear_error(tmp_path):
    bad = tmp_path / "train.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ds.CorruptFileError):
        ds.open_split(tmp_path, "train")
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros((1, 240, 240, 4), "f4")
    with pytest.raises(ds.CorruptFileError) as err:
        ds.open_split(bad, "train")
    assert "case_id" in str(err.value)


def test_write_competition_both_layouts_and_private_truth(competition):
    names = sorted(p.relative_to(competition).as_posix() for p in competition.rglob("*") if p.is_file())
    assert names == [
        "private/manifest.json",
        "private/test_data_y.dat",
        "private/test_truth.h5",
        "test.h5",
        "test_data_x.dat",
        "train.h5",
        "train_data_x.dat",
        "train_data_y.dat",
    ]
    course = ds.open_split(competition, "train", "course")
    canonical = ds.open_split(competition, "train", "hdf5")
    assert np.array_equal(course.x, np.asarray(canonical.x))
    assert list(course.case_id) == list(canonical.case_id)
    test = ds.open_split(competition, "test")
    assert test.y is None and len(test) == 6  # the student's test split holds no truth
    truth = ds.open_truth(competition)
    assert truth.layout == "hdf5" and truth.public.dtype == bool and truth.y.shape == (6, 240, 240)
    course_truth = ds.open_truth(competition / "private" / "test_data_y.dat")
    assert course_truth.public is None and np.array_equal(course_truth.y, np.asarray(truth.y))
    import json

    manifest = json.loads((competition / "private" / "manifest.json").read_text())
    assert manifest["files"]["train.h5"] == ds.sha256_file(competition / "train.h5")


def test_open_truth_refuses_the_students_test_file(competition):
    with pytest.raises(ds.LayoutError) as err:
        ds.open_truth(competition / "test.h5")
    assert "truth" in str(err.value)
    for name in ("test_data_x.dat", "train_data_x.dat", "train.h5"):
        with pytest.raises(ds.LayoutError, match="not a truth file"):
            ds.open_truth(competition / name)


def test_same_data_gives_byte_identical_hdf5(tmp_path):
    x, y = make_slices(2)
    digests = []
    for name in ("a.h5", "b.h5"):
        ds.write_split_h5(tmp_path / name, x=x, y=y, case_id=ds.case_ids("train", 2), split="train")
        digests.append(ds.sha256_file(tmp_path / name))
    assert digests[0] == digests[1]


def test_check_array_explains_common_mistakes():
    with pytest.raises(ds.ArrayContractError) as err:
        ds.check_array(np.zeros((240, 240, 3), np.uint8), "y")
    assert "first axis" in err.value.hint
    with pytest.raises(ds.ArrayContractError) as err:
        ds.check_array(np.full((1, 240, 240), 255, np.uint8), "y")
    assert err.value.hint == "divide by 255"
    assert ds.check_array(np.zeros((1, 240, 240), bool), "y").dtype == np.uint8


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.dat"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.dat"]


def test_atomic_dir_keeps_previous_site_on_failure(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(site) as tmp:
            (tmp / "index.html").write_text("v2-partial")
            raise RuntimeError("interrupted")
    assert (site / "index.html").read_text() == "v1"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v2")
    assert (site / "index.html").read_text() == "v2"
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_describe_summarises_a_competition(competition):
    from data_spec.summary import describe

    s = describe(competition)
    assert s["splits"]["train"]["n_slices"] == 12 and s["splits"]["test"]["n_slices"] == 6
    assert s["splits"]["train"]["layouts_available"] == ["course", "hdf5"]
    assert 0 < s["splits"]["train"]["tumour_fraction_of_foreground"] < 0.2
    assert s["test_truth"]["public_cases"] + s["test_truth"]["private_cases"] == 6
    assert set(s["splits"]["train"]["modalities"]) == set(ds.MODALITIES)


def test_hdf5_storage_matches_the_spec_and_byte_order_is_little_endian(tmp_path):
    x, y = make_slices(2)
    path = ds.write_split_h5(
        tmp_path / "train.h5", x=x.astype(">f4"), y=y, case_id=ds.case_ids("train", 2), split="train"
    )
    with h5py.File(path) as f:
        assert f["x"].compression == "gzip" and f["x"].shuffle
        assert f["y"].compression is None and f["y"].chunks == (1, 240, 240)
        assert f["x"].dtype == np.dtype("<f4")
    ds.write_course_array(tmp_path / "train_data_x.dat", x.astype(">f4"), "x")
    assert (tmp_path / "train_data_x.dat").read_bytes() == x.astype("<f4").tobytes()


def test_lazy_arrays_accept_lists_in_any_order_like_a_memmap(competition):
    lazy = ds.open_split(competition, "train", "hdf5").x
    mm = ds.open_split(competition, "train", "course").x
    assert np.array_equal(lazy[[3, 1]], mm[[3, 1]])


def test_a_course_file_names_its_split(competition):
    split = ds.open_split(competition / "test_data_x.dat")
    assert split.case_id[0] == "test-0000" and len(split) == 6 and split.y is None


def test_write_competition_is_all_or_nothing(tmp_path, monkeypatch):
    import data_spec.layout as layout

    x, y = make_slices(3)
    parts = dict(
        train={"x": x, "y": y, "case_id": ds.case_ids("train", 3)},
        test={"x": x[:2], "y": y[:2], "case_id": ds.case_ids("test", 2), "public": ds.public_mask(2, 0)},
        attrs={"seed": 0},
    )
    out = tmp_path / "comp"
    ds.write_competition(out, **parts)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(layout, "write_course_array", fail)  # after the HDF5 files were staged
    changed = dict(parts, attrs={"seed": 1})
    with pytest.raises(OSError):
        ds.write_competition(out, **changed, force=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in out.iterdir()) == sorted({str(k).split("/")[0] for k in before})


def test_atomic_dir_restores_the_previous_site_when_the_swap_fails(tmp_path, monkeypatch):
    import plumbing.atomic as atomic

    site = tmp_path / "site"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v1")
    real = os.replace
    failures = []

    def flaky(src, dst):
        if Path(dst) == site and not failures:  # the new site's rename fails once
            failures.append(src)
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the two-rename fallback
    with pytest.raises(OSError):
        with atomic_dir(site) as tmp:
            (tmp / "index.html").write_text("v2")
    monkeypatch.setattr(atomic.os, "replace", real)
    assert (site / "index.html").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_foreground_rule_is_the_contracts():
    x, _ = make_slices(2)
    fg = ds.foreground_mask(x)
    assert fg.shape == (2, 240, 240)
    # The course's rule: every modality above its slice minimum; "any" only when named.
    assert np.array_equal(fg[1], (x[1] > x[1].min(axis=(0, 1))).all(axis=-1))
    assert np.array_equal(ds.foreground_mask(x, "any")[1], (x[1] > x[1].min(axis=(0, 1))).any(axis=-1))
    with pytest.raises(ds.KitError):
        ds.foreground_mask(x, "most")
    with pytest.raises(ds.ArrayContractError) as err:
        ds.check_array(np.zeros((240, 240, 4), np.float32), "x")
    assert err.value.hint == "add a slice axis: array[None]"
