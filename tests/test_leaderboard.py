"""The leaderboard, end to end, on a generated class (24 teams, hostile names, 9 test cases)."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from joblib import parallel_config

from plumbing.atomic import write_bytes
from data_spec import KitError, LayoutError, read_split_h5, write_course_array
from grader.leaderboard import SITE_FILES, build_leaderboard
from grader.leaderboard import render, scoring
from cohorts.classroom import make_class, write_truth

BAD_BYTES_TEAM = b"bytes\xffteam"


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """24 teams (10 hostile names, one undecodable), invalid files, a manifest for every third team."""
    root = tmp_path_factory.mktemp("class")
    c = make_class(root, n_teams=24, hostile=True, private_harder=True)
    odd = os.path.join(os.fsencode(c["submissions"]), BAD_BYTES_TEAM)
    os.mkdir(odd)
    shutil.copy2(c["submissions"] / "team-012" / "sub-0.dat", os.path.join(odd, b"sub.dat"))
    c["root"] = root
    return c


@pytest.fixture(scope="module")
def sites(klass):
    """The class's public and final sites, built once (cache: next to them)."""
    out = klass["root"] / "sites"
    return {
        "public": build(klass, out / "public"),
        "final": build(klass, out / "final", reveal=True),
        "dir": out,
    }


def build(c, out, **kw):
    kw.setdefault("bootstrap", 200)
    kw.setdefault("baselines", c["baselines"])
    kw.setdefault("cache", Path(out).parent / ".leaderboard-cache")  # one cache per test
    return build_leaderboard(c["submissions"], c["truth"], out, **kw)


def read_site(out) -> dict:
    return {name: (Path(out) / name).read_bytes() for name in SITE_FILES}


def rows_of(text: str) -> list:
    return list(csv.DictReader(io.StringIO(text)))


def load_prediction(path: Path) -> np.ndarray:
    return np.load(path) if path.suffix == ".npy" else np.fromfile(path, dtype=np.uint8).reshape(-1, 240, 240)


def dice_by_case(y, p) -> np.ndarray:
    """Independent of the grader: per-case Dice, 1 when both empty."""
    inter = (y.astype(bool) & p.astype(bool)).sum(axis=(1, 2))
    total = y.astype(bool).sum(axis=(1, 2)) + p.astype(bool).sum(axis=(1, 2))
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


def test_public_board_ranks_teams_by_public_dice(klass, sites):
    summary = sites["public"]
    assert summary.phase == "public" and summary.teams == 25 and summary.teams_ranked == 25
    assert summary.baselines == 2 and summary.invalid == 5
    board = rows_of((sites["dir"] / "public" / "leaderboard.csv").read_text())
    teams = [r for r in board if r["kind"] == "team"]
    assert len(teams) == 25 and sum(r["kind"] == "baseline" for r in board) == 2
    assert all(r["rank"] == "" for r in board if r["kind"] == "baseline")
    dice = [float(r["public_dice"]) for r in teams]
    assert dice == sorted(dice, reverse=True)
    ranks = [int(r["rank"]) for r in teams]
    assert ranks[0] == 1 and all(a <= b for a, b in zip(ranks, ranks[1:]))
    for r in teams:
        assert float(r["public_dice_ci_low"]) <= float(r["public_dice"]) <= float(r["public_dice_ci_high"])
        assert 1 <= int(r["rank_ci_low"]) <= int(r["rank_ci_high"]) <= 25
    # Every score checked against an independent computation from the files.
    pub = klass["public"]
    for r in teams:
        if r["team"].startswith("team-"):
            y_pred = load_prediction(klass["submissions"] / r["team"] / r["submission"])
            expected = dice_by_case(klass["y"][pub], y_pred[pub]).mean()
            assert float(r["public_dice"]) == pytest.approx(expected, abs=5e-5)


def test_selection_best_public_or_final(klass, sites):
    board = {r["team"]: r for r in rows_of((sites["dir"] / "public" / "leaderboard.csv").read_text())}
    manifest = rows_of((klass["submissions"] / "manifest.csv").read_text())
    finals = {r["team"]: r["file"] for r in manifest if r["final"] == "yes"}
    pub = klass["public"]
    checked = 0
    for team in klass["teams"]:
        if not team.startswith("team-"):
            continue
        row = board[team]
        if team in finals:
            assert row["submission"] == finals[team] and row["selected_by"] == "final"
        else:
            files = sorted(p for p in (klass["submissions"] / team).iterdir() if p.name != "broken.dat")
            scores = {p.name: dice_by_case(klass["y"][pub], load_prediction(p)[pub]).mean() for p in files}
            assert row["selected_by"] == "best public"
            assert scores[row["submission"]] == pytest.approx(max(scores.values()), abs=1e-12)
        checked += 1
    assert checked >= 10 and any(t in finals for t in board)


