"""The whole course on the synthetic cohort, as one function (``brats-kit demo``).

Build the data, train reference baselines, let a simulated class of student
teams submit over several days (some of their files deliberately invalid),
grade everything, and publish the leaderboard, public and then revealed.
"""
from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import numpy as np

from plumbing.atomic import write_bytes
from plumbing.progress import no_progress
from data_spec import PRIVATE_DIR, SUBMISSION_FILE, TEST, TRUTH_H5, open_split, open_truth

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
#: Deliberately invalid files, one per mistake the grader is built to explain.
MISTAKES = ("values_0_255", "probabilities", "slices_last", "truncated")


def _write_mistake(path: Path, kind: str, y_pred: np.ndarray, proba: np.ndarray) -> Path:
    """Write one of the usual wrong submissions (what students really hand in)."""
    if kind == "values_0_255":
        return write_bytes(path.with_suffix(".dat"), (y_pred * 255).astype(np.uint8).tobytes())
    if kind == "probabilities":
        buf = io.BytesIO()
        np.save(buf, proba.astype(np.float32))
        return write_bytes(path.with_suffix(".npy"), buf.getvalue())
    if kind == "slices_last":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(np.moveaxis(y_pred, 0, -1)))
        return write_bytes(path.with_suffix(".npy"), buf.getvalue())
    if kind == "truncated":
        return write_bytes(path.with_suffix(".dat"), y_pred.tobytes()[: y_pred.nbytes // 2])
    raise ValueError(f"unknown mistake {kind!r}")


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
                path = _write_mistake(path, MISTAKES[(t // 2) % len(MISTAKES)], y_pred, proba)
            else:
                write_submission(path, y_pred)
            final = "yes" if (t == 3 and k == 1) else ""
            rows.append((team, path.name, stamp, final))
            files.append(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("team", "file", "submitted_at", "final"))
    writer.writerows(sorted(rows, key=lambda r: (r[2], r[0], r[1])))
    manifest = out / "manifest.csv"
    write_bytes(manifest, buf.getvalue().encode())
    return {"submissions": out, "manifest": manifest, "files": files}


def run_demo(out="demo-out", *, quick: bool = False, seed: int = 0, progress=no_progress, log=print) -> dict:
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
        Wraps long loops (see :mod:`brats_kit.progress`).
    log : callable
        Receives one line of text per step.

    Returns
    -------
    dict
        ``competition``, ``summary`` (:func:`data_spec.summary.describe`),
        ``baselines`` (name -> validation scores and submission path),
        ``submissions``, ``site`` and ``site_final`` (leaderboard folders),
        ``leaderboard`` and ``leaderboard_final`` (their summaries),
        ``report`` (the per-case report of the best baseline), ``figures``,
        ``seconds``.
    """
    from baselines.train import train_baseline
    from data_spec.submission import write_submission
    from data_spec.summary import describe
    from cohorts.synth import write_synthetic_competition
    from grader import grade
    from grader.leaderboard import build_leaderboard
    from starter.plots import course_figure, save_figure, save_overview_figures

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
    write_synthetic_competition(competition, n_train=n_train, n_test=n_test, seed=seed, progress=progress)
    summary = describe(competition)
    test = open_split(competition, TEST)
    x_test = np.asarray(test.x)

    log(f"2/5 training {len(names)} baselines: {', '.join(names)}")
    trained = {}
    baseline_rows = {}
    predictions = {}
    for name in names:
        result = train_baseline(name, competition, seed=seed, progress=progress)
        trained[name] = result
        y_pred = predictions[name] = result["estimator"].predict(x_test)
        path = write_submission(out / "baselines" / name / SUBMISSION_FILE, y_pred)
        scores = result["validation"]["scores"]
        baseline_rows[name] = {"validation": scores, "submission": path, "fit_seconds": result["seconds"]["fit"]}
        log(f"    {name:16s} validation Dice {scores['dice']:.3f}  F1 {scores['f1']:.3f}")

    assignment = team_models(names, seed)
    extra = sorted({m for m in assignment.values() if m[1] != seed})
    log(f"3/5 a class of {len(TEAMS)} teams submits over 5 days (some files deliberately invalid); "
        f"{len(extra)} of them retrain a baseline with their own seed")
    models = {(name, seed): result for name, result in trained.items()}
    for name, team_seed in extra:
        models[(name, team_seed)] = train_baseline(name, competition, seed=team_seed, progress=progress)
    klass = simulate_class({team: models[m] for team, m in assignment.items()}, x_test, out / "submissions", seed=seed)

    log("4/5 grading and publishing the leaderboard: public phase, then the reveal")
    n_boot = 200 if quick else 1000
    board = build_leaderboard(
        out / "submissions", truth, out / "site", baselines=out / "baselines",
        bootstrap=n_boot, seed=seed, cache=out / ".leaderboard-cache", progress=progress,
    )
    board_final = build_leaderboard(
        out / "submissions", truth, out / "site-final", reveal=True, baselines=out / "baselines",
        bootstrap=n_boot, seed=seed, cache=out / ".leaderboard-cache", progress=progress,
    )

    log("5/5 the per-case report of the best baseline, and the figures")
    best = max(baseline_rows, key=lambda n: baseline_rows[n]["validation"]["dice"])
    report = grade(baseline_rows[best]["submission"], truth, hd95=True, report_dir=out / "report", data=competition)
    figures = save_overview_figures(competition, out / "figures")
    cases = list(range(min(4, n_test)))
    fig = course_figure(
        x_test, y_true=np.asarray(open_truth(truth).y), y_pred=predictions[best], cases=cases, case_ids=test.case_id
    )
    figures.append(save_figure(fig, out / "figures" / f"test_predictions_{best}.png"))
    return {
        "competition": competition,
        "summary": summary,
        "baselines": baseline_rows,
        "best_baseline": best,
        "submissions": klass["submissions"],
        "site": out / "site",
        "site_final": out / "site-final",
        "leaderboard": board,
        "leaderboard_final": board_final,
        "report": report,
        "figures": figures,
        "seconds": time.perf_counter() - t_start,
    }

