"""The leaderboard: a folder of submissions in, a site students can trust out.

``build_leaderboard(SUBMISSIONS, TRUTH, SITE)`` runs the two steps,
:func:`~.build.collect_and_score` (files to entries with counts) and
:func:`~.build.rank_and_publish` (entries to ranked rows to the site); its docstring
has a runnable example.

Modules: :mod:`~.collect` (truth, submissions, manifest, quota), :mod:`~.cache`
(scores keyed by file, truth and scorer), :mod:`~.scoring` (validation and counts,
with joblib), :mod:`~.select` (each team's submission), :mod:`~.uncertainty`
(bootstrap intervals, paired tests for ties), :mod:`~.ranking` (the one ranking and its tie
rule), :mod:`~.figures` and :mod:`~.render`
(CSV, Markdown, HTML), :mod:`~.build` (the whole run).
"""
from .cache import SCORER_VERSION

__all__ = ["SCORER_VERSION", "SITE_FILES", "build_leaderboard", "collect_and_score", "rank_and_publish"]


def __getattr__(name):
    # Lazy: joblib workers import this package to score files, and need neither
    # scipy.stats nor matplotlib for it (a second per worker saved).
    if name in ("build_leaderboard", "collect_and_score", "rank_and_publish", "SITE_FILES"):
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