def test_equal_public_scores_go_to_the_earlier_submission(klass, tmp_path):
    subs = tmp_path / "subs"
    y = read_split_h5(klass["truth"])["y"][()]
    for name, hour in (("late.dat", 12), ("early.dat", 9), ("mid.dat", 10)):
        write_course_array(subs / "solo" / name, y, "y")  # all perfect: equal scores
        ts = datetime(2025, 3, 1, hour, tzinfo=timezone.utc).timestamp()
        os.utime(subs / "solo" / name, (ts, ts))
    build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0)
    (row,) = rows_of((tmp_path / "site" / "leaderboard.csv").read_text())
    assert row["submission"] == "early.dat" and row["submitted_at"] == "2025-03-01T09:00:00Z"


def test_byte_identical_files_of_two_teams_rank_the_earlier_first_on_both_boards(klass, tmp_path, monkeypatch):
    """One tie rule: the earlier submission ranks first, publicly, privately, in grades.csv and the history legend."""
    from grader.leaderboard import figures

    subs = tmp_path / "subs"
    y = np.ascontiguousarray(np.roll(read_split_h5(klass["truth"])["y"][()], 3, axis=2))
    for team, hour in (("aardvark", 12), ("zebra", 9)):  # the later team first by name
        write_course_array(subs / team / "p.dat", y, "y")
        ts = datetime(2025, 3, 1, hour, tzinfo=timezone.utc).timestamp()
        os.utime(subs / team / "p.dat", (ts, ts))
    legends = []
    real = figures.history_png
    monkeypatch.setattr(figures, "history_png",
                        lambda histories, label, labels=None, **kw: legends.append(labels) or real(histories, label,
                                                                                                   labels, **kw))
    for reveal in (False, True):
        site = tmp_path / f"site-{reveal}"
        build_leaderboard(subs, klass["truth"], site, reveal=reveal, bootstrap=100)
        rows = [r for r in rows_of((site / "leaderboard.csv").read_text()) if r["kind"] == "team"]
        assert [(r["rank"], r["team"]) for r in rows] == [("1", "zebra"), ("2", "aardvark")]
        grades = {g["team"]: g for g in rows_of((site / "grades.csv").read_text())}
        rank = "private_rank" if reveal else "public_rank"
        assert (grades["zebra"][rank], grades["aardvark"][rank]) == ("1", "2")
        if reveal:
            assert [(r["public_rank"], r["move"]) for r in rows] == [("1", "0"), ("2", "0")]
        assert legends[-1] == ["zebra", "aardvark"]


def private_strings(klass) -> set:
    """Formatted private scores of every valid submission of the class (independently computed)."""
    priv = ~klass["public"]
    strings = set()
    for team_dir in Path(klass["submissions"]).iterdir():
        for f in team_dir.iterdir() if team_dir.is_dir() else ():
            if f.name == "broken.dat":
                continue
            y_pred = load_prediction(f)
            strings.add(f"{dice_by_case(klass['y'][priv], y_pred[priv]).mean():.4f}")
    return strings


def test_nothing_private_before_the_reveal(klass, sites):
    site = read_site(sites["dir"] / "public")
    secrets = private_strings(klass)
    assert len(secrets) > 20
    for name, data in site.items():
        text = data.decode("utf-8")
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{name} shows private scores {leaked}"
        assert "private_" not in text.split("\n")[0]  # no private column
    # The search can fail: after the reveal the private scores are there.
    revealed = (sites["dir"] / "final" / "leaderboard.csv").read_text()
    assert sum(s in revealed for s in secrets) >= 20


