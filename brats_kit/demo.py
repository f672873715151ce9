"""The whole course on the synthetic cohort, as one function (``brats-kit demo``)."""
from __future__ import annotations

from pathlib import Path

from brats_kit.progress import no_progress


def run_demo(out="demo-out", *, quick: bool = False, seed: int = 0, progress=no_progress, log=print) -> dict:
    """Build the synthetic competition, summarise it and draw the course's figures.

    Parameters
    ----------
    out : path-like
        Everything is written below this directory.
    quick : bool
        A small cohort (32 train, 8 test slices) for a fast look and for the tests.
    seed : int
    progress : callable
        Wraps long loops (see :mod:`brats_kit.progress`).
    log : callable
        Receives one line of text per step.

    Returns
    -------
    dict
        Paths of what was written: ``competition``, ``figures`` (list), ``summary``.
    """
    from data_spec.summary import describe
    from data_spec.synth import write_synthetic_competition
    from starter.plots import save_overview_figures

    out = Path(out)
    n_train, n_test = (32, 8) if quick else (256, 29)
    competition = out / "competition"
    log(f"building the synthetic cohort: {n_train} train + {n_test} test slices, seed {seed}")
    write_synthetic_competition(competition, n_train=n_train, n_test=n_test, seed=seed, progress=progress)
    summary = describe(competition)
    figures = save_overview_figures(competition, out / "figures")
    return {"competition": competition, "summary": summary, "figures": figures}
