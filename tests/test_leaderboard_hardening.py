"""Issue 11, part B: the leaderboard survives what teams can do to their folders, and never hangs."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from data_spec import load_truth
from data_spec.errors import BadArgumentError
from data_spec.submission import write_submission
from grader import isolation
from grader.leaderboard import build_leaderboard, scoring
from grader.leaderboard.collect import display_names
from grader.validate import check_submission
from plumbing.atomic import atomic_dir


def sleepy_read(data, n_slices, case_ids, path):
    """What a corrupted global heap does to libhdf5: the read never returns."""
    time.sleep(600)


@pytest.fixture()
def truth(competition):
    return load_truth(competition / "private")


@pytest.fixture()
def hanging_hdf5(monkeypatch):
    """The HDF5 reader's worker replaced by one that hangs, with a short time limit, in a fresh pool."""
    isolation._READER.clear()
    monkeypatch.setenv("BRATS_KIT_READ_TIMEOUT", "1")
    monkeypatch.setattr(isolation, "_read_hdf5_task", sleepy_read)
    yield
    pool = isolation._READER.pop("pool", None)
    if pool is not None:
        pool.stop()
        pool.join()
    isolation._READER.clear()


def _subs(root: Path, truth, teams=("alpha", "beta")) -> Path:
    for i, team in enumerate(teams):
        y = truth.y.copy()
        y[0, : 10 * i, :10] = 1
        write_submission(root / team / "test_data_ypred.dat", y)
    return root


def _grades(site: Path) -> list:
    return list(csv.DictReader(io.StringIO((site / "grades.csv").read_text(encoding="utf-8"))))


def _problems(site: Path) -> str:
    return (site / "index.html").read_text(encoding="utf-8")


def test_a_hanging_hdf5_is_a_timeout_verdict_everywhere(competition, truth, tmp_path, hanging_hdf5):
    subs = _subs(tmp_path / "subs", truth)
    write_submission(subs / "gamma" / "pred.h5", truth.y, case_id=list(truth.case_id))
    start = time.monotonic()
    summary = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                                cache=tmp_path / "cache")
    assert time.monotonic() - start < 120  # a verdict, not a hang (the limit is 1 s)
    assert summary.teams_ranked == 2 and summary.invalid == 1
    assert "timeout" in _problems(tmp_path / "site")
    # A timeout depends on the machine, not only on the bytes: never cached.
    entries = json.loads((tmp_path / "cache" / "scores.json").read_text())["entries"]
    assert len(entries) == 2 and all(r["status"] == "scored" for r in entries.values())
    # validate (the student's check) gives the same named verdict, exit 1 with JSON.
    result = check_submission(subs / "gamma" / "pred.h5", competition)
    assert not result.ok and [e.code for e in result.errors] == ["timeout"]
    from brats_kit.cli import main

    out = CliRunner().invoke(main, ["validate", str(subs / "gamma" / "pred.h5"), "--data", str(competition), "--json"])
    assert out.exit_code == 1 and json.loads(out.output)["errors"][0]["code"] == "timeout"
    out = CliRunner().invoke(main, ["score", str(subs / "gamma" / "pred.h5"), "--truth",
                                    str(competition / "private"), "--json"])
    assert out.exit_code == 1 and json.loads(out.output)["errors"][0]["code"] == "timeout"


