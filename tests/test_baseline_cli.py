"""``brats-kit baseline``: list, train, predict, compare, on the tiny competition of conftest."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import data_spec as ds
from baselines.compare import compare_baselines, format_table
from baselines.registry import BASELINES
from baselines.train import predict_submission, train_baseline
from brats_kit.cli import main as cli
from grader import score


def run(*args):
    return CliRunner().invoke(cli, ["baseline", *map(str, args)])


@pytest.fixture(scope="module")
def model(competition, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "flair.skops"
    result = run("train", "flair-threshold", "--data", competition, "--out", out, "--seed", "0")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_list_names_every_baseline():
    result = run("list")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(BASELINES)
    as_json = json.loads(run("list", "--json").output)
    assert [b["name"] for b in as_json] == list(BASELINES) and all(b["summary"] for b in as_json)


def test_train_prints_the_reports_and_writes_a_model(model):
    out, output = model
    assert out.is_file()
    for text in ("classification report", "precision", "recall", "confusion matrix", "validation (grader)", "Dice"):
        assert text in output


def test_train_json_scores_are_the_graders(competition, tmp_path):
    result = run("train", "mlp-pixel", "--data", competition, "--out", tmp_path / "m.skops", "--json",
                 "--val-fraction", "0.25")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_train"] == 9 and summary["n_val"] == 3
    v = summary["validation"]
    assert v["scores"]["dice"] >= summary["validation_raw"]["scores"]["dice"]
    # the same numbers as the grader's score on the saved model's validation predictions
    from baselines.model_file import load_model

    payload = load_model(tmp_path / "m.skops")
    split = ds.open_split(competition, "train")
    rows = [int(c.split("-")[1]) for c in payload["metrics"]["val_cases"]]
    y_pred = payload["estimator"].predict(np.asarray(split.x)[rows])
    y_val = np.asarray(split.y)[rows]
    assert score(y_val, y_pred)["dice"] == pytest.approx(v["scores"]["dice"])
    # the confusion matrix counts the validation pixels, and the pixel F1 follows from it
    (tn, fp), (fn, tp) = v["confusion"]
    assert tp + fn == int(y_val.sum()) and tp == int((y_pred.astype(bool) & (y_val == 1)).sum())
    assert v["scores"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


@pytest.mark.parametrize("name, fmt", [("test_data_ypred.dat", "dat"), ("sub.npy", "npy"), ("sub.h5", "hdf5")])
def test_predict_writes_a_valid_submission(model, competition, tmp_path, name, fmt):
    from grader import validate_submission

    out = tmp_path / name
    result = run("predict", model[0], "--data", competition, "--out", out)
    assert result.exit_code == 0, result.output
    assert "passes the grader's validation" in result.output
    check = validate_submission(out, n_slices=6, case_ids=ds.case_ids("test", 6))
    assert check.ok and check.format == fmt and check.y_pred.shape == (6, 240, 240)


def test_same_seed_same_bytes(competition, tmp_path):
    for i in (1, 2):
        assert run("train", "mlp-pixel", "--data", competition, "--out", tmp_path / f"m{i}.skops").exit_code == 0
        assert run("predict", tmp_path / f"m{i}.skops", "--data", competition, "--out", tmp_path / f"s{i}.dat").exit_code == 0
    assert (tmp_path / "m1.skops").read_bytes() == (tmp_path / "m2.skops").read_bytes()
    assert (tmp_path / "s1.dat").read_bytes() == (tmp_path / "s2.dat").read_bytes()


def test_predict_reads_either_layout(model, competition, tmp_path):
    from baselines.model_file import load_model

    a = predict_submission(model[0], competition, tmp_path / "a.npy")
    b = predict_submission(model[0], competition / ds.COURSE_X["test"], tmp_path / "b.npy")
    assert a["format"] == "npy" and a["n_slices"] == b["n_slices"] == 6
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    expected = load_model(model[0])["estimator"].predict(ds.open_split(competition, "test").x)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)


def test_train_reads_both_layouts_identically(competition):
    course = train_baseline("flair-threshold", competition / ds.COURSE_X["train"], seed=3)
    hdf5 = train_baseline("flair-threshold", competition / ds.H5_FILES["train"], seed=3)
    assert course["val_cases"] == hdf5["val_cases"]
    assert course["validation"]["scores"] == hdf5["validation"]["scores"]


def test_bad_inputs_exit_1_with_one_line(competition, tmp_path):
    missing = run("predict", tmp_path / "nope.skops", "--data", competition, "--out", tmp_path / "s.dat")
    assert missing.exit_code == 1 and "model file not found" in missing.output
    (tmp_path / "junk.joblib").write_bytes(b"junk")
    junk = run("predict", tmp_path / "junk.joblib", "--data", competition, "--out", tmp_path / "s.dat")
    assert junk.exit_code == 1 and "model file" in junk.output and "Traceback" not in junk.output
    unknown = run("train", "deep-unet", "--data", competition, "--out", tmp_path / "m.skops")
    assert unknown.exit_code == 1 and "baseline list" in unknown.output
    assert not (tmp_path / "s.dat").exists() and not (tmp_path / "m.skops").exists()
    assert run("train", "mlp-pixel", "--data", competition, "--out", "m", "--val-fraction", "1.5").exit_code == 2


def test_compare_in_process_table_and_json(competition):
    result = run("compare", "--data", competition, "--truth", competition, "--only", "flair-threshold",
                 "--only", "gmm", "--in-process", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["name"] for r in rows] == ["flair-threshold", "gmm"]
    truth = ds.load_truth(competition)
    empty = score(truth.y, np.zeros_like(truth.y))
    for r in rows:
        assert r["val_dice"] >= r["val_dice_raw"] and r["peak_mb"] is None
        # a trained model finds the tumours: it beats handing in empty masks on the test set
        assert r["test_dice"] > empty["dice"] + 0.2 and r["test_f1"] > empty["f1"] + 0.2
    table = format_table(json.loads(result.stdout))
    assert "flair-threshold" in table and "test Dice" in table


def test_compare_isolated_measures_peak_memory(competition):
    result = compare_baselines(competition, names=["flair-threshold"], isolate=True)
    (row,) = result["rows"]
    assert row["peak_mb"] > 10 and row["test_f1"] is None
    assert "ru_maxrss" in result["memory"]


def test_compare_checks_the_truth_before_training(competition, tmp_path):
    wrong = tmp_path / "truth"
    wrong.mkdir()
    ds.write_course_array(wrong / ds.COURSE_Y["test"], np.zeros((4, 240, 240), np.uint8), "y")
    result = run("compare", "--data", competition, "--truth", wrong, "--in-process")
    assert result.exit_code == 1 and "does not match the test split" in result.output
