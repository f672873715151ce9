"""The whole course on the synthetic cohort, as one function (``brats-kit demo``).

Build the data, train reference baselines, let a simulated class of student
teams submit over several days (some of their files deliberately invalid),
grade everything, and publish the leaderboard, public and then revealed.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from plumbing.progress import no_progress
from cohorts.classroom import MISTAKES, write_mistake
from data_spec import PRIVATE_DIR, SUBMISSION_FILE, TEST, TRUTH_H5, load_truth, open_split
from data_spec.manifest import MANIFEST_CSV, write_manifest

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


def simulate_class(models: dict, x_test, out: Path, *, seed: int = 0, days: int = 5) -> dict:
    """Submissions of a simulated class, spread over ``days`` days, with a manifest.

    Each team starts from a trained model (``models[team]``: the result of
    :func:`baselines.train.train_baseline`) and tries post-processing settings
    around the tuned ones (threshold, minimum component size, hole filling)
    on its probability maps, about one submission a day, ending with the
    tuned settings; every other team first hands in one of the usual invalid
    files. One team names its final submission in the manifest.

    Returns
    -------
    dict
        ``submissions`` (the folder), ``manifest`` (its manifest.csv), ``files``.
    """
    from baselines.postprocess import postprocess
    from data_spec.submission import write_submission

    rng = np.random.default_rng([seed, 0xC1A55])
    maps = {}
    rows = []
    files = []
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
            stamp = f"2026-11-{2 + day:02d}T{9 + int(rng.integers(0, 12)):02d}:{int(rng.integers(0, 60)):02d}:00Z"
            settings = dict(tuned) if k == n_subs - 1 else {
                "threshold": float(np.clip(tuned["threshold"] + rng.normal(0, 0.15), 0.05, 0.95)),
                "min_size": int(rng.choice([0, 10, 30, 80])),
                "fill_holes": bool(rng.integers(0, 2)),
            }
            y_pred = postprocess(proba, fg, **settings).astype(np.uint8)
            path = out / team / f"sub{k + 1}_{SUBMISSION_FILE}"
            if k == 0 and t % 2 == 1:
                path = write_mistake(path, MISTAKES[(t // 2) % len(MISTAKES)], y_pred, proba)
            else:
                write_submission(path, y_pred)
            final = True if (t == 3 and k == 1) else None
            rows.append((team, path.name, stamp, final))
            files.append(path)
    manifest = write_manifest(out / MANIFEST_CSV, sorted(rows, key=lambda r: (r[2], r[0], r[1])))
    return {"submissions": out, "manifest": manifest, "files": files}


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
        The class's submissions folder.
    site, site_final : Path
        The public and the revealed leaderboard sites.
    leaderboard, leaderboard_final : LeaderboardSummary
    report : dict
        :func:`grader.grade` of the best baseline, with its per-case report.
    figures : list of Path
    seconds : float
    """

    competition: Path
    summary: dict
    baselines: dict
    best_baseline: str
    submissions: Path
    site: Path
    site_final: Path
    leaderboard: object
    leaderboard_final: object
    report: dict
    figures: list
    seconds: float

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["leaderboard"], out["leaderboard_final"] = self.leaderboard.to_dict(), self.leaderboard_final.to_dict()
        return out


def run_demo(out="demo-out", *, quick: bool = False, seed: int = 0, progress=no_progress, log=print) -> DemoResult:
    """Play the whole course on the synthetic cohort; return where everything is.

    Parameters
    ----------
    out : path-like
        Everything is written below this directory.
    quick : bool
        A small cohort (40 train, 10 test slices), three baselines and fewer
        bootstrap resamples: about a minute, and what the tests run.
    seed : int
        Seeds the cohort, the training, the class and the bootstrap.
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
    for stale in (out / "baselines", out / "submissions"):
        shutil.rmtree(stale, ignore_errors=True)
    n_train, n_test = (40, 10) if quick else (256, 29)
    names = QUICK_BASELINES if quick else DEMO_BASELINES
    competition = out / "competition"
    truth = competition / PRIVATE_DIR / TRUTH_H5

    log(f"1/5 building the synthetic cohort: {n_train} train + {n_test} test slices (seed {seed})")
    # force: the demo's own competition, rebuilt on every run (a rerun must not stop on the previous one)
    write_synthetic_competition(competition, n_train=n_train, n_test=n_test, seed=seed, progress=progress, force=True)
    summary = describe(competition)
    test = open_split(competition, TEST)
    x_test = np.asarray(test.x)

    log(f"2/5 training {len(names)} baselines: {', '.join(names)}")
    trained, baseline_rows, predictions = _train_baselines(names, competition, x_test, out, seed, progress, log)

    assignment = team_models(names, seed)
    extra = sorted({m for m in assignment.values() if m[1] != seed})
    log(f"3/5 a class of {len(TEAMS)} teams submits over 5 days (some files deliberately invalid); "
        f"{len(extra)} of them retrain a baseline with their own seed")
    models = {(name, seed): result for name, result in trained.items()}
    for name, team_seed in extra:
        models[(name, team_seed)] = _train(name, competition, team_seed, progress)
    klass = simulate_class({team: models[m] for team, m in assignment.items()}, x_test, out / "submissions", seed=seed)

    log("4/5 grading and publishing the leaderboard: public phase, then the reveal")
    board, board_final = _publish_boards(out, truth, n_boot=200 if quick else 1000, seed=seed, progress=progress)

    log("5/5 the per-case report of the best baseline, and the figures")
    best = max(baseline_rows, key=lambda n: baseline_rows[n]["validation"]["dice"])
    report, figures = _report_and_figures(out, competition, truth, test, baseline_rows[best]["submission"],
                                          best, predictions[best])
    return DemoResult(
        competition=competition, summary=summary, baselines=baseline_rows, best_baseline=best,
        submissions=klass["submissions"], site=out / "site", site_final=out / "site-final",
        leaderboard=board, leaderboard_final=board_final, report=report, figures=figures,
        seconds=time.perf_counter() - t_start,
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
