"""``brats-kit demo --quick`` plays the whole course and says where everything is."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.demo import MISTAKES, QUICK_BASELINES, TEAMS, team_models


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
        assert 0 <= row["validation"]["dice"] <= 1
    for site in ("site", "site-final"):
        for name in ("index.html", "leaderboard.csv", "leaderboard.md", "grades.csv"):
            assert (out / site / name).is_file()
    assert summary["leaderboard"]["phase"] == "public" and summary["leaderboard_final"]["phase"] == "private"
    report = summary["report"]
    assert report["status"] == "scored" and "hd95" in report
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
    # Every other team handed in one of the classic mistakes first; the page lists them with their error.
    assert sum(1 for t in range(len(TEAMS)) if t % 2 == 1) == 4 and len(MISTAKES) == 4
    for hint in ("divide by 255", "threshold them", "first axis"):
        assert hint in html


def test_team_models_fall_back_to_trained_baselines():
    assignment = team_models(QUICK_BASELINES, seed=5)
    assert set(assignment) == {t for t, _, _ in TEAMS}
    assert all(base in QUICK_BASELINES for base, _ in assignment.values())
    assert assignment["pixel-pushers"] == ("mlp-pixel", 6)
