"""The whole course on the synthetic cohort, as one function (``brats-kit demo``).

Build the data, train reference baselines, let a simulated class of student
teams submit over several days (some of their files deliberately invalid),
grade everything, and publish the leaderboard, public and then revealed.
"""
from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from cohorts.classroom import MISTAKES, write_mistake
from cohorts.synth import ReproducibleSeedWarning
from data_spec import PRIVATE_DIR, SUBMISSION_FILE, TEST, TRUTH_H5, load_truth, open_split
from plumbing.atomic import write_text
from plumbing.progress import no_progress

#: Reference baselines trained by the demo: the floor, clustering, an SVM, pixel and window MLPs, the strongest.
DEMO_BASELINES = ("flair-threshold", "gmm", "svm-pixel", "mlp-pixel", "mlp-window3", "mlp-multiscale")
QUICK_BASELINES = ("flair-threshold", "mlp-pixel", "mlp-window3")
#: Simulated teams: (team, the baseline its students start from, their seed offset).
#: A non-zero offset retrains that baseline with another seed, as a student would.
TEAMS = (
    ("flair-and-square", "flair-threshold", 0),
    ("pixel-pushers", "mlp-pixel", 1),
    ("the-svm-society", "svm-pixel", 0),
    ("window-shoppers", "mlp-window3", 0),
    ("dice-rollers", "mlp-window3", 2),
    ("edge-lords", "mlp-window3", 0),
    ("context-is-king", "mlp-multiscale", 0),
    ("late-night-gmm", "gmm", 0),
)
#: When the simulated class starts handing in (its days follow).
CLASS_START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def team_models(names, seed: int = 0) -> dict:
    """Which trained model each team starts from: ``team -> (baseline, seed)``.

    A team whose baseline is not among ``names`` (the quick demo trains fewer)
    takes the model at the same relative position in ``names`` (teams and
    baselines are both listed from the simplest to the strongest).
    """
    out = {}
    for t, (team, wanted, offset) in enumerate(TEAMS):
        base = wanted if wanted in names else names[min(t * len(names) // len(TEAMS), len(names) - 1)]
        out[team] = (base, seed + offset)
    return out


@dataclass(frozen=True)
class HandIn:
    """One file a simulated team hands in: when, whether it names it final, whether it is a deliberate mistake."""

    team: str
    path: Path
    submitted_at: datetime
    final: bool = False
    mistake: bool = False


def simulate_class(models: dict, x_test, out: Path, *, seed: int = 0, days: int = 5) -> list:
    """The files a simulated class hands in over ``days`` days, written under ``out/<team>/``.

    Each team starts from a trained model (``models[team]``: the result of
    :func:`baselines.train.train_baseline`) and tries post-processing settings
    around the tuned ones (threshold, minimum component size, hole filling)
    on its probability maps, about one submission a day, ending with the
    tuned settings; every other team first hands in one of the usual invalid
    files (:data:`cohorts.classroom.MISTAKES`). One team names a submission final.

    Returns
    -------
    list of HandIn
        In the order they are handed in (time, team, file).
    """
    from baselines.postprocess import postprocess
    from data_spec.submission import write_submission

    rng = np.random.default_rng([seed, 0xC1A55])
    maps = {}
    hand_ins = []
    for t, (team, _, _) in enumerate(TEAMS):
        trained = models[team]
        key = id(trained["estimator"])
        if key not in maps:
            maps[key] = trained["estimator"].predict_proba_and_foreground(x_test)
        proba, fg = maps[key]
        tuned = trained["postprocess"]
        n_subs = 2 + int(rng.integers(0, 3))
        day0 = int(rng.integers(0, 2))
        for k in range(n_subs):
            day = min(day0 + k + int(rng.integers(0, 2)), days - 1)
            when = CLASS_START + timedelta(days=day, hours=int(rng.integers(0, 12)), minutes=int(rng.integers(0, 60)))
            settings = dict(tuned) if k == n_subs - 1 else {
                "threshold": float(np.clip(tuned["threshold"] + rng.normal(0, 0.15), 0.05, 0.95)),
                "min_size": int(rng.choice([0, 10, 30, 80])),
                "fill_holes": bool(rng.integers(0, 2)),
            }
            y_pred = postprocess(proba, fg, **settings).astype(np.uint8)
            path = out / team / f"sub{k + 1}_{SUBMISSION_FILE}"
            mistake = k == 0 and t % 2 == 1
            if mistake:
                path = write_mistake(path, MISTAKES[(t // 2) % len(MISTAKES)], y_pred, proba)
            else:
                write_submission(path, y_pred)
            hand_ins.append(HandIn(team, path, when, final=(t == 3 and k == 1), mistake=mistake))
    return sorted(hand_ins, key=lambda h: (h.submitted_at, h.team, h.path.name))


class SimulatedClock:
    """The server's clock in the demo: the time of the hand-in being played (aware UTC)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_roster(path: Path, teams, members: int = 2) -> Path:
    """A made-up roster (``student_id,name,email,team``): ``members`` students per team."""
    rows = []
    for t, team in enumerate(teams):
        for m in range(members):
            n = t * members + m + 1
            rows.append((f"s{n:04d}", f"Student {n}", f"student{n:04d}@course.example", team))
    return write_text(path, "student_id,name,email,team\n" + "".join(",".join(r) + "\n" for r in rows))


def play_class_through_server(hand_ins, competition: Path, course: Path, *, log=print) -> dict:
    """Hand in every file through a submission server on loopback, as the teams would; reveal; export.

    A course is created under ``course`` (roster of the simulated teams, 5 valid
    submissions per team and day, a deadline after the last hand-in). A server
    runs in a background thread on a free loopback port with a simulated clock set
    to each hand-in's time; every team submits with :func:`brats_kit.server.submit`
    (the ``brats-kit submit`` client: a valid file is validated locally first; the
    deliberate mistakes are sent as they are, so the server's verdict applies), names
    its finals through the API, and the instructor reveals after the deadline.

    Returns
    -------
    dict
        ``course``, ``receipts`` (per team: status and public Dice of each hand-in),
        ``accepted``, ``invalid``, ``audit`` (the audit verification).
    """
    from brats_kit.server import CourseService, audit_course, choose_finals, init_course, start_server, submit
    from brats_kit.server.course import Course, read_tokens

    clock = SimulatedClock(CLASS_START)
    deadline = max(h.submitted_at for h in hand_ins) + timedelta(days=1)
    roster = write_roster(course.parent / f"{course.name}-roster.csv", [team for team, _, _ in TEAMS])
    info = init_course(course, competition=competition, roster=roster, per_day=5, deadline=deadline.isoformat(),
                       finals=2, workers=1, clock=clock)
    tokens = read_tokens(info["tokens"])
    receipts: dict = {}
    # No live board: the demo publishes its sites from the export once the class is done.
    with start_server(course, clock=clock, board_interval_s=0) as server:
        for h in hand_ins:
            clock.now = h.submitted_at
            receipt = submit(h.path, server.url, tokens[h.team], validate=not h.mistake)
            receipts.setdefault(h.team, []).append(receipt)
            if h.final:
                choose_finals(server.url, tokens[h.team], [receipt.id])
    clock.now = deadline + timedelta(hours=1)
    with Course(course) as opened:
        CourseService(opened, clock=clock).reveal()
        audit = audit_course(opened)
    accepted = sum(r.status == "scored" for rs in receipts.values() for r in rs)
    invalid = sum(r.status == "invalid" for rs in receipts.values() for r in rs)
    log(f"    {accepted} submissions scored on arrival, {invalid} refused as invalid (each with its hints); "
        "results revealed after the deadline")
    return {"course": course, "receipts": {team: [{"id": r.id, "status": r.status, "public": r.public}
                                                 for r in rs] for team, rs in receipts.items()},
            "accepted": accepted, "invalid": invalid, "audit": audit}


def export_class(course: Path, out: Path) -> Path:
    """``brats-kit server export``: the course's submissions as ``SUBMISSIONS/<team>/<file>`` and a manifest."""
    from brats_kit.server import export_submissions
    from brats_kit.server.course import Course

    with Course(course) as opened:
        return export_submissions(opened, out)["out"]


@dataclass
class DemoResult:
    """Where everything the demo wrote is: ``brats-kit demo --json`` prints :meth:`to_dict`.

    Attributes
    ----------
    competition : Path
    summary : dict
        :func:`data_spec.summary.describe` of the competition.
    baselines : dict
        name -> ``validation`` scores, ``submission`` path, ``fit_seconds``.
    best_baseline : str
    submissions : Path
        The class's submissions, as the server exported them.
    course : Path
        The submission server's course folder.
    site, site_final : Path
        The public and the revealed leaderboard sites.
    leaderboard, leaderboard_final : LeaderboardSummary
    report : dict
        :func:`grader.grade` of the best baseline, with its per-case report.
    figures : list of Path
    seconds : float
    code : dict
        The code track's team (:func:`brats_kit.demo_code.play_code_track`).
    """

    competition: Path
    summary: dict
    baselines: dict
    best_baseline: str
    submissions: Path
    course: Path
    site: Path
    site_final: Path
    leaderboard: object
    leaderboard_final: object
    report: dict
    figures: list
    seconds: float
    code: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["leaderboard"], out["leaderboard_final"] = self.leaderboard.to_dict(), self.leaderboard_final.to_dict()
        return out


def run_demo(out="demo-out", *, quick: bool = False, seed: Optional[int] = None, progress=no_progress,
             log=print) -> DemoResult:
    """Play the whole course on the synthetic cohort; return where everything is.

    Parameters
    ----------
    out : path-like
        Everything is written below this directory.
    quick : bool
        A small cohort (40 train, 10 test slices), three baselines and fewer
        bootstrap resamples: about a minute, and what the tests run.
    seed : int, optional
        Seeds the cohort, the training, the class and the bootstrap: the same
        seed gives byte-identical data, sites and reports. Default: a secret seed
        for the cohort (recorded only under ``competition/private/``, so nobody can
        regenerate its truth) and 0 for the rest.
    progress : callable
        Wraps long loops (see :mod:`plumbing.progress`).
    log : callable
        Receives one line of text per step.

    Returns
    -------
    DemoResult
    """
    from data_spec.summary import describe
    from cohorts.synth import write_synthetic_competition

    t_start = time.perf_counter()
    out = Path(out)
    # A rerun into the same folder must not grade files left by an earlier run.
    for stale in (out / "baselines", out / "submissions", out / "handed-in", out / "course", out / "code-course",
                  out / "code-submission"):
        shutil.rmtree(stale, ignore_errors=True)
    data_seed, seed = seed, 0 if seed is None else seed
    n_train, n_test = (40, 10) if quick else (256, 29)
    names = QUICK_BASELINES if quick else DEMO_BASELINES
    competition = out / "competition"
    truth = competition / PRIVATE_DIR / TRUTH_H5

    shown_seed = "a secret seed" if data_seed is None else f"seed {data_seed}"
    log(f"1/5 building the synthetic cohort: {n_train} train + {n_test} test slices ({shown_seed})")
    # force: the demo's own competition, rebuilt on every run (a rerun must not stop on the previous one)
    with warnings.catch_warnings():
        # An explicit --seed is the demo's reproducibility, not a course's competition.
        warnings.simplefilter("ignore", ReproducibleSeedWarning)
        write_synthetic_competition(competition, n_train=n_train, n_test=n_test, seed=data_seed, progress=progress,
                                    force=True, n_hidden=n_test)  # hidden slices: the code track's
    summary = describe(competition)
    test = open_split(competition, TEST)
    x_test = np.asarray(test.x)

    log(f"2/5 training {len(names)} baselines: {', '.join(names)}")
    trained, baseline_rows, predictions = _train_baselines(names, competition, x_test, out, seed, progress, log)

    assignment = team_models(names, seed)
    extra = sorted({m for m in assignment.values() if m[1] != seed})
    log(f"3/5 a class of {len(TEAMS)} teams hands in over 5 days through the submission server on loopback "
        f"(some files deliberately invalid); {len(extra)} of them retrain a baseline with their own seed")
    models = {(name, seed): result for name, result in trained.items()}
    for name, team_seed in extra:
        models[(name, team_seed)] = _train(name, competition, team_seed, progress)
    hand_ins = simulate_class({team: models[m] for team, m in assignment.items()}, x_test, out / "handed-in",
                              seed=seed)
    klass = play_class_through_server(hand_ins, competition, out / "course", log=log)
    submissions = export_class(out / "course", out / "submissions")
    from brats_kit.demo_code import CODE_TEAM, play_code_track

    log("    the code track: one team hands in its model's code, run in the sandbox on hidden slices")
    code = play_code_track(competition, out, roster=write_roster(out / "code-course-roster.csv", [CODE_TEAM]),
                           seed=seed, log=log)

    log("4/5 publishing the leaderboard from the server's export: public phase, then the reveal")
    board, board_final = _publish_boards(out, truth, n_boot=200 if quick else 1000, seed=seed, progress=progress)

    log("5/5 the per-case report of the best baseline, and the figures")
    best = max(baseline_rows, key=lambda n: baseline_rows[n]["validation"]["dice"])
    report, figures = _report_and_figures(out, competition, truth, test, baseline_rows[best]["submission"],
                                          best, predictions[best])
    return DemoResult(
        competition=competition, summary=summary, baselines=baseline_rows, best_baseline=best,
        submissions=submissions, course=klass["course"], site=out / "site", site_final=out / "site-final",
        leaderboard=board, leaderboard_final=board_final, report=report, figures=figures,
        seconds=time.perf_counter() - t_start, code=code,
    )


def _train(name, competition, seed, progress) -> dict:
    from baselines.train import train_baseline

    return train_baseline(name, competition, seed=seed, progress=progress)


def _train_baselines(names, competition, x_test, out: Path, seed, progress, log) -> tuple:
    """Train each reference baseline, write its test submission; ``(trained, rows, predictions)``."""
    from data_spec.submission import write_submission

    trained, rows, predictions = {}, {}, {}
    for name in names:
        result = trained[name] = _train(name, competition, seed, progress)
        y_pred = predictions[name] = result["estimator"].predict(x_test)
        path = write_submission(out / "baselines" / name / SUBMISSION_FILE, y_pred)
        scores = result["validation"]["scores"]
        rows[name] = {"validation": scores, "submission": path, "fit_seconds": result["seconds"]["fit"]}
        log(f"    {name:16s} validation Dice {scores['dice']:.3f}  F1 {scores['f1']:.3f}")
    return trained, rows, predictions


def _publish_boards(out: Path, truth, *, n_boot: int, seed: int, progress) -> tuple:
    """The public leaderboard, then the revealed one, from the class's submissions."""
    from grader.leaderboard import build_leaderboard

    common = dict(baselines=out / "baselines", bootstrap=n_boot, seed=seed, cache=out / ".leaderboard-cache",
                  progress=progress)
    board = build_leaderboard(out / "submissions", truth, out / "site", **common)
    board_final = build_leaderboard(out / "submissions", truth, out / "site-final", reveal=True, **common)
    return board, board_final


def _report_and_figures(out: Path, competition, truth, test, submission, best: str, y_pred) -> tuple:
    """The grader's per-case report of the best baseline, and the course's figures."""
    from grader import grade
    from starter.plots import course_figure, save_figure, save_overview_figures

    report = grade(submission, truth, hd95=True, report_dir=out / "report", data=competition)
    figures = save_overview_figures(competition, out / "figures")
    cases = list(range(min(4, len(test))))
    fig = course_figure(
        np.asarray(test.x), y_true=load_truth(truth).y, y_pred=y_pred, cases=cases, case_ids=test.case_id
    )
    figures.append(save_figure(fig, out / "figures" / f"test_predictions_{best}.png"))
    return report, figures