def test_public_site_does_not_depend_on_the_private_truth(klass, sites, tmp_path):
    """Before the reveal, the site is a function of the public cases only: same bytes after changing the rest."""
    y, public = klass["y"].copy(), klass["public"]
    other = y.copy()
    other[~public] = np.roll(other[~public], 37, axis=1)
    other[np.flatnonzero(~public)[0], 100:140, 100:140] = 1
    truth2 = write_truth(tmp_path / "other", other, public)
    build_leaderboard(klass["submissions"], truth2, tmp_path / "b", bootstrap=200, baselines=klass["baselines"])
    assert read_site(sites["dir"] / "public") == read_site(tmp_path / "b")
    build_leaderboard(klass["submissions"], truth2, tmp_path / "b2", reveal=True, bootstrap=200,
                      baselines=klass["baselines"])
    assert read_site(sites["dir"] / "final")["leaderboard.csv"] != read_site(tmp_path / "b2")["leaderboard.csv"]


def test_reveal_ranks_private_and_shows_moves(klass, sites):
    assert sites["final"].phase == "private"
    final = sites["dir"] / "final"
    teams = [r for r in rows_of((final / "leaderboard.csv").read_text()) if r["kind"] == "team"]
    dice = [float(r["private_dice"]) for r in teams]
    assert dice == sorted(dice, reverse=True)
    for r in teams:
        assert int(r["move"]) == int(r["public_rank"]) - int(r["rank"])
    # One rank per team on each board (equal scores go to the earlier submission), best public first.
    by_public_rank = sorted(teams, key=lambda r: int(r["public_rank"]))
    assert [int(r["public_rank"]) for r in by_public_rank] == list(range(1, len(teams) + 1))
    assert [int(r["rank"]) for r in teams] == list(range(1, len(teams) + 1))
    shown = [float(r["public_dice"]) for r in by_public_rank]
    assert shown == sorted(shown, reverse=True)
    assert any(int(r["move"]) != 0 for r in teams)
    grades = rows_of((final / "grades.csv").read_text())
    assert {"private_dice", "private_rank", "move", "public_dice"} <= set(grades[0])
    html = (final / "index.html").read_text()
    assert ">Move</th>" in html and "Dice (private)" in html


def test_same_inputs_same_bytes_cold_warm_and_parallel(klass, sites, tmp_path):
    first = sites["public"]  # cold cache
    warm = build(klass, tmp_path / "warm", cache=Path(first.cache).parent)
    parallel = build(klass, tmp_path / "parallel", cache=tmp_path / "cache", jobs=2)
    assert first.scored > 0 and warm.scored == 0
    assert warm.cached == first.submissions + first.baselines
    assert parallel.scored == first.scored
    # No backend is hard-coded: a course can hand the work to another joblib backend (dask, ray...).
    with parallel_config(backend="threading"):
        build(klass, tmp_path / "threads", cache=tmp_path / "cache-threads", jobs=2)
    assert read_site(sites["dir"] / "public") == read_site(tmp_path / "warm") == read_site(tmp_path / "parallel")
    assert read_site(tmp_path / "threads") == read_site(tmp_path / "parallel")
    assert Path(first.cache).read_bytes() == (tmp_path / "cache" / "scores.json").read_bytes()


def test_rerun_scores_only_new_files(klass, tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    shutil.copytree(klass["submissions"], subs)
    calls = []
    real = scoring.score_bytes

    def counting(data, truth, path=None):
        calls.append(Path(path).name)
        return real(data, truth, path)

    monkeypatch.setattr(scoring, "score_bytes", counting)
    first = build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0, cache=tmp_path / "cache")
    n_unique = len(calls)
    assert first.scored == n_unique and n_unique > 40
    # The identical broken.dat files of five teams are one file to score.
    assert calls.count("broken.dat") == 1
    new = load_prediction(subs / "team-012" / "sub-0.dat").copy()
    new[0, :5, :5] = 1
    write_course_array(subs / "team-012" / "late.dat", new, "y")
    calls.clear()
    second = build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0, cache=tmp_path / "cache")
    assert calls == ["late.dat"] and second.scored == 1 and second.cached == first.submissions
    calls.clear()
    build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0, cache=tmp_path / "cache")
    assert calls == []


def test_a_corrupt_cache_is_rebuilt(klass, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "scores.json").write_text("{not json")
    s = build(klass, tmp_path / "site", cache=tmp_path / "cache", bootstrap=0)
    assert s.scored > 0 and any("ignored" in n for n in s.notes)
    assert json.loads((tmp_path / "cache" / "scores.json").read_text())["entries"]


