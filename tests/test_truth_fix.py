"""A truth fixed after submissions came in: the offline leaderboard re-scores every file against it.

The score cache is keyed on (file sha256, truth sha256, scorer version), so a new truth
scores everything again, through the same cache folder, and the old truth's records stay.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from cohorts.classroom import make_class, write_truth
from data_spec import load_truth
from grader.leaderboard import build_leaderboard
from grader.metrics import dice_per_slice
from grader.confusion import confusion_counts


def _private_dice(c, truth_path, team_dir_file):
    from grader.scoring import evaluate

    truth = load_truth(truth_path)
    verdict = evaluate(team_dir_file, truth)
    priv = ~truth.public
    return dice_per_slice(*confusion_counts(truth.y[priv], verdict.y_pred[priv])).mean()


def test_a_new_truth_rescores_every_file_and_the_board_follows_it(tmp_path):
    c = make_class(tmp_path / "class", n_teams=5, n_cases=10, private_harder=True)
    cache = tmp_path / "cache"
    first = build_leaderboard(c["submissions"], c["truth"], tmp_path / "a", reveal=True, bootstrap=0, cache=cache)
    assert first.cached == 0 and first.scored > 0

    # The fix: one private case's truth was wrong (its tumour moved 30 pixels).
    y = c["y"].copy()
    case = int(np.flatnonzero(~c["public"])[0])
    y[case] = np.roll(y[case], 30, axis=1)
    fixed = write_truth(tmp_path / "fixed", y, c["public"])
    assert load_truth(fixed).sha256 != load_truth(c["truth"]).sha256

    second = build_leaderboard(c["submissions"], fixed, tmp_path / "b", reveal=True, bootstrap=0, cache=cache)
    assert second.cached == 0 and second.scored == first.scored  # nothing answered from the old truth's records
    rows = [r for r in csv.DictReader(io.StringIO((tmp_path / "b" / "leaderboard.csv").read_text()))
            if r["kind"] == "team"]
    old_rows = {r["team"]: r for r in csv.DictReader(io.StringIO((tmp_path / "a" / "leaderboard.csv").read_text()))}
    changed = 0
    for r in rows:
        path = c["submissions"] / r["team"] / r["submission"]
        assert float(r["private_dice"]) == round(_private_dice(c, fixed, path), 4)
        changed += r["private_dice"] != old_rows[r["team"]]["private_dice"]
    assert changed > 0  # the test can fail: the fix moves the scores

    # Both truths' records stay: going back or forth scores nothing again.
    again = build_leaderboard(c["submissions"], c["truth"], tmp_path / "c", reveal=True, bootstrap=0, cache=cache)
    assert again.scored == 0 and again.cached == first.scored
    assert (tmp_path / "c" / "leaderboard.csv").read_bytes() == (tmp_path / "a" / "leaderboard.csv").read_bytes()
