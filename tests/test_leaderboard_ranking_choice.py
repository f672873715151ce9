"""``brats-kit leaderboard --ranking SCORE``: the instructor's ranking score; lower-is-better ranks ascending."""
from __future__ import annotations

import csv
import io
import shutil

import pytest
from click.testing import CliRunner

from cohorts.classroom import make_class
from data_spec import load_truth, write_course_array
from data_spec.errors import BadArgumentError
from grader import score
from grader.leaderboard import SITE_FILES, build_leaderboard
from grader.leaderboard.ranking import RANKABLE, ranking_type, rule
from grader.score_types import RANKING
from grader.scoring import evaluate


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """Six teams, one of them an oracle handing in the truth itself (HD95 0 on every case)."""
    root = tmp_path_factory.mktemp("ranking")
    c = make_class(root, n_teams=6, n_cases=12, manifest_every=0, n_baselines=1)
    write_course_array(c["submissions"] / "oracle" / "truth.dat", c["y"], "y")
    c["root"] = root
    return c


def _csv(path) -> list:
    return list(csv.DictReader(io.StringIO((path / "leaderboard.csv").read_text())))


def test_ranking_type_accepts_per_case_scores_only():
    assert ranking_type() is RANKING and ranking_type("dice") is RANKING
    assert ranking_type("hd95").is_lower_the_better and not ranking_type("nsd").is_lower_the_better
    for name in ("f1", "precision", "nope", "", "x" * 500):
        with pytest.raises(BadArgumentError):
            ranking_type(name)
    assert set(RANKABLE) == {"dice", "hd95", "lesion_dice", "lesion_hd95", "nsd"}
    assert "lower is better" in rule(ranking_type("hd95")) and "lower" not in rule()


def test_hd95_ranks_ascending_from_each_teams_selected_submission(klass, tmp_path):
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "site", bootstrap=200, ranking="hd95",
                      cache=tmp_path / "cache")
    rows = [r for r in _csv(tmp_path / "site") if r["kind"] == "team"]
    values = [float(r["public_hd95"]) for r in rows]
    assert values == sorted(values) and values[0] == 0.0
    assert rows[0]["team"] == "oracle" and (rows[0]["rank_ci_low"], rows[0]["rank_ci_high"]) == ("1", "1")
    # The paired test sees the oracle as the better one (few public cases: maybe not significantly so).
    assert float(rows[1]["p_vs_above_holm"]) < 0.5
    truth = load_truth(klass["truth"])
    pub = truth.public
    for r in rows:
        team_dir = klass["submissions"] / r["team"]
        per_file = {f.name: score(truth.mask[pub], evaluate(f, truth).y_pred[pub], metrics="hd95")["hd95"]
                    for f in team_dir.iterdir() if evaluate(f, truth).ok}
        assert float(r["public_hd95"]) == round(per_file[r["submission"]], 2)
        assert per_file[r["submission"]] == min(per_file.values())  # the best public is the lowest
    header = (tmp_path / "site" / "leaderboard.csv").read_text().splitlines()[0]
    assert "public_dice" not in header and "public_pixel_f1" in header
    assert "HD95 (pixels) (public)" in (tmp_path / "site" / "index.html").read_text()


def test_the_tie_rule_is_unchanged(klass, tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(klass["submissions"], subs)
    shutil.copy2(subs / "oracle" / "truth.dat", tmp_path / "t.dat")
    (subs / "copycat").mkdir()
    shutil.copy2(tmp_path / "t.dat", subs / "copycat" / "same.dat")  # later mtime: the copy is later
    import os

    os.utime(subs / "oracle" / "truth.dat", (1_700_000_000, 1_700_000_000))
    os.utime(subs / "copycat" / "same.dat", (1_700_000_100, 1_700_000_100))
    build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0, ranking="lesion_hd95",
                      cache=tmp_path / "cache")
    rows = [r for r in _csv(tmp_path / "site") if r["kind"] == "team"]
    assert [r["team"] for r in rows[:2]] == ["oracle", "copycat"]


def test_the_default_is_dice_byte_for_byte(klass, tmp_path):
    kw = dict(bootstrap=100, baselines=klass["baselines"], cache=tmp_path / "cache")
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "a", **kw)
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "b", ranking="dice", **kw)
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in SITE_FILES)