def quota_class(klass, root: Path) -> Path:
    """One team, 4 valid submissions on one day and an invalid one in between; another on two days."""
    subs = root / "subs"
    y = read_split_h5(klass["truth"])["y"][()]
    rng = np.random.default_rng(0)
    plan = {"busy": [9, 10, 11, 12], "steady": [9, 33]}
    for team, hours in plan.items():
        for k, hour in enumerate(hours):
            p = y.copy()
            p[:, :k + 1, :] = 1 - p[:, :k + 1, :]  # distinct files, distinct scores
            p[:, 200:, 200:] = rng.integers(0, 2, size=(len(y), 40, 40))
            path = write_course_array(subs / team / f"s{k}.dat", p, "y")
            ts = datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp() + hour * 3600
            os.utime(path, (ts, ts))
    write_bytes(subs / "busy" / "bad.dat", b"\0" * 10)
    ts = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc).timestamp()
    os.utime(subs / "busy" / "bad.dat", (ts, ts))
    return subs


def test_per_day_quota_ignores_extra_valid_submissions_only(klass, tmp_path):
    subs = quota_class(klass, tmp_path)
    s = build_leaderboard(subs, klass["truth"], tmp_path / "site", per_day=2, bootstrap=0)
    assert s.over_quota == 2 and s.invalid == 1
    board = {r["team"]: r for r in rows_of((tmp_path / "site" / "leaderboard.csv").read_text())}
    assert board["busy"]["over_quota"] == "2" and board["busy"]["invalid_submissions"] == "1"
    assert board["busy"]["submission"] in ("s0.dat", "s1.dat")
    assert board["steady"]["over_quota"] == "0" and board["steady"]["valid_submissions"] == "2"
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    ignored = [line for line in md.splitlines() if line.startswith("| busy |") and "| over quota |" in line]
    assert len(ignored) == 2 and "over the quota of 2 valid submissions per day \\(2025-03-01 UTC\\)" in ignored[0]
    assert "bad.dat" in md and "wrong\\_size" in md
    # An ignored submission's score is shown nowhere: its history row has no score.
    html = (tmp_path / "site" / "index.html").read_text()
    for name in ("s2.dat", "s3.dat"):
        assert re.search(rf"<td>{name}</td><td>over quota</td><td></td></tr>", html)
    # Without the quota both are scored and one may win.
    s = build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0)
    assert s.over_quota == 0


def test_manifest_dates_and_quota_use_utc_days(klass, tmp_path):
    subs = quota_class(klass, tmp_path)
    (subs / "manifest.csv").write_text(
        "team,file,submitted_at,final\n"
        "busy,s0.dat,2025-03-02T00:30:00+02:00,no\n"  # 22:30 UTC on the 1st (the 2nd in local time)
        "busy,s1.dat,2025-03-01T23:00:00Z,yes\n"
        "busy,s2.dat,2025-03-02T01:45:00+02:00,no\n"  # 23:45 UTC on the 1st: the third that day
        "busy,s3.dat,2025-03-02 05:00:00,\n"  # naive: UTC
        "busy,gone.dat,2025-03-02T06:00:00Z,no\n"
    )
    s = build_leaderboard(subs, klass["truth"], tmp_path / "site", per_day=2, bootstrap=0)
    board = {r["team"]: r for r in rows_of((tmp_path / "site" / "leaderboard.csv").read_text())}
    assert board["busy"]["submission"] == "s1.dat" and board["busy"]["selected_by"] == "final"
    assert board["busy"]["submitted_at"] == "2025-03-01T23:00:00Z"
    assert s.over_quota == 1 and s.invalid == 2  # bad.dat and the missing gone.dat
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "| busy | s2.dat | 2025-03-01T23:45:00Z | over quota |" in md
    assert "listed in manifest.csv but not found" in md


@pytest.mark.parametrize("text, where", [
    ("team,file\nx,y\n", "line 1"),
    ("team,file,submitted_at\nx,y,yesterday\n", "line 2"),
    ("team,file,submitted_at,final\nx,y,2025-03-01,maybe\n", "line 2"),
    ("team,file,submitted_at\nx,y,2025-03-01\nx,y,2025-03-02\n", "line 3"),
    ("team,file,submitted_at,final\nx\n", "line 2"),  # a short row
    ("team,file,submitted_at\nx,y,2025-03-01\n,z,2025-03-01\n", "line 3"),  # no team
    ("team,file,submitted_at\nx,y,9999-12-31T23:59:59-01:00\n", "line 2"),  # beyond year 9999 in UTC
    (b"team,file,submitted_at\n\xe9quipe,y,2025-03-01\n", "UTF-8"),  # Latin-1 export
])
def test_a_bad_manifest_is_a_named_error(klass, tmp_path, text, where):
    subs = tmp_path / "subs"
    subs.mkdir()
    manifest = subs / "manifest.csv"
    manifest.write_bytes(text) if isinstance(text, bytes) else manifest.write_text(text)
    with pytest.raises(LayoutError) as err:
        build_leaderboard(subs, klass["truth"], tmp_path / "site")
    assert where in str(err.value) and "manifest.csv" in str(err.value)


