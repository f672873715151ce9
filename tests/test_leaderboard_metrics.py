"""``brats-kit leaderboard --metrics``: extra score columns, mask scores computed at scoring time and cached."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner

from cohorts.classroom import write_truth
from data_spec import load_truth
from data_spec.errors import BadArgumentError
from grader import score
from grader.leaderboard import SITE_FILES, build_leaderboard
from grader.leaderboard.build import Entries, collect_and_score, rank_and_publish
from grader.scoring import evaluate

METRICS = "lesion_dice,lesion_hd95,nsd,precision"


@pytest.fixture(scope="module")
def klass(small_class):
    return small_class


def _csv(path) -> list:
    return list(csv.DictReader(io.StringIO((path / "leaderboard.csv").read_text())))


def _site(path) -> dict:
    return {name: (path / name).read_bytes() for name in SITE_FILES}


@pytest.mark.parametrize("reveal", [False, True])
def test_extra_columns_are_each_selected_submissions_score_on_the_phase(klass, tmp_path, reveal):
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "site", reveal=reveal, bootstrap=0,
                      baselines=klass["baselines"], cache=tmp_path / "cache", metrics=METRICS)
    phase = "private" if reveal else "public"
    truth = load_truth(klass["truth"])
    keep = ~truth.public if reveal else truth.public
    rows = _csv(tmp_path / "site")
    assert {f"{phase}_{m}" for m in METRICS.split(",")} <= set(rows[0])
    assert len(rows) >= 5
    for r in rows:
        path = (klass["submissions"] / r["team"] / r["submission"] if r["kind"] == "team"
                else klass["baselines"] / r["submission"])
        expected = score(truth.mask[keep], evaluate(path, truth).y_pred[keep], metrics=METRICS)
        for m, decimals in (("lesion_dice", 4), ("lesion_hd95", 2), ("nsd", 4), ("precision", 4)):
            assert float(r[f"{phase}_{m}"]) == pytest.approx(round(expected[m], decimals), abs=1e-9), (r["team"], m)
    page = (tmp_path / "site" / "index.html").read_text()
    assert f"lesion-wise Dice ({phase})" in page and f"NSD, 1 px ({phase})" in page


def test_no_private_case_reaches_the_public_columns(klass, tmp_path):
    kw = dict(bootstrap=50, baselines=klass["baselines"], metrics=METRICS)
    a = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "a", cache=tmp_path / "ca", **kw)
    y, public = klass["y"].copy(), klass["public"]
    y[~public] = np.roll(y[~public], 23, axis=1)
    other = write_truth(tmp_path / "other", y, public)
    build_leaderboard(klass["submissions"], other, tmp_path / "b", cache=tmp_path / "cb", **kw)
    assert a.phase == "public" and _site(tmp_path / "a") == _site(tmp_path / "b")
    # The check can fail: revealed, the private columns differ.
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "c", cache=tmp_path / "ca", reveal=True, **kw)
    build_leaderboard(klass["submissions"], other, tmp_path / "d", cache=tmp_path / "cb", reveal=True, **kw)
    assert [r["private_nsd"] for r in _csv(tmp_path / "c")] != [r["private_nsd"] for r in _csv(tmp_path / "d")]


def test_mask_scores_are_computed_once_and_a_new_one_rescores(klass, tmp_path):
    kw = dict(bootstrap=0, cache=tmp_path / "cache")
    first = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "s1", metrics="nsd", **kw)
    again = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "s2", metrics="nsd", **kw)
    assert again.scored == 0 and again.cached == first.scored
    assert _site(tmp_path / "s1") == _site(tmp_path / "s2")
    # A mask score the cache lacks: every valid file is read and scored again, invalid ones are not.
    third = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "s3", metrics="hd95", **kw)
    assert third.scored == first.valid
    # ...and the record keeps the scores it had.
    both = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "s4", metrics="nsd,hd95", **kw)
    assert both.scored == 0
    assert [r["public_nsd"] for r in _csv(tmp_path / "s4")] == [r["public_nsd"] for r in _csv(tmp_path / "s1")]


def test_a_cold_run_reads_validates_and_mask_scores_each_file_once(klass, tmp_path, monkeypatch):
    # One pass per file: its bytes read once, validated once, counted and mask-scored from those masks.
    import grader.leaderboard.scoring as board_scoring
    import grader.metrics
    import grader.scoring

    seen = {"read": [], "validated": [], "masks": 0}

    def spy(name, real, record):
        def wrapper(*args, **kwargs):
            record(args, kwargs)
            return real(*args, **kwargs)
        monkeypatch.setattr(*name, wrapper)

    spy((board_scoring, "read_once"), board_scoring.read_once, lambda a, k: seen["read"].append(str(a[0])))
    spy((grader.scoring, "validate_bytes"), grader.scoring.validate_bytes,
        lambda a, k: seen["validated"].append(k["path"]))
    spy((grader.metrics, "mask_scores_per_slice"), grader.metrics.mask_scores_per_slice,
        lambda a, k: seen.__setitem__("masks", seen["masks"] + 1))
    out = build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "site", bootstrap=0, jobs=1,
                            baselines=klass["baselines"], cache=tmp_path / "cache", metrics=METRICS)
    assert len(seen["read"]) == len(set(seen["read"])) == out.scored
    assert sorted(seen["validated"]) == sorted(seen["read"])
    assert seen["masks"] == out.valid + len(list(klass["baselines"].iterdir()))


def test_entries_without_mask_scores_leave_the_cell_empty(klass, tmp_path):
    truth = load_truth(klass["truth"])
    entries = collect_and_score(klass["submissions"], truth, cache=tmp_path / "cache")
    rank_and_publish(Entries(entries.subs), truth, tmp_path / "site", bootstrap=0, metrics="nsd,recall")
    rows = [r for r in _csv(tmp_path / "site") if r["kind"] == "team"]
    assert all(r["public_nsd"] == "" for r in rows)
    assert all(0 <= float(r["public_recall"]) <= 1 for r in rows)


@pytest.mark.parametrize("metrics", ["nope", "dice,<script>", ",", "x" * 5000])
def test_an_unknown_metric_is_refused_before_any_file_is_read(klass, tmp_path, metrics):
    with pytest.raises(BadArgumentError):
        build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "site", cache=tmp_path / "c",
                          metrics=metrics)
    assert not (tmp_path / "c").exists() and not (tmp_path / "site").exists()


def test_cli_metrics(klass, tmp_path):
    from brats_kit.cli import main

    runner = CliRunner()
    ok = runner.invoke(main, ["leaderboard", str(klass["submissions"]), "--truth", str(klass["truth"]), "--out",
                              str(tmp_path / "site"), "--bootstrap", "0", "--metrics", "lesion_dice"])
    assert ok.exit_code == 0, ok.output
    assert "public_lesion_dice" in (tmp_path / "site" / "leaderboard.csv").read_text().splitlines()[0]
    bad = runner.invoke(main, ["leaderboard", str(klass["submissions"]), "--truth", str(klass["truth"]), "--out",
                               str(tmp_path / "bad"), "--metrics", "\x1b[31mred"])
    assert bad.exit_code == 1 and "\x1b" not in bad.output and "Traceback" not in bad.output
