"""``server init --ranking``: the course's ranking score, its default from the competition, mask scores refused."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.server.course import Course
from data_spec import KitError
from data_spec.errors import BadArgumentError
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


def test_a_mask_score_is_refused_with_the_reason_before_anything_is_written(tmp_path, competition):
    ranked = _competition_ranked(tmp_path, competition, "lesion_dice")
    with pytest.raises(BadArgumentError, match="lesion_dice .the competition's private manifest names it.") as err:
        make_course(tmp_path, ranked)
    assert "counts" in str(err.value) and "--ranking dice" in err.value.expected
    assert not list(tmp_path.glob("course-*"))
    root, _, _ = make_course(tmp_path, ranked, ranking="dice")  # the instructor's choice overrides the manifest
    assert _config(root)["ranking"] == "dice"


@pytest.mark.parametrize("name, why", [("nsd", "needs the predicted masks"), ("hd95", "needs the predicted masks"),
                                       ("f1", "cannot rank by 'f1'"), ("../x", "cannot rank by")])
def test_the_command_refuses_what_the_server_cannot_rank_by(tmp_path, competition, name, why):
    roster = write_roster(tmp_path / "roster.csv")
    args = ["server", "init", str(tmp_path / "course"), "--competition", str(competition), "--roster", str(roster)]
    refused = CliRunner().invoke(main, args + ["--ranking", name])
    assert refused.exit_code == 1 and why in refused.output, refused.output
    assert not (tmp_path / "course").exists()
    ok = CliRunner().invoke(main, args + ["--ranking", "dice", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ranking"] == "dice"


def test_a_hand_edited_ranking_is_refused_when_the_course_opens(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    config = _config(root)
    (root / "private" / "course.json").write_text(json.dumps(dict(config, ranking="lesion_hd95")))
    with pytest.raises(KitError, match="cannot rank by lesion_hd95"):
        Course(root)