def test_hostile_names_are_escaped_everywhere(sites):
    for out in ("public", "final"):
        site = read_site(sites["dir"] / out)
        html = site["index.html"].decode("utf-8")
        assert html.count("<script") == 1 and "<img src=x" not in html and "onerror=alert(3)>" not in html
        assert "&lt;script&gt;alert(1)" in html and "&lt;img src=x onerror=alert(3)&gt;" in html
        assert 'quote&quot;onmouseover=&quot;alert(2)' in html
        assert "Content-Security-Policy" in html
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "external asset"
        for name in ("leaderboard.csv", "grades.csv"):
            for row in csv.reader(io.StringIO(site[name].decode("utf-8"))):
                for cell in row:
                    if not re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", cell):  # numbers are the kit's own
                        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
            assert "'=HYPERLINK" in site[name].decode() and "'@SUM(1+1)" in site[name].decode()
            assert "'-2+3" in site[name].decode()
        md = site["leaderboard.md"].decode("utf-8")
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in md.splitlines() if line.startswith("| ")}
        assert len(widths) <= 2  # board and problems tables; a team's "|" never adds a column
        assert "pipe\\|team\\*bold\\*" in md and "&lt;script&gt;" in md and "<script" not in md
        # The undecodable byte, the newline and the bidi override are shown as visible escapes, in valid
        # UTF-8, and the row names its folder.
        assert "bytes\\xffteam [folder" in html and "new\\nline" in html and "rtl\\u202eevil" in html
        assert "\u202e" not in html


def test_invalid_submissions_listed_with_their_team(klass, tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(klass["submissions"], subs)
    (subs / "only-bad").mkdir()
    np.save(subs / "only-bad" / "floats.npy", np.full((9, 240, 240), 0.5))
    os.symlink(klass["truth"], subs / "team-012" / "truth-link.h5")
    os.link(klass["truth"], subs / "team-013" / "truth-hardlink.h5")
    s = build_leaderboard(subs, klass["truth"], tmp_path / "site", bootstrap=0)
    board = {r["team"] for r in rows_of((tmp_path / "site" / "leaderboard.csv").read_text())}
    assert "only-bad" not in board and "team-012" in board
    grades = {r["team"]: r for r in rows_of((tmp_path / "site" / "grades.csv").read_text())}
    assert grades["only-bad"]["status"] == "no valid submission" and grades["only-bad"]["public_dice"] == ""
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    bad_rows = [line for line in md.splitlines() if line.startswith("| only-bad |")]
    assert len(bad_rows) == 1 and "floats.npy" in bad_rows[0]
    link_rows = [line for line in md.splitlines() if "truth-link.h5" in line]
    assert len(link_rows) == 1 and "unsafe\\_file" in link_rows[0]
    hard_rows = [line for line in md.splitlines() if "truth-hardlink.h5" in line]
    assert len(hard_rows) == 1 and "unsafe\\_file" in hard_rows[0]
    assert s.invalid == 5 + 3
    # Which file it is (a link to the truth) is not a property of its bytes: never cached.
    from data_spec import sha256_file

    entries = json.loads(Path(s.cache).read_text())["entries"]
    assert not any(key.startswith(sha256_file(klass["truth"])) for key in entries)
    # No absolute path of the instructor's machine is published.
    for data in read_site(tmp_path / "site").values():
        assert str(tmp_path).encode() not in data


def test_course_truth_without_flags_uses_the_seeded_split(klass, tmp_path):
    from data_spec import public_mask

    from data_spec import load_truth

    truth = write_course_array(tmp_path / "test_data_y.dat", klass["y"], "y")
    s = build_leaderboard(klass["submissions"], truth, tmp_path / "site", bootstrap=20, seed=5)
    assert s.public_cases == int(public_mask(9, 5).sum())
    assert "public_mask(9, seed=5 + the truth's sha256)" in s.public_flags
    # The split depends on the truth's content, not on the (guessable) seed alone.
    flags = load_truth(truth, seed=5).public
    assert np.array_equal(flags, load_truth(truth, seed=5).public)
    other = klass["y"].copy()
    other[0, 0, 0] ^= 1
    other_truth = write_course_array(tmp_path / "other" / "test_data_y.dat", other, "y")
    assert any(
        not np.array_equal(load_truth(truth, seed=k).public, load_truth(other_truth, seed=k).public) for k in range(5)
    )
    assert any(not np.array_equal(load_truth(truth, seed=k).public, public_mask(9, k)) for k in range(5))
    for name, data in read_site(tmp_path / "site").items():
        text = data.decode()
        if name.endswith((".md", ".html")):
            assert "derived with data_spec.public_mask" in text and "withheld" in text, name
        # The seed would tell anyone which cases are public: the site withholds it.
        assert "seed 5" not in text and "seed=5" not in text, name


def test_an_interrupted_run_leaves_the_previous_site(klass, tmp_path, monkeypatch):
    build(klass, tmp_path / "site", bootstrap=0)
    before = read_site(tmp_path / "site")

    def boom(report):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(render, "index_html", boom)
    with pytest.raises(RuntimeError):
        build(klass, tmp_path / "site", reveal=True, bootstrap=0)
    assert read_site(tmp_path / "site") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".leaderboard-cache", "site"]


