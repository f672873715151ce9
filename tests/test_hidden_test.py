"""The code track's hidden test slices: private only, deterministic, invisible in every public file."""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from cohorts.synth import ReproducibleSeedWarning, write_synthetic_competition
from data_spec import (
    HIDDEN_H5,
    MANIFEST_FILE,
    PRIVATE_DIR,
    LayoutError,
    MissingFileError,
    load_hidden_truth,
    open_hidden,
    open_split,
)

SEED, K = 1234567, 3


def _write(out, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReproducibleSeedWarning)
        return write_synthetic_competition(out, n_train=2, n_test=3, **kwargs)


def _tree(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("hidden")
    _write(root / "k0", seed=SEED)
    _write(root / "k3", seed=SEED, n_hidden=K)
    return root / "k0", root / "k3"


def test_k0_leaves_every_file_as_without_the_option(builds):
    k0, k3 = builds
    plain, hidden = _tree(k0), _tree(k3)
    assert set(hidden) - set(plain) == {f"{PRIVATE_DIR}/{HIDDEN_H5}"}
    for name, data in plain.items():
        if name != f"{PRIVATE_DIR}/{MANIFEST_FILE}":
            assert hidden[name] == data, name  # the hidden slices take nothing from the others' streams
    manifest = json.loads(plain[f"{PRIVATE_DIR}/{MANIFEST_FILE}"])
    assert "n_hidden" not in manifest and not any(c.startswith("hidden") for c in manifest["cases"])
    full = json.loads(hidden[f"{PRIVATE_DIR}/{MANIFEST_FILE}"])
    assert full["n_hidden"] == K and f"{PRIVATE_DIR}/{HIDDEN_H5}" in full["files"]


def test_hidden_slices_are_read_with_their_truth(builds):
    _, k3 = builds
    split = open_hidden(k3)
    truth = load_hidden_truth(k3 / PRIVATE_DIR)
    assert np.asarray(split.x).shape == (K, 240, 240, 4)
    assert list(truth.case_id) == [f"hidden-{i:04d}" for i in range(K)]
    assert truth.has_flags and truth.public.any() and not truth.public.all()
    np.testing.assert_array_equal(truth.y, np.asarray(split.y))
    assert truth.y.sum() > 0  # tumours, as the test slices have


def test_no_public_file_reveals_the_hidden_slices(builds):
    _, k3 = builds
    split = open_hidden(k3)
    x0 = np.asarray(split.x[0]).tobytes()
    needles = [b"hidden", HIDDEN_H5.encode(), str(SEED).encode(), f"{SEED:x}".encode(), x0[120 * 960:121 * 960],
               hashlib.sha256(x0).hexdigest().encode()]
    for path in k3.iterdir():
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, (path.name, needle[:20])
    test = open_split(k3, "test")
    assert len(test) == 3 and "n_hidden" not in test.attrs


def test_same_seed_same_hidden_bytes_other_seed_differs(builds, tmp_path):
    _, k3 = builds
    _write(tmp_path / "again", seed=SEED, n_hidden=K)
    _write(tmp_path / "other", seed=SEED + 1, n_hidden=K)
    name = f"{PRIVATE_DIR}/{HIDDEN_H5}"
    assert _tree(tmp_path / "again")[name] == _tree(k3)[name]
    assert _tree(tmp_path / "other")[name] != _tree(k3)[name]


def test_rebuild_without_hidden_removes_the_stale_file(builds, tmp_path):
    out = tmp_path / "c"
    _write(out, seed=SEED, n_hidden=1)
    _write(out, seed=SEED, force=True)
    assert not (out / PRIVATE_DIR / HIDDEN_H5).exists()


def test_readers_name_what_is_missing(builds):
    k0, k3 = builds
    with pytest.raises(MissingFileError, match="hidden-test"):
        open_hidden(k0)
    with pytest.raises(LayoutError, match="not a hidden test file"):
        open_hidden(k3 / "test.h5")


def test_cli_synth_hidden_test(tmp_path):
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "c"), "--train", "1", "--test", "2",
                                       "--seed", "5", "--hidden-test", "2", "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.output[result.output.index("{"):])["files"]
    assert f"{PRIVATE_DIR}/{HIDDEN_H5}" in files
    assert len(open_hidden(tmp_path / "c")) == 2
    bad = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "d"), "--hidden-test", "-1"])
    assert bad.exit_code == 2


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from test_prepare import make_brats2018

    root = tmp_path_factory.mktemp("release") / "MICCAI_BraTS_2018_Data_Training"
    make_brats2018(root, broken=False)
    return root


def test_prepare_hidden_test_takes_the_next_patients_privately(release, tmp_path):
    from cohorts.prepare import prepare_competition

    quiet = {"warn": lambda message: None, "seed": 3, "n_train": 2, "n_test": 2}
    prepare_competition(release, tmp_path / "k0", **quiet)
    summary = prepare_competition(release, tmp_path / "k1", n_hidden=1, **quiet)
    plain, hidden = _tree(tmp_path / "k0"), _tree(tmp_path / "k1")
    assert set(hidden) - set(plain) == {f"{PRIVATE_DIR}/{HIDDEN_H5}"} and summary.hidden == 1
    assert all(hidden[n] == d for n, d in plain.items() if n != f"{PRIVATE_DIR}/{MANIFEST_FILE}")
    manifest = json.loads(hidden[f"{PRIVATE_DIR}/{MANIFEST_FILE}"])
    source_case = manifest["hidden"][0]
    assert source_case["case_id"] == "hidden-0000"
    used = {r["case_id"] for r in manifest["train"] + manifest["test"]}
    assert "hidden-0000" not in used and "--hidden-test 1" in manifest["command"]
    assert "hidden" not in json.loads(plain[f"{PRIVATE_DIR}/{MANIFEST_FILE}"])
    truth = load_hidden_truth(tmp_path / "k1")
    assert len(truth) == 1 and truth.y.sum() > 0
    for path in (tmp_path / "k1").iterdir():
        if path.is_file():
            assert b"hidden" not in path.read_bytes()


def test_prepare_cli_refuses_more_hidden_slices_than_patients(release, tmp_path):
    result = CliRunner().invoke(main, ["data", "prepare", str(release), "--out", str(tmp_path / "c"), "--train", "2",
                                       "--test", "2", "--hidden-test", "5", "--seed", "1"])
    assert result.exit_code == 1 and "hidden" in result.output
    assert not (tmp_path / "c" / PRIVATE_DIR).exists()


def test_a_code_submission_is_scored_on_the_hidden_slices_like_bare_predict(builds, tmp_path):
    from grader.code import grade_code, sandbox_problem
    from grader.scoring import evaluate

    if sandbox_problem():
        pytest.skip(f"no sandbox on this machine: {sandbox_problem()}")
    _, k3 = builds
    code = tmp_path / "code"
    code.mkdir()
    (code / "submission.py").write_text("import numpy as np\n\ndef predict(x):\n"
                                        "    return (x[..., 3] > 1.5).astype(np.uint8)\n")
    x = np.asarray(open_hidden(k3).x)
    truth = load_hidden_truth(k3)
    run, verdict = grade_code(code, x, truth)
    assert run.status == "ok" and verdict.status == "scored"
    bare = evaluate((x[..., 3] > 1.5).astype(np.uint8), truth)
    assert verdict.counts.scores("public") == bare.counts.scores("public")
