"""``brats-kit code run``: the student's run at home, the grader's sandbox and limits, a normal submission file."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from data_spec.layout import open_split
from grader.code import Limits, grade_code, sandbox_problem
from grader.validate import check_submission
from data_spec.truth import load_truth

PROBLEM = sandbox_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")

THRESHOLD = """
import numpy as np

def predict(x):
    return (x[..., 3] > 1.0).astype(np.uint8)
"""


def code(tmp_path, body, name="code"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "submission.py").write_text(body)
    return folder


def test_code_run_writes_a_valid_submission_equal_to_bare_predict(tmp_path, competition):
    out = tmp_path / "test_data_ypred.dat"
    result = CliRunner().invoke(main, ["code", "run", str(code(tmp_path, THRESHOLD)), "--data", str(competition),
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["status"] == "valid" and record["out"] == str(out)
    assert check_submission(out, competition).ok
    x = np.asarray(open_split(competition, "test").x)
    assert out.read_bytes() == (x[..., 3] > 1.0).astype(np.uint8).tobytes()


def test_code_run_scores_as_the_grader_does(tmp_path, competition):
    folder = code(tmp_path, THRESHOLD)
    out = tmp_path / "pred.dat"
    CliRunner().invoke(main, ["code", "run", str(folder), "--data", str(competition), "--out", str(out)])
    truth = load_truth(competition / "private")
    x = np.asarray(open_split(competition, "test").x)
    run, verdict = grade_code(folder, x, truth)
    from grader.scoring import evaluate

    assert run.status == "ok" and verdict.counts is not None
    at_home = evaluate(out, truth)
    assert verdict.status == at_home.status == "scored"
    assert verdict.counts.scores("all") == at_home.counts.scores("all")


@pytest.mark.parametrize("body, status, failure, extra", [
    ("def predict(x):\n    raise ValueError('boom')\n", "failed", "crashed", []),
    ("import time\ndef predict(x):\n    time.sleep(60)\n", "failed", "timeout", ["--time-limit", "2"]),
    ("def predict(x):\n    return x[..., 0]\n", "invalid", None, []),
])
def test_code_run_failures_exit_1_with_their_class(tmp_path, competition, body, status, failure, extra):
    out = tmp_path / "pred.dat"
    result = CliRunner().invoke(main, ["code", "run", str(code(tmp_path, body)), "--data", str(competition),
                                       "--out", str(out), "--json"] + extra)
    assert result.exit_code == 1, result.output
    record = json.loads(result.output)
    assert (record["status"], record.get("failure")) == (status, failure)
    assert not out.exists()
    if status == "invalid":
        assert {e["code"] for e in record["errors"]} >= {"bad_values"}


def test_code_run_refuses_bad_input_with_named_errors(tmp_path, competition):
    runner = CliRunner()
    no_module = tmp_path / "empty"
    no_module.mkdir()
    result = runner.invoke(main, ["code", "run", str(no_module), "--data", str(competition), "--out",
                                  str(tmp_path / "p.dat")])
    assert result.exit_code == 1 and "submission.py" in result.output
    truth = competition / "private" / "test_data_y.dat"
    result = runner.invoke(main, ["code", "run", str(code(tmp_path, THRESHOLD)), "--data", str(competition),
                                  "--out", str(truth)])
    assert result.exit_code == 1
    result = runner.invoke(main, ["code", "run", str(no_module), "--data", str(competition), "--out",
                                  str(tmp_path / "p.dat"), "--memory-mb", "10"])
    assert result.exit_code == 2


def test_grade_code_refuses_inputs_of_other_slices(tmp_path, competition):
    from data_spec import LayoutError

    truth = load_truth(competition / "private")
    x = np.asarray(open_split(competition, "test").x)[:-1]
    with pytest.raises(LayoutError, match="input slices"):
        grade_code(code(tmp_path, THRESHOLD), x, truth)


def test_limits_are_checked():
    with pytest.raises(ValueError, match="time limit"):
        Limits(time_limit=0)