def test_hdf5_is_read_in_a_worker_and_scores_like_before(competition, truth, tmp_path):
    path = tmp_path / "pred.h5"
    write_submission(path, truth.y, case_id=list(truth.case_id))
    result = check_submission(path, competition)
    assert result.ok and result.format == "hdf5" and np.array_equal(result.y_pred, truth.y)
    assert isolation._READER["pool"].active  # it went through the worker


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_link", "vanished", "no_permission", "directory_link"])
def test_one_bad_file_never_stops_the_run(competition, truth, tmp_path, monkeypatch, kind):
    subs = _subs(tmp_path / "subs", truth)
    bad = subs / "gamma" / "test_data_ypred.dat"
    bad.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(bad)  # nobody ever writes: a plain open() would block the run forever
    elif kind == "dev_zero_link":
        bad.symlink_to("/dev/zero")
    elif kind == "directory_link":
        bad.symlink_to(subs / "alpha")
    else:
        write_submission(bad, truth.y)
        real = scoring.read_once

        def failing(path, *args):
            if Path(path) == bad:
                if kind == "vanished":  # deleted between the listing and the read
                    bad.unlink()
                else:
                    import grader.readers

                    def denied(*a, **k):
                        raise PermissionError(13, "Permission denied")

                    monkeypatch.setattr(grader.readers.os, "open", denied)
                    try:
                        return real(path, *args)
                    finally:
                        monkeypatch.undo()
            return real(path, *args)

        monkeypatch.setattr(scoring, "read_once", failing)
    summary = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                                cache=tmp_path / "cache")
    assert summary.teams_ranked == 2 and summary.invalid == 1 and summary.teams == 3
    md = _problems(tmp_path / "site")
    assert "gamma" in md and any(code in md for code in ("unsafe_file", "missing_file"))


def test_the_cache_is_keyed_on_the_bytes_validated(competition, truth, tmp_path, monkeypatch):
    subs = _subs(tmp_path / "subs", truth, teams=("alpha",))
    path = subs / "alpha" / "test_data_ypred.dat"
    complete = path.read_bytes()
    import grader.scoring as one_path  # the one scoring path validates the bytes the leaderboard read

    real = one_path.validate_bytes

    def rewriting(data, **kw):
        path.write_bytes(complete[: len(complete) // 2])  # the team rewrites the file while it is validated
        return real(data, **kw)

    monkeypatch.setattr(one_path, "validate_bytes", rewriting)
    summary = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                                cache=tmp_path / "cache")
    assert summary.valid == 1
    entries = json.loads((tmp_path / "cache" / "scores.json").read_text())["entries"]
    (key, record), = entries.items()
    assert key.startswith(hashlib.sha256(complete).hexdigest()) and record["status"] == "scored"
    # The half-written file now on disk is judged on its own bytes, under its own hash.
    monkeypatch.undo()
    again = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0, cache=tmp_path / "cache")
    assert again.valid == 0 and again.scored == 1


def test_hidden_folders_and_files_are_listed_with_a_reason(competition, truth, tmp_path):
    subs = _subs(tmp_path / "subs", truth)
    write_submission(subs / ".sneaky" / "test_data_ypred.dat", truth.y)
    write_submission(subs / "alpha" / ".later.dat", truth.y)
    write_submission(subs / "alpha" / ".drafts" / "x.dat", truth.y)
    summary = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                                cache=tmp_path / "cache")
    assert summary.submissions == 5 and summary.invalid == 3 and summary.teams_ranked == 2
    grades = (tmp_path / "site" / "grades.csv").read_text(encoding="utf-8")
    assert ".sneaky" in grades and "no valid submission" in grades
    md = _problems(tmp_path / "site")
    assert md.count("hidden_name") == 3 and ".later.dat" in md and ".drafts/x.dat" in md
    assert any(".sneaky" in n for n in summary.notes) and any("hidden name" in n for n in summary.notes)


def test_displayed_team_names_are_unique_and_name_their_folder(competition, truth, tmp_path):
    names = ["dup\x01", "dup\x02", "dup\u200b", "alpha", "\u0430lpha", "\ufb01sh", "plain"]
    labels = display_names(names)
    assert len(set(labels.values())) == len(names)
    assert labels["plain"] == "plain"
    assert "look-alike" in labels["\u0430lpha"] and "\\u0430lpha" in labels["\u0430lpha"]
    assert "same name as another team" in labels["alpha"]
    assert labels["\ufb01sh"].startswith("fish [folder '\\ufb01sh'")
    assert all("\x01" not in v and "\u200b" not in v for v in labels.values())
    subs = _subs(tmp_path / "subs", truth, teams=names)
    build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0, cache=tmp_path / "cache")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    for label in ("dup\\x01 [folder", "dup\\x02 [folder", "dup\\u200b [folder"):
        assert label in html


