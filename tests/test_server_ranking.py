"""``server init --ranking``: the course's ranking score (any score a board ranks by), its default from the competition."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.server.course import Course
from data_spec import KitError
from test_server_support import make_course, write_roster


def _competition_ranked(tmp_path, competition, name):
    """A copy of the competition whose private manifest names ``name`` as its ranking score."""
    copy = tmp_path / f"competition-{name}"
    shutil.copytree(competition, copy)
    manifest = copy / "private" / "manifest.json"
    body = json.loads(manifest.read_text()) if manifest.is_file() else {}
    manifest.write_text(json.dumps(dict(body, ranking=name)))
    return copy


def _config(root):
    return json.loads((root / "private" / "course.json").read_text())


def test_the_ranking_defaults_to_the_competition_s_else_dice(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    assert _config(root)["ranking"] == "dice"
    root, _, _ = make_course(tmp_path, _competition_ranked(tmp_path, competition, "dice"))
    assert _config(root)["ranking"] == "dice"


def test_a_mask_score_recorded_by_the_competition_is_the_course_s_unless_the_instructor_chooses(tmp_path, competition):
    ranked = _competition_ranked(tmp_path, competition, "lesion_dice")
    root, _, _ = make_course(tmp_path, ranked)
    assert _config(root)["ranking"] == "lesion_dice"
    root, _, _ = make_course(tmp_path, ranked, ranking="dice")  # the instructor's choice overrides the manifest
    assert _config(root)["ranking"] == "dice"


@pytest.mark.parametrize("name", ["dice", "hd95", "lesion_dice", "lesion_hd95", "nsd"])
def test_the_command_accepts_every_score_the_leaderboard_ranks_by(tmp_path, competition, name):
    roster = write_roster(tmp_path / "roster.csv")
    args = ["server", "init", str(tmp_path / "course"), "--competition", str(competition), "--roster", str(roster)]
    ok = CliRunner().invoke(main, args + ["--ranking", name, "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ranking"] == name, ok.output
    with Course(tmp_path / "course") as course:
        assert course.config.ranking == name


@pytest.mark.parametrize("name, why", [("f1", "cannot rank by 'f1'"), ("../x", "cannot rank by"),
                                       ("nsd_2", "cannot rank by")])
def test_the_command_refuses_what_no_board_ranks_by(tmp_path, competition, name, why):
    roster = write_roster(tmp_path / "roster.csv")
    args = ["server", "init", str(tmp_path / "course"), "--competition", str(competition), "--roster", str(roster)]
    refused = CliRunner().invoke(main, args + ["--ranking", name])
    assert refused.exit_code == 1 and why in refused.output, refused.output
    assert not (tmp_path / "course").exists()


def test_a_hand_edited_ranking_is_refused_when_the_course_opens(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    config = _config(root)
    (root / "private" / "course.json").write_text(json.dumps(dict(config, ranking="pixel_f1")))
    with pytest.raises(KitError, match="cannot rank by 'pixel_f1'"):
        Course(root)
