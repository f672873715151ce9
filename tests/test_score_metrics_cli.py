"""`brats-kit score --metrics`, the report's extra columns, and what the command line imports before it needs it."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from data_spec import BadArgumentError, open_truth
from data_spec.submission import write_submission
from grader import grade, score

NEW = ["lesion_dice", "lesion_hd95", "nsd"]


@pytest.fixture(scope="module")
def submission(competition, tmp_path_factory):
    y = np.asarray(open_truth(competition / "private").y)
    p = y.copy()
    p[0] = np.roll(p[0], 3, axis=1)
    p[1] = 0
    p[2, 5:12, 5:12] = 1
    path = write_submission(tmp_path_factory.mktemp("metrics") / "test_data_ypred.dat", p)
    return {"y": y, "p": p, "path": path}


def test_grade_with_metrics_reports_exactly_those_and_agrees_with_score(competition, submission):
    result = grade(submission["path"], competition, metrics="dice," + ",".join(NEW))
    assert set(result) == {"status", "errors", "phase", "n_slices", "dice"} | set(NEW)
    expected = score(submission["y"], submission["p"], metrics=["dice"] + NEW)
    for name in ["dice"] + NEW:
        assert result[name] == pytest.approx(expected[name])
    assert 0 <= result["lesion_dice"] <= 1 and 0 <= result["nsd"] <= 1 and result["lesion_hd95"] >= 0
    default = grade(submission["path"], competition)
    assert not set(NEW) & set(default) and "f1" in default  # unchanged without --metrics


def test_an_unknown_metric_fails_before_the_submission_is_read(competition, tmp_path):
    with pytest.raises(BadArgumentError):
        grade(tmp_path / "does-not-exist.dat", competition, metrics="dice,lesion_f1")


def test_cli_metrics_json_and_table(competition, submission):
    runner = CliRunner()
    args = ["score", str(submission["path"]), "--truth", str(competition / "private")]
    out = runner.invoke(main, args + ["--metrics", "dice,lesion_dice,lesion_hd95,nsd", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["status"] == "scored" and {"dice", *NEW} <= set(body) and "f1" not in body
    table = runner.invoke(main, args + ["--metrics", "lesion_dice,nsd"])
    assert table.exit_code == 0 and "lesion-wise Dice" in table.stdout and "NSD, 1 px" in table.stdout


@pytest.mark.parametrize("bad", ["dice,bogus", "", "\x1b[31mred", "a" * 5000])
def test_cli_bad_metrics_exit_1_with_one_line_and_no_traceback(competition, submission, bad):
    out = CliRunner().invoke(main, ["score", str(submission["path"]), "--truth", str(competition / "private"),
                                    "--metrics", bad])
    assert out.exit_code == 1
    assert "Traceback" not in out.output and "\x1b" not in out.output and len(out.output) < 1000
    assert "unknown metric" in out.output


def test_report_csv_gains_a_column_per_mask_metric(competition, submission, tmp_path):
    result = grade(submission["path"], competition, metrics="dice,nsd,lesion_dice", report_dir=tmp_path / "r")
    with open(result["report"]["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-2:] == ["lesion_dice", "nsd"]  # after case_id, public, tp, fp, fn, dice, hd95
    assert float(rows[1]["lesion_dice"]) == 0.0 and float(rows[1]["nsd"]) == 0.0  # slice 1: tumour missed
    plain = grade(submission["path"], competition, report_dir=tmp_path / "plain")
    with open(plain["report"]["csv"], newline="") as fh:
        assert next(csv.reader(fh))[-1] == "hd95"


def _modules_after(statement: str) -> set:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_the_command_line_loads_numpy_only_when_a_command_needs_it():
    assert not _modules_after("import brats_kit.cli") & {"numpy", "h5py", "scipy", "data_spec", "grader"}


def test_grading_loads_no_scipy_until_a_mask_score_is_asked_for():
    assert "scipy" not in _modules_after("import grader.grade, grader.metrics, grader.report")


def test_a_kit_error_still_exits_1_after_the_lazy_import(tmp_path):
    out = CliRunner().invoke(main, ["score", str(tmp_path / "x.dat"), "--truth", str(tmp_path)])
    assert out.exit_code == 1 and out.output.startswith("error:")
