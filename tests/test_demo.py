"""``brats-kit demo --quick`` plays the whole course and says where everything is."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.demo import QUICK_BASELINES, TEAMS, team_models
from data_spec import load_truth
from grader import score


def read_submission(path):
    """A course submission file: raw uint8 slices of 240 x 240."""
    return np.fromfile(path, dtype=np.uint8).reshape(-1, 240, 240)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_demo_writes_data_baselines_class_sites_report_and_figures(demo_run):
    out, summary = demo_run
    competition = out / "competition"
    assert (competition / "train.h5").is_file() and (competition / "private" / "test_truth.h5").is_file()
    assert set(summary["baselines"]) == set(QUICK_BASELINES)
    for name, row in summary["baselines"].items():
        assert (out / "baselines" / name / "test_data_ypred.dat").stat().st_size == 10 * 240 * 240
    # The report's best baseline is the one that scored best on validation.
    validation = {name: row["validation"]["dice"] for name, row in summary["baselines"].items()}
    assert summary["best_baseline"] == max(validation, key=validation.get)
    for site in ("site", "site-final"):
        for name in ("index.html", "leaderboard.csv", "leaderboard.md", "grades.csv"):
            assert (out / site / name).is_file()
    assert summary["leaderboard"]["phase"] == "public" and summary["leaderboard_final"]["phase"] == "private"
    report = summary["report"]
    assert report["status"] == "scored" and "hd95" in report
    # The grader's report is the grader's score of that submission, recomputed here on the whole test set.
    truth = load_truth(competition)
    best = read_submission(out / "baselines" / summary["best_baseline"] / "test_data_ypred.dat")
    expected = score(truth.y, best, hd95=True)
    for key in ("dice", "f1", "precision", "recall", "hd95"):
        assert report[key] == pytest.approx(expected[key]), key
    assert all(Path(p).is_file() and Path(p).parent == out / "figures" for p in summary["figures"])
    assert len(summary["figures"]) == 4


def test_the_class_submits_over_days_with_invalid_files(demo_run):
    out, summary = demo_run
    with open(out / "submissions" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["team"] for r in rows} == {t for t, _, _ in TEAMS}
    assert len({r["submitted_at"][:10] for r in rows}) >= 3  # several days
    assert sum(r["final"] == "yes" for r in rows) == 1
    grades = (out / "site" / "grades.csv").read_text()
    assert all(team in grades for team, _, _ in TEAMS)
    html = (out / "site" / "index.html").read_text()
    # Every other team handed in one of the classic mistakes first: the board counts exactly that one.
    with open(out / "site" / "leaderboard.csv", newline="") as fh:
        board = {r["team"]: r for r in csv.DictReader(fh) if r["kind"] == "team"}
    assert set(board) == {t for t, _, _ in TEAMS}
    for t, (team, _, _) in enumerate(TEAMS):
        assert board[team]["invalid_submissions"] == ("1" if t % 2 == 1 else "0"), team
    # and the page lists them with their error.
    for hint in ("divide by 255", "threshold them", "first axis"):
        assert hint in html


def test_the_baselines_rows_are_the_graders_scores_of_their_files(demo_run):
    out, summary = demo_run
    truth = load_truth(out / "competition")
    empty = score(truth.y[truth.public], np.zeros_like(truth.y[truth.public]))["dice"]
    with open(out / "site" / "leaderboard.csv", newline="") as fh:
        rows = {r["team"]: r for r in csv.DictReader(fh) if r["kind"] == "baseline"}
    assert set(rows) == set(QUICK_BASELINES)
    for name, row in rows.items():
        y_pred = read_submission(out / "baselines" / name / "test_data_ypred.dat")
        public = score(truth.y[truth.public], y_pred[truth.public])
        assert float(row["public_dice"]) == pytest.approx(public["dice"], abs=5e-5)
        assert float(row["public_pixel_f1"]) == pytest.approx(public["f1"], abs=5e-5)
        # a trained model finds tumour: it beats handing in empty masks
        assert public["dice"] > empty + 0.2, name


def test_team_models_fall_back_to_trained_baselines():
    assignment = team_models(QUICK_BASELINES, seed=5)
    assert set(assignment) == {t for t, _, _ in TEAMS}
    assert all(base in QUICK_BASELINES for base, _ in assignment.values())
    assert assignment["pixel-pushers"] == ("mlp-pixel", 6)


def test_one_team_plays_the_code_track(demo_run):
    from grader.code import sandbox_problem

    out, summary = demo_run
    code = summary["code"]
    if sandbox_problem() is not None:
        assert code == {"status": "skipped", "reason": sandbox_problem()}
        return
    assert code["at_home"]["status"] == "valid" and code["status"] == "scored"
    assert (out / "code-submission" / "submission.py").is_file() and (out / "code-submission" / "model.skops").is_file()
    # The hidden slices were scored, never shown: the job's receipt has public scores and no program output.
    assert 0 < code["job"]["public"]["dice"] <= 1 and "log" not in code["job"]