def test_manifest_oddities_are_warned(competition, truth, tmp_path):
    subs = _subs(tmp_path / "subs", truth)
    (subs / "manifest.csv").write_text(
        "team,file,submitted_at,final\n"
        "alpha,./test_data_ypred.dat,2024-01-01T10:00:00Z,\n"
        "beta,test_data_ypred.dat,2999-01-01T10:00:00Z,\n", encoding="utf-8")
    summary = build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                                cache=tmp_path / "cache")
    # ./a1.dat is the same file (no phantom missing_file row), and both oddities are said.
    assert summary.submissions == 2 and summary.invalid == 0
    assert any("'./test_data_ypred.dat'" in n and "read as" in n for n in summary.notes)
    assert any("future" in n and "2999" in n for n in summary.notes)


def test_numeric_options_are_bounded(competition, truth, tmp_path):
    subs = _subs(tmp_path / "subs", truth)
    for kw in ({"bootstrap": 10**8}, {"bootstrap": -1}, {"jobs": 0}, {"jobs": 10**6}, {"seed": -1},
               {"per_day": 0}, {"bootstrap": 2.5}):
        with pytest.raises(BadArgumentError):
            build_leaderboard(subs, competition / "private", tmp_path / "site", cache=tmp_path / "cache", **kw)
    from brats_kit.cli import main

    for args in (["--bootstrap", "100001"], ["--jobs", "1000"], ["--per-day", "0"], ["--seed", "-3"]):
        out = CliRunner().invoke(main, ["leaderboard", str(subs), "--truth", str(competition / "private"),
                                        "--out", str(tmp_path / "site"), *args])
        assert out.exit_code == 2 and "range" in out.output, (args, out.output)
    out = CliRunner().invoke(main, ["leaderboard", str(subs), "--truth", str(competition / "private"),
                                    "--out", str(tmp_path / "site"), "--jobs", "0"])
    assert out.exit_code == 1 and "jobs" in out.output
    assert not (tmp_path / "site").exists()


# --- the site swap --------------------------------------------------------------------------

def test_stale_temporaries_and_an_interrupted_swap_are_repaired(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v1")
    # What a SIGKILL leaves: a half-written site, and (two-rename fallback) the previous site moved aside.
    (tmp_path / ".site.abc123.tmp").mkdir()
    (tmp_path / ".site.abc123.tmp" / "index.html").write_text("half")
    aside = tmp_path / ".site.def456.old"
    aside.mkdir()
    os.replace(site, aside / "previous")
    with pytest.raises(RuntimeError):
        with atomic_dir(site) as tmp:  # recovery happens first, even when this run then fails
            raise RuntimeError("interrupted")
    assert (site / "index.html").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["site"]


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from plumbing.atomic import atomic_dir
site = Path(sys.argv[1])
with atomic_dir(site) as tmp:
    (tmp / "index.html").write_text("v2")
    import plumbing.atomic as atomic
    real = atomic._swap
    def killed(*a):
        os.kill(os.getpid(), signal.SIGKILL)
    atomic._swap = killed
"""


def test_a_killed_publisher_never_leaves_no_site(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v1")
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(site)], cwd=Path(__file__).parents[1])
    assert proc.returncode == -9
    assert (site / "index.html").read_text() == "v1"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v3")
    assert (site / "index.html").read_text() == "v3" and sorted(os.listdir(tmp_path)) == ["site"]


def test_the_swap_is_one_step_readers_always_see_a_site(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site) as tmp:
        (tmp / "index.html").write_text("v0")
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(site.is_dir() and (site / "index.html").is_file())

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(30):
            with atomic_dir(site) as tmp:
                (tmp / "index.html").write_text(f"v{i}")
    finally:
        stop.set()
        t.join()
    assert seen and all(seen)


def test_concurrent_runs_on_one_out_take_turns(competition, truth, tmp_path):
    subs = _subs(tmp_path / "subs", truth)
    errors = []

    def run(i):
        try:
            build_leaderboard(subs, competition / "private", tmp_path / "site", bootstrap=0,
                              cache=tmp_path / f"cache{i}")
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (tmp_path / "site" / "index.html").is_file()
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".site")) == []