def test_nsd_ranks_descending_and_revealed_boards_rank_the_private_cases(klass, tmp_path):
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "site", bootstrap=50, ranking="nsd",
                      reveal=True, cache=tmp_path / "cache")
    rows = [r for r in _csv(tmp_path / "site") if r["kind"] == "team"]
    values = [float(r["private_nsd"]) for r in rows]
    assert values == sorted(values, reverse=True)
    assert {"public_nsd", "move"} <= set(rows[0])


def test_cli_ranking(klass, tmp_path):
    from brats_kit.cli import main

    runner = CliRunner()
    args = ["leaderboard", str(klass["submissions"]), "--truth", str(klass["truth"]), "--bootstrap", "0"]
    ok = runner.invoke(main, args + ["--out", str(tmp_path / "a"), "--ranking", "lesion_dice"])
    assert ok.exit_code == 0, ok.output
    assert "public_lesion_dice" in (tmp_path / "a" / "leaderboard.csv").read_text()
    bad = runner.invoke(main, args + ["--out", str(tmp_path / "b"), "--ranking", "f1"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output and not (tmp_path / "b").exists()


def test_figures_of_a_distance_put_the_lowest_first_and_show_values_above_one():
    from datetime import datetime, timezone

    from grader.leaderboard import figures

    t = [datetime(2026, 12, 1, h, tzinfo=timezone.utc) for h in (9, 10)]
    histories = [(t, [40.0, 30.0], 1), (t, [3.0, 2.5], 1), (t, [12.0, 9.0], 0)]
    fig = figures.history_figure(histories, "HD95", ["far", "near", "mid"], lower_is_better=True)
    legend = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert legend == ["1. near", "2. mid", "3. far"]
    assert fig.axes[0].get_ylim()[1] >= 30.0
    dist = figures.distribution_figure([40.0, 30.0, 3.0, 2.5, 12.0, 9.0], [30.0, 2.5, 12.0], [], "HD95")
    assert dist.axes[0].get_xlim()[1] >= 40.0


def test_the_competitions_manifest_chooses_the_ranking(klass, tmp_path):
    """``data synth --ranking`` records the score in private/manifest.json; the leaderboard ranks by it."""
    import json

    from brats_kit.cli import main

    runner = CliRunner()
    bad = runner.invoke(main, ["data", "synth", "--out", str(tmp_path / "bad"), "--train", "1", "--test", "4",
                               "--ranking", "f1"])
    assert bad.exit_code == 1 and "cannot rank by" in bad.output and not (tmp_path / "bad").exists()
    ok = runner.invoke(main, ["data", "synth", "--out", str(tmp_path / "comp"), "--train", "1", "--test", "4",
                              "--ranking", "hd95"])
    assert ok.exit_code == 0, ok.output
    private = tmp_path / "comp" / "private"
    assert json.loads((private / "manifest.json").read_text())["ranking"] == "hd95"

    # The class's truth beside a manifest naming a ranking: the board ranks by it unless told otherwise.
    shutil.copytree(klass["truth"].parent, tmp_path / "course" / "private")
    (tmp_path / "course" / "private" / "manifest.json").write_text(json.dumps({"ranking": "hd95"}))
    truth = tmp_path / "course" / "private" / klass["truth"].name
    chosen = build_leaderboard(klass["submissions"], truth, tmp_path / "a", bootstrap=0, cache=tmp_path / "c")
    assert chosen.ranking == "hd95" and chosen.to_dict()["ranking"] == "hd95"
    assert "public_hd95" in (tmp_path / "a" / "leaderboard.csv").read_text().splitlines()[0]
    told = build_leaderboard(klass["submissions"], truth, tmp_path / "b", bootstrap=0, cache=tmp_path / "c",
                             ranking="dice")
    assert told.ranking == "dice"
    plain = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "d", bootstrap=0, cache=tmp_path / "c")
    assert plain.ranking == "dice"


def test_a_gradebook_refuses_a_board_ranked_by_a_distance(klass, tmp_path):
    from brats_kit.cli import main

    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email,team\n1,A,a@example.org,team-000\n")
    result = CliRunner().invoke(main, ["leaderboard", str(klass["submissions"]), "--truth", str(klass["truth"]),
                                       "--out", str(tmp_path / "site"), "--reveal", "--ranking", "hd95",
                                       "--roster", str(roster), "--grades-out", str(tmp_path / "g.csv")])
    assert result.exit_code == 1 and "cannot grade" in result.output
    assert not (tmp_path / "site").exists() and not (tmp_path / "g.csv").exists()
