"""Grading end to end: library and CLI, both truth formats, public-only, report, exit codes and JSON."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from data_spec import LayoutError, case_ids, open_split, open_truth, write_split_h5
from data_spec.submission import write_submission
from grader import NoPhaseFlagsError, grade, score
from grader.scoring import evaluate
from data_spec import load_truth

SCORE_KEYS = {"f1", "dice", "precision", "recall", "dice_tumour_slices", "empty_slices_correct", "n_slices"}


def _cli():
    """The root command, as installed."""
    assert {"score", "validate"} <= set(main.commands)
    return main


@pytest.fixture(scope="module")
def graded(competition, tmp_path_factory):
    """The test truth of the shared competition, and a prediction with every kind of mistake."""
    tmp = tmp_path_factory.mktemp("graded")
    y = np.asarray(open_truth(competition / "private").y)
    p = y.copy()
    p[0] = np.roll(p[0], 4, axis=1)  # shifted
    p[1] = 0  # missed
    p[3, 10:20, 10:20] = 1  # invented on a tumour-free slice
    subs = {
        "dat": write_submission(tmp / "test_data_ypred.dat", p),
        "npy": write_submission(tmp / "sub.npy", p),
        "hdf5": write_submission(tmp / "sub.h5", p, case_id=open_split(competition, "test").case_id),
    }
    return {"y": y, "p": p, "subs": subs, "tmp": tmp}


@pytest.mark.parametrize("fmt", ["dat", "npy", "hdf5"])
@pytest.mark.parametrize("truth", ["private/test_truth.h5", "private/test_data_y.dat", "private", "."])
def test_every_format_and_truth_form_gives_the_same_scores(competition, graded, fmt, truth):
    result = grade(graded["subs"][fmt], competition / truth)
    expected = score(graded["y"], graded["p"])
    assert result["status"] == "scored" and result["errors"] == []
    assert SCORE_KEYS <= set(result)
    for key in SCORE_KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-12)
    assert 0 < result["f1"] < 1 and result["n_slices"] == 6


def test_a_loaded_truth_can_be_reused(competition, graded):
    truth = load_truth(competition / "private" / "test_truth.h5")
    assert grade(graded["subs"]["npy"], truth) == grade(graded["subs"]["npy"], competition)
    again = evaluate(graded["subs"]["dat"], load_truth(competition)).counts
    np.testing.assert_array_equal(evaluate(graded["subs"]["dat"], truth).counts.tp, again.tp)


def test_hd95_only_when_asked(competition, graded):
    assert "hd95" not in grade(graded["subs"]["dat"], competition)
    result = grade(graded["subs"]["dat"], competition, hd95=True)
    assert result["hd95"] == pytest.approx(score(graded["y"], graded["p"], hd95=True)["hd95"])


def test_invalid_submission_is_reported_not_raised(competition, graded):
    bad = graded["tmp"] / "bad.npy"
    np.save(bad, graded["p"].astype(np.float32) * 0.9)
    result = grade(bad, competition)
    assert result["status"] == "invalid"
    assert [e["code"] for e in result["errors"]] == ["bad_dtype", "bad_values"]
    assert "f1" not in result


def test_in_memory_arrays_are_graded_too(competition, graded):
    assert grade(graded["p"].astype(bool), competition)["f1"] == grade(graded["subs"]["dat"], competition)["f1"]
    assert grade(graded["p"][:2], competition)["status"] == "invalid"


def test_evaluate_counts_what_the_leaderboard_needs(competition, graded):
    counts = evaluate(graded["subs"]["hdf5"], load_truth(competition / "private" / "test_truth.h5")).counts
    assert counts.tp.shape == counts.fp.shape == counts.fn.shape == (6,)
    np.testing.assert_array_equal(counts.case_id, open_split(competition, "test").case_id)
    assert counts.public is not None and counts.public.dtype == bool
    assert counts.scores()["f1"] == pytest.approx(score(graded["y"], graded["p"])["f1"])
    public = counts.public
    assert counts.scores("public")["dice"] == pytest.approx(score(graded["y"][public], graded["p"][public])["dice"])
    assert counts.scores("private")["n_slices"] == int((~public).sum())
    verdict = evaluate(graded["tmp"] / "missing.dat", load_truth(competition))
    assert not verdict.ok and verdict.counts is None
    assert [e.code for e in verdict.errors] == ["missing_file"]


def test_public_only_scores_the_public_cases(competition, graded):
    truth = load_truth(competition)
    public = truth.public
    assert 0 < public.sum() < 6
    result = grade(graded["subs"]["dat"], competition, public_only=True)
    expected = score(graded["y"][public], graded["p"][public])
    assert result["n_slices"] == int(public.sum()) and result["phase"] == "public"
    assert result["dice"] == pytest.approx(expected["dice"])


def test_public_only_without_phase_flags_is_a_clear_error(competition, graded):
    with pytest.raises(NoPhaseFlagsError, match="no phase flags"):
        grade(graded["subs"]["dat"], competition / "private" / "test_data_y.dat", public_only=True)


def test_public_only_on_a_truth_without_public_cases_is_an_error_not_a_perfect_score(tmp_path):
    y = np.zeros((3, 240, 240), dtype=np.uint8)
    y[0, 10:20, 10:20] = 1
    truth = write_split_h5(tmp_path / "private" / "test_truth.h5", y=y, case_id=case_ids("test", 3),
                           public=[False] * 3, split="test")
    empty = write_submission(tmp_path / "sub.dat", np.zeros_like(y))
    assert grade(empty, truth)["f1"] == 0.0
    with pytest.raises(LayoutError, match="no test case public"):
        grade(empty, truth, public_only=True)
    with pytest.raises(LayoutError, match="no test case public"):
        evaluate(empty, load_truth(truth)).counts.scores("public")
    assert evaluate(empty, load_truth(truth)).counts.scores("private")["n_slices"] == 3
    out = CliRunner().invoke(_cli(), ["score", str(empty), "--truth", str(truth), "--public-only", "--json"])
    assert out.exit_code == 1 and out.stdout == "" and "no test case public" in out.stderr


def test_report_writes_csv_and_montage(competition, graded, tmp_path):
    result = grade(graded["subs"]["dat"], competition, report_dir=tmp_path / "report")
    report = result["report"]
    assert report["inputs"] is True and report["note"] is None
    rows = list(csv.DictReader(open(report["csv"])))
    assert [r["case_id"] for r in rows] == list(open_split(competition, "test").case_id)
    assert set(rows[0]) == {"case_id", "public", "tp", "fp", "fn", "dice", "hd95"}
    assert float(rows[1]["dice"]) == 0.0 and float(rows[1]["hd95"]) == pytest.approx(339.411, abs=1e-3)
    assert int(rows[3]["fp"]) == 100
    with open(report["png"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.startswith(".")]  # no temp left


def test_report_public_only_leaves_out_every_private_case(competition, graded, tmp_path):
    truth = load_truth(competition)
    result = grade(graded["subs"]["dat"], competition, report_dir=tmp_path, public_only=True)
    rows = list(csv.DictReader(open(result["report"]["csv"])))
    assert [r["case_id"] for r in rows] == list(truth.case_id[truth.public])
    assert all(r["public"] == "1" for r in rows)


def test_report_without_inputs_says_so(competition, graded, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(competition / "private" / "test_data_y.dat", alone / "test_data_y.dat")
    result = grade(graded["subs"]["dat"], alone / "test_data_y.dat", report_dir=tmp_path / "r")
    assert result["report"]["inputs"] is False and "masks only" in result["report"]["note"]
    rows = list(csv.DictReader(open(result["report"]["csv"])))
    assert "public" not in rows[0]
    explicit = grade(graded["subs"]["dat"], alone / "test_data_y.dat", report_dir=tmp_path / "r2", data=competition)
    assert explicit["report"]["inputs"] is True


# ---------------------------------------------------------------- the CLI


def test_cli_validate(competition, graded):
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["validate", str(graded["subs"]["dat"]), "--data", str(competition), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "valid"
    human = runner.invoke(_cli(), ["validate", str(graded["subs"]["npy"]), "--data", str(competition)])
    assert human.exit_code == 0 and human.stdout.startswith("valid")
    bad = graded["tmp"] / "255.dat"
    (graded["p"] * 255).tofile(bad)
    out = runner.invoke(_cli(), ["validate", str(bad), "--data", str(competition), "--json"])
    assert out.exit_code == 1
    body = json.loads(out.stdout)
    assert body["status"] == "invalid" and body["errors"][0]["code"] == "bad_values"
    assert "divide by 255" in body["errors"][0]["hint"]
    human = runner.invoke(_cli(), ["validate", str(bad), "--data", str(competition)])
    assert human.exit_code == 1 and "[bad_values]" in human.stdout and "hint:" in human.stdout


def test_cli_score_json_is_one_object(competition, graded):
    runner = CliRunner()
    args = ["score", str(graded["subs"]["hdf5"]), "--truth", str(competition / "private" / "test_truth.h5")]
    out = runner.invoke(_cli(), args + ["--json", "--hd95"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)  # the whole of stdout is one JSON object
    assert body["status"] == "scored" and SCORE_KEYS | {"hd95", "errors"} <= set(body)
    human = runner.invoke(_cli(), args)
    assert human.exit_code == 0 and "pixel F1" in human.stdout and "mean Dice" in human.stdout


def test_cli_score_exit_codes_and_no_traceback(competition, graded, tmp_path):
    runner = CliRunner()
    truth = str(competition / "private" / "test_data_y.dat")
    link = tmp_path / "link.dat"
    link.symlink_to(truth)
    out = runner.invoke(_cli(), ["score", str(link), "--truth", truth, "--json"])
    assert out.exit_code == 1
    body = json.loads(out.stdout)
    assert body["status"] == "invalid" and body["errors"][0]["code"] == "unsafe_file"
    flags = runner.invoke(_cli(), ["score", str(graded["subs"]["dat"]), "--truth", truth, "--public-only"])
    assert flags.exit_code == 1 and "no phase flags" in flags.stderr and flags.stdout == ""
    usage = runner.invoke(_cli(), ["score", str(graded["subs"]["dat"])])
    assert usage.exit_code == 2
    for result in (out, flags, usage):
        assert "Traceback" not in result.output


def test_cli_score_report(competition, graded, tmp_path):
    runner = CliRunner()
    out = runner.invoke(_cli(), ["score", str(graded["subs"]["dat"]), "--truth", str(competition),
                                 "--report", str(tmp_path / "rep"), "--public-only", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert (tmp_path / "rep" / "per_slice.csv").is_file() and (tmp_path / "rep" / "worst_slices.png").is_file()
    assert body["phase"] == "public"