def test_refuses_unsafe_site_and_cache_locations(klass, tmp_path):
    with pytest.raises(LayoutError, match="cache is inside the site"):
        build(klass, tmp_path / "site", cache=tmp_path / "site" / "cache")
    with pytest.raises(LayoutError, match="overlap"):
        build(klass, klass["submissions"] / "site")
    # A truth among the submissions would be one copy away from a perfect score.
    inside = klass["submissions"] / "zz-truth"
    inside.mkdir()
    try:
        shutil.copy(klass["truth"], inside / "test_truth.h5")
        with pytest.raises(LayoutError, match="truth is inside the submissions"):
            build_leaderboard(klass["submissions"], inside / "test_truth.h5", tmp_path / "site2", bootstrap=0)
    finally:
        shutil.rmtree(inside)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(LayoutError, match="not a leaderboard site"):
        build(klass, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(KitError, match="bootstrap"):
        build(klass, tmp_path / "x", bootstrap=-1)


def test_default_cache_stays_with_the_private_truth(klass, tmp_path):
    truth_dir = tmp_path / "private"
    truth_dir.mkdir()
    truth = shutil.copy(klass["truth"], truth_dir / "test_truth.h5")
    s = build_leaderboard(klass["submissions"], truth, tmp_path / "www" / "site", bootstrap=0)
    assert Path(s.cache).parent == truth_dir / ".leaderboard-cache"
    assert not (tmp_path / "www" / ".leaderboard-cache").exists()


def test_an_invalid_baseline_is_an_error(klass, tmp_path):
    (tmp_path / "bases" / "broken").mkdir(parents=True)
    (tmp_path / "bases" / "broken" / "pred.dat").write_bytes(b"\0" * 7)
    with pytest.raises(KitError, match="baseline 'broken' is invalid"):
        build(klass, tmp_path / "site", baselines=tmp_path / "bases")


def test_cli_json_and_text(klass, tmp_path):
    from brats_kit.commands.leaderboard import leaderboard

    runner = CliRunner()
    args = [str(klass["submissions"]), "--truth", str(klass["truth"]), "--bootstrap", "50",
            "--cache", str(tmp_path / "cache")]
    result = runner.invoke(leaderboard, args + ["--out", str(tmp_path / "site"), "--json", "--per-day", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["phase"] == "public" and summary["teams_ranked"] == 25
    result = runner.invoke(leaderboard, args + ["--out", str(tmp_path / "site"), "--reveal",
                                                "--baselines", str(klass["baselines"])])
    assert result.exit_code == 0, result.output
    assert "final (private) leaderboard: 25 of 25 teams ranked" in result.output
    assert "scored 2 new" in result.output  # only the two baselines were new
    result = runner.invoke(leaderboard, args + ["--out", str(tmp_path / "x"), "--per-day", "0"])
    assert result.exit_code == 2
    # Under the kit's root group a bad input is one line on stderr and exit code 1.
    from brats_kit.cli import main as group
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("x")
    result = runner.invoke(group, ["leaderboard"] + args + ["--out", str(tmp_path / "notes")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "not a leaderboard site" in result.stderr
