"""Gradebook exports: roster, scale, formula guard and each LMS layout against hand-made expected files."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohorts.classroom import make_class
from data_spec import KitError, MissingFileError
from grader.leaderboard.gradebook import (
    NotRevealedError,
    RosterError,
    ScaleError,
    gradebook_from_site,
    parse_scale,
    read_roster,
    readme_path,
)

# A revealed site, written by hand in the renderers' layout (only the columns the gradebook reads matter).
LEADERBOARD_CSV = """rank,move,public_rank,team,kind,private_dice,public_dice
1,0,1,alpha,team,0.9,0.88
,,,best-net,baseline,0.85,0.84
2,0,2,'=cmd,team,0.75,0.7
,,,flair-threshold,baseline,0.6,0.62
3,0,3,gamma,team,0.5,0.55
"""
GRADES_CSV = """team,status,submission,submitted_at,public_dice,public_pixel_f1,public_rank,private_dice
alpha,ranked,a.npy,2025-03-01T09:00:00Z,0.88,0.9,1,0.9
'=cmd,ranked,b.npy,2025-03-01T09:00:00Z,0.7,0.7,2,0.75
delta,no valid submission,,,,,,
gamma,ranked,c.npy,2025-03-01T09:00:00Z,0.55,0.5,3,0.5
"""
ROSTER = """student_id,name,email,team
s1,Ada Lovelace,ada@example.org,alpha
s2,"Hopper, Grace",grace@example.org,alpha
s3,=HYPERLINK(1),bob@example.org,=cmd
s4,Dan,dan@example.org,delta
s5,Eve,eve@example.org,gamma
s6,Fay,fay@example.org,omega
"""
# linear:20 by default references: flair-threshold 0.6 = 0, best baseline 0.85 = 20, clipped.
# No valid submission: an empty grade (issue 21: not 0.0 unless asked), Eve's 0.5 earns 0.0.
EXPECTED = {
    "moodle": (
        "ID number,Email address,Full name,BraTS competition\r\n"
        "s1,ada@example.org,Ada Lovelace,20.0\r\n"
        "s2,grace@example.org,\"Hopper, Grace\",20.0\r\n"
        "s3,bob@example.org,'=HYPERLINK(1),12.0\r\n"
        "s4,dan@example.org,Dan,\r\n"
        "s5,eve@example.org,Eve,0.0\r\n"
        "s6,fay@example.org,Fay,\r\n"
    ),
    "canvas": (
        "Student,ID,SIS User ID,SIS Login ID,Section,BraTS competition\r\n"
        "Points Possible,,,,,20.0\r\n"
        "Ada Lovelace,,s1,ada@example.org,,20.0\r\n"
        "\"Hopper, Grace\",,s2,grace@example.org,,20.0\r\n"
        "'=HYPERLINK(1),,s3,bob@example.org,,12.0\r\n"
        "Dan,,s4,dan@example.org,,\r\n"
        "Eve,,s5,eve@example.org,,0.0\r\n"
        "Fay,,s6,fay@example.org,,\r\n"
    ),
    "csv": (
        "student_id,name,email,team,score,grade,status\r\n"
        "s1,Ada Lovelace,ada@example.org,alpha,0.9,20.0,graded\r\n"
        "s2,\"Hopper, Grace\",grace@example.org,alpha,0.9,20.0,graded\r\n"
        "s3,'=HYPERLINK(1),bob@example.org,'=cmd,0.75,12.0,graded\r\n"
        "s4,Dan,dan@example.org,delta,,,no valid submission\r\n"
        "s5,Eve,eve@example.org,gamma,0.5,0.0,graded\r\n"
        "s6,Fay,fay@example.org,omega,,,no valid submission\r\n"
    ),
}


@pytest.fixture()
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "leaderboard.csv").write_text(LEADERBOARD_CSV, encoding="utf-8")
    (site / "grades.csv").write_text(GRADES_CSV, encoding="utf-8")
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    return site


@pytest.mark.parametrize("fmt", ["moodle", "canvas", "csv"])
def test_each_format_matches_the_hand_made_file(site, fmt):
    out = site.parent / f"grades-{fmt}.csv"
    info = gradebook_from_site(site, site.parent / "roster.csv", out, fmt=fmt, scale="linear:20")
    assert out.read_bytes().decode("utf-8") == EXPECTED[fmt]
    assert (info["students"], info["graded"]) == (6, 4)
    readme = readme_path(out).read_text(encoding="utf-8")
    assert "flair-threshold baseline (0.6000) = 0 marks" in readme
    assert "best baseline (best-net, 0.8500) = 20 marks" in readme
    assert "PRIVATE" in readme
    assert "roster team 'omega' is not on the leaderboard" in readme
    assert "Ada" not in readme


def test_threshold_scale_and_explicit_linear_points(site):
    out = site.parent / "g.csv"
    gradebook_from_site(site, site.parent / "roster.csv", out, fmt="csv", scale="0.5:5,0.7:14,0.85:20")
    grades = [r["grade"] for r in csv.DictReader(io.StringIO(out.read_text()))]
    assert grades == ["20.0", "20.0", "14.0", "", "5.0", ""]
    assert "Dice >= 0.7: 14" in readme_path(out).read_text()
    gradebook_from_site(site, site.parent / "roster.csv", out, fmt="csv", scale="linear:0.5..1:10")
    grades = [r["grade"] for r in csv.DictReader(io.StringIO(out.read_text()))]
    assert grades == ["8.0", "8.0", "5.0", "", "0.0", ""]
    # Zeros when asked, and the README says which.
    gradebook_from_site(site, site.parent / "roster.csv", out, fmt="csv", scale="linear:0.5..1:10", zeros=True)
    grades = [r["grade"] for r in csv.DictReader(io.StringIO(out.read_text()))]
    assert grades == ["8.0", "8.0", "5.0", "0.0", "0.0", "0.0"] and "--zeros" in readme_path(out).read_text()


@pytest.mark.parametrize("text", ["linear:x", "linear:0.9..0.5:20", "0.8:10,0.7:14", "0.6:10,0.7:5", "2:10",
                                  "linear:a:b:c", "0.6;10", "linear:0.5..0.9:0"])
def test_bad_scales_are_named_errors(text):
    with pytest.raises(ScaleError):
        parse_scale(text)


def test_scale_needs_its_reference_baselines(site):
    (site / "leaderboard.csv").write_text(
        "\n".join(line for line in LEADERBOARD_CSV.splitlines() if "flair" not in line) + "\n")
    with pytest.raises(ScaleError, match="flair-threshold"):
        gradebook_from_site(site, site.parent / "roster.csv", site.parent / "g.csv", fmt="csv")


def test_refuses_before_the_reveal(site):
    (site / "grades.csv").write_text("team,status,public_dice\nalpha,ranked,0.9\n")
    with pytest.raises(NotRevealedError):
        gradebook_from_site(site, site.parent / "roster.csv", site.parent / "g.csv", fmt="csv")


def test_refuses_to_write_inside_the_site_or_over_a_foreign_file(site):
    with pytest.raises(KitError, match="inside the published site"):
        gradebook_from_site(site, site.parent / "roster.csv", site / "g.csv", fmt="csv")
    foreign = site.parent / "mine.csv"
    foreign.write_text("keep me")
    with pytest.raises(KitError, match="did not write"):
        gradebook_from_site(site, site.parent / "roster.csv", foreign, fmt="csv")
    assert foreign.read_text() == "keep me"
    ours = site.parent / "ours.csv"
    gradebook_from_site(site, site.parent / "roster.csv", ours, fmt="csv")
    gradebook_from_site(site, site.parent / "roster.csv", ours, fmt="moodle")  # a rerun replaces its own file
    assert ours.read_text().startswith("ID number")


@pytest.mark.parametrize("text, where, match", [
    ("student_id,name,team\ns1,A,t\n", "line 1", "email"),
    ("student_id,name,email,team\ns1,A,a@x.org,t\ns2,,b@x.org,t\n", "line 3", "empty name"),
    ("student_id,name,email,team\ns1,A,a@x.org,t\ns1,B,b@x.org,t\n", "line 3", "already on line 2"),
    ("student_id,name,email,team\ns1,A,a@x.org,t\ns2,B,A@X.org,t\n", "line 3", "already on line 2"),
    ("student_id,name,email,team\ns1,A,not-an-email,t\n", "line 2", "e-mail"),
    ("student_id,name,email,team\ns1,A,a@x.org,t,extra\n", "line 2", "more cells"),
    ("student_id,name,email,team\n", None, "no student"),
])
def test_roster_errors_name_the_line(tmp_path, text, where, match):
    path = tmp_path / "roster.csv"
    path.write_text(text)
    with pytest.raises(RosterError, match=match) as err:
        read_roster(path)
    assert err.value.where == where
    assert err.value.code == "bad_roster"


def test_roster_encoding_and_missing_file(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("student_id,name,email,team\ns1,Jos\xe9,j@x.org,t\n".encode("latin-1"))
    with pytest.raises(RosterError, match="UTF-8"):
        read_roster(path)
    with pytest.raises(MissingFileError):
        read_roster(tmp_path / "none.csv")
    path.write_text("\ufeffstudent_id,name,email,team\ns1,A,a@x.org,t\n\n", encoding="utf-8")
    assert [s.student_id for s in read_roster(path)] == ["s1"]


def test_offline_leaderboard_writes_the_gradebook(tmp_path):
    from brats_kit.cli import main

    c = make_class(tmp_path / "class", n_teams=4, n_cases=9, seed=3, invalid_every=0, n_baselines=2)
    shutil.move(c["baselines"] / "all-empty", c["baselines"] / "flair-threshold")
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email,team\n" + "".join(
        f"s{i},Student {i},s{i}@example.org,{team}\n" for i, team in enumerate(c["teams"])))
    site, out = tmp_path / "site", tmp_path / "grades.csv"
    args = ["leaderboard", str(c["submissions"]), "--truth", str(c["truth"]), "--out", str(site),
            "--baselines", str(c["baselines"]), "--bootstrap", "0", "--cache", str(tmp_path / "cache"),
            "--roster", str(roster), "--format", "canvas", "--scale", "linear:10", "--grades-out", str(out)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "--reveal" in refused.output
    assert not out.exists()
    result = CliRunner().invoke(main, args + ["--reveal"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert rows[1] == ["Points Possible", "", "", "", "", "10.0"]
    assert [r[2] for r in rows[2:]] == ["s0", "s1", "s2", "s3"]
    private = {r["team"]: float(r["private_dice"]) for r in csv.DictReader(open(site / "grades.csv"))}
    bases = {r["team"]: float(r["private_dice"]) for r in csv.DictReader(open(site / "leaderboard.csv"))
             if r["kind"] == "baseline"}
    low, high = bases["flair-threshold"], max(bases.values())
    for r, team in zip(rows[2:], c["teams"]):
        expected = round(10 * min(1, max(0, (private[team] - low) / (high - low))), 2)
        assert float(r[5]) == pytest.approx(expected)
    assert "wrote gradebook" in result.output


def test_a_team_shown_under_a_marked_display_name_still_matches(site):
    from grader.leaderboard.collect import display_names

    team = "\ufb01sh"  # the ligature "fi": the site shows the name normalised, and marked
    label = display_names({team})[team]
    assert label != team
    (site / "grades.csv").write_text(GRADES_CSV + f'"{label}",ranked,d.npy,2025-03-01T09:00:00Z,0.8,0.8,4,0.8\n',
                                     encoding="utf-8")
    roster = site.parent / "roster.csv"
    roster.write_text(ROSTER + f"s7,Gus,gus@example.org,{team}\n", encoding="utf-8")
    out = site.parent / "g.csv"
    gradebook_from_site(site, roster, out, fmt="csv", scale="linear:20")
    last = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))[-1]
    assert (last["student_id"], last["score"], last["grade"]) == ("s7", "0.8", "16.0")
