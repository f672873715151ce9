"""``build_leaderboard``: from a folder of submissions to a published site, in one call."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from plumbing.atomic import atomic_dir, write_bytes, write_text
from plumbing.progress import no_progress
from data_spec import KitError, LayoutError
from data_spec.errors import BadArgumentError, check_range
from data_spec.ranking_record import recorded_ranking
from grader.score_types import RANKING

from . import columns as extra, figures, render
from .cache import ScoreCache
from .collect import (
    INVALID,
    OVER_QUOTA,
    apply_quota,
    clean_text,
    collect_baselines,
    collect_submissions,
    display_names,
    load_board_truth,
)
from .gradebook import BoardScores
from .ranking import masks_for, rank_teams, ranking_type, score_of
from .scoring import score_submissions
from .stability import analyse
from .stability_page import stability_html
from .uncertainty import (
    METHOD_NOTE,
    bootstrap_indices,
    bootstrap_mean,
    bootstrap_ranks,
    neighbour_ties,
    rank_interval,
    score_interval,
)

#: Files of a site, in the order they are written.
SITE_FILES = ("leaderboard.csv", "grades.csv", "leaderboard.md", "index.html", "stability.html")
#: Written into every site, so that a rerun replaces only a directory that is one.
SITE_MARKER = ".brats-kit-leaderboard"
_STREAM = {"public": 1, "private": 2}
#: Upper bounds of the numeric options: beyond them a run only exhausts the machine.
MAX_BOOTSTRAP = 100_000
MAX_JOBS = 256
MAX_PER_DAY = 10_000
MAX_SEED = 2**63 - 1


def check_options(*, bootstrap: int, jobs: int, seed: int, per_day: Optional[int]) -> None:
    """Refuse out-of-range numeric options with :class:`~data_spec.errors.BadArgumentError` (exit 1)."""
    for name, value in (("bootstrap", bootstrap), ("jobs", jobs), ("seed", seed), ("per_day", per_day)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise BadArgumentError(f"{name} must be a whole number, got {value!r}")
    check_range("bootstrap", bootstrap, 0, MAX_BOOTSTRAP)
    if jobs != -1:
        check_range("jobs (or -1 for all cores)", jobs, 1, MAX_JOBS)
    check_range("seed", seed, 0, MAX_SEED)
    if per_day is not None:
        check_range("per_day", per_day, 1, MAX_PER_DAY)


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _check_paths(submissions: Path, truth: Path, out: Path, cache: Path, baselines: Optional[Path]) -> None:
    """Refuse layouts where the site would overwrite or publish what it must not."""
    if _inside(truth, submissions):
        raise LayoutError(
            "the truth is inside the submissions folder", path=truth,
            hint="keep the truth in the competition's private/ folder, apart from what teams hand in",
        )
    for name, p in (("submissions folder", submissions), ("truth", truth), ("baselines folder", baselines)):
        if p is not None and (_inside(p, out) or _inside(out, p)):
            raise LayoutError(
                f"the site folder and the {name} overlap", path=out,
                hint="write the site to its own folder, e.g. --out site next to the submissions",
            )
    if _inside(cache, out):
        raise LayoutError(
            "the score cache is inside the site folder", path=cache,
            hint="the cache holds per-case counts of the private cases: keep it out of what you publish",
        )
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SITE_MARKER).is_file())):
        raise LayoutError(
            "refusing to replace a folder that is not a leaderboard site", path=out,
            expected=f"a new or empty folder, or a site written before (with {SITE_MARKER})",
        )


def phase_scores(valid, masks: dict, ranking=RANKING) -> None:
    """The official score, pixel F1 and the ranking score of each phase a valid submission lacks.

    Count-based scores in one batched call per phase; a mask score ranked by comes from the
    per-case values stored at scoring time. A submission scored elsewhere (the server stores
    both phases' scores at upload) keeps its own.
    """
    from grader.metrics import scores_from_counts

    for phase, mask in masks.items():
        todo = [s for s in valid if phase not in s.scores]
        if todo:
            tp, fp, fn = (np.stack([getattr(s.counts, k) for s in todo]) for k in ("tp", "fp", "fn"))
            scores = scores_from_counts(tp[:, mask], fp[:, mask], fn[:, mask])
            for i, sub in enumerate(todo):
                sub.scores[phase] = {name: float(scores[name][i]) for name in (RANKING.name, "f1")}
        if ranking.needs_masks:
            for sub in valid:
                sub.scores[phase].setdefault(ranking.name, ranking.aggregate(_per_case(sub, ranking)[mask]))


def _per_case(sub, ranking) -> np.ndarray:
    """A scored submission's per-case values of the ranking score (Dice from its counts)."""
    if not ranking.needs_masks:
        return sub.counts.dice()
    values = sub.mask_scores.get(ranking.name)
    if values is None:
        raise KitError(f"{clean_text(sub.team)}/{clean_text(sub.name)} has no per-case {ranking.title}",
                       code="missing_scores", hint="score the submissions with this ranking (collect_and_score "
                       "with metrics naming it)")
    return values


def _best_first(value: float, ranking=RANKING) -> float:
    return value if ranking.is_lower_the_better else -value


def _board(ranked: list, bases: list, labels: dict, phase: str, mask, n_boot: int, seed: int,
           ranking=RANKING) -> tuple:
    """The rows of one phase: the ranked teams with intervals and ties, baselines as reference rows.

    Returns row dicts in board order (best first, baselines placed by score), and the ranking's
    :class:`~.stability.Stability` from the same resamples (None without a bootstrap or with
    fewer than two teams).
    """
    entries = [("team", labels[r.team], r.submission, r.reason, r) for r in ranked]
    entries += [("baseline", clean_text(b.team), b, "baseline", None) for b in bases]
    rows = []
    for kind, label, sub, reason, team in entries:
        s = sub.scores[phase]
        rows.append({"kind": kind, "label": label, "dice": s[ranking.name], "f1": s["f1"], "sub": sub,
                     "submission": clean_text(sub.name), "selected_by": reason,
                     "submitted_at": sub.time_text if kind == "team" else "",
                     "dice_lo": None, "dice_hi": None, "rank": team.rank if team else None,
                     "rank_lo": None, "rank_hi": None, "tied": None, "p_vs_above": None})
        if team is not None and team.public_rank is not None:
            rows[-1].update(public_rank=team.public_rank, move=team.move)
    n_teams = len(ranked)
    stab = None
    # Higher is better from here on: a lower-is-better score is negated for the ranks and the tests.
    sign = -1.0 if ranking.is_lower_the_better else 1.0
    if entries:
        values = np.stack([_per_case(e[2], ranking)[mask] for e in entries])
        if n_boot > 0:
            samples = bootstrap_mean(values, bootstrap_indices(int(mask.sum()), n_boot, seed, _STREAM[phase]))
            lo, hi = score_interval(samples)
            for r, a, b in zip(rows, lo, hi):
                r["dice_lo"], r["dice_hi"] = float(a), float(b)
            if n_teams:
                rlo, rhi = rank_interval(bootstrap_ranks(sign * samples[:n_teams]))
                for r, a, b in zip(rows, rlo, rhi):
                    r["rank_lo"], r["rank_hi"] = int(a), int(b)
        per_case = sign * values[:n_teams]
        if n_boot > 0 and n_teams > 1:
            stab = analyse([labels[r.team] for r in ranked], bootstrap_ranks(sign * samples[:n_teams]), per_case)
        p_adj, tied = neighbour_ties(per_case)
        for r, p, t in zip(rows, p_adj, tied):
            r["p_vs_above"] = None if np.isnan(p) else float(p)
            r["tied"] = bool(t)
    # Baselines sit among the teams by score (after teams of equal score).
    return sorted(rows, key=lambda r: (_best_first(r["dice"], ranking), r["kind"] != "team", r["rank"] or 0)), stab


@dataclass(frozen=True)
class LeaderboardSummary:
    """What one leaderboard run did: ``brats-kit leaderboard --json`` prints :meth:`to_dict`.

    Before the reveal it holds nothing derived from the private cases (their
    number aside). ``board`` (not printed) holds the revealed board's private scores in
    full precision, for the gradebook; None before the reveal.
    """

    site: str
    phase: str
    teams: int
    teams_ranked: int
    baselines: int
    submissions: int
    valid: int
    invalid: int
    over_quota: int
    scored: int
    cached: int
    cache: str
    public_cases: int
    private_cases: int
    public_flags: str
    bootstrap: int
    seed: int
    leader: Optional[str]
    files: list
    notes: list
    board: Optional[BoardScores] = field(default=None, repr=False, compare=False)
    ranking: str = RANKING.name

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["board"]
        return out


@dataclass
class Entries:
    """What :func:`rank_and_publish` ranks: every submission with its status and counts, and the baselines.

    ``subs`` and ``bases`` are :class:`~.collect.Submission` objects; a scored one carries
    ``counts`` (and may carry ``scores`` per phase already: they are then used as they are).
    ``stats`` says how many files were ``scored`` now and answered from the ``cache``.
    """

    subs: list
    bases: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    stats: dict = field(default_factory=lambda: {"scored": 0, "cached": 0})
    cache: str = ""
    cache_note: Optional[str] = None


def build_leaderboard(
    submissions,
    truth,
    out,
    *,
    reveal: bool = False,
    per_day: Optional[int] = None,
    bootstrap: int = 2000,
    jobs: int = 1,
    seed: int = 0,
    baselines=None,
    cache=None,
    title: str = "Leaderboard",
    metrics=None,
    ranking=None,
    progress=no_progress,
    **page,
) -> LeaderboardSummary:
    """Validate, score and rank a folder of submissions; write the site atomically.

    The two steps, :func:`collect_and_score` then :func:`rank_and_publish`; the
    submission server runs the second one alone, on the counts it stored at upload.

    Parameters
    ----------
    submissions : path-like
        ``SUBMISSIONS/<team>/<file>``, with an optional ``manifest.csv`` (team, file,
        submitted_at, final: yes/no); see :mod:`data_spec.manifest`.
    truth : path-like
        The test truth (``private/test_truth.h5``, a competition directory, or a course
        ``test_data_y.dat``, whose public flags are then derived with ``seed``).
    out : path-like
        The site folder: ``leaderboard.csv``, ``grades.csv``, ``leaderboard.md`` and
        ``index.html``, replaced as a whole only once complete.
    reveal : bool
        Rank on the private cases and show each team's move. Before the reveal,
        nothing derived from the private cases is written under ``out``.
    per_day : int, optional
        Keep at most this many valid submissions per team and UTC day (earliest first).
    bootstrap : int
        Case-level bootstrap resamples for the intervals (0: none).
    jobs : int
        joblib workers for validation and scoring (-1: all cores).
    seed : int
        Seeds the bootstrap (and the public flags of a truth without them: the site then
        does not show it, since it would tell which cases are public).
    baselines : path-like, optional
        Reference submissions, ``DIR/<baseline>/<file>`` or ``DIR/<baseline>.<ext>``.
    cache : path-like, optional
        Score cache folder; default ``.leaderboard-cache`` beside the truth file (it holds
        per-case counts of the private cases, so it stays with the private files). Never
        inside ``out``.
    title : str
        Heading of the pages.
    metrics : str or list of str, optional
        Extra score columns (``"lesion_dice,nsd"``; :mod:`.columns`): each row's selected
        submission on the phase's cases. Mask scores are computed when a file is scored and
        kept in the cache with its counts.
    ranking : str, optional
        The score to rank by (:data:`~.ranking.RANKABLE`). Default: the one the competition's
        private manifest records (``data synth/prepare --ranking``), else the official mean Dice.
        A lower-is-better score (HD95) ranks ascending; the tie rule is the same.
    progress : callable

    Returns
    -------
    LeaderboardSummary

    Raises
    ------
    KitError
        Bad paths, truth, manifest, options, or an invalid baseline.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from data_spec import case_ids, write_competition
    >>> from data_spec.submission import write_submission
    >>> root = Path(tempfile.mkdtemp())
    >>> y = np.zeros((4, 240, 240), np.uint8); y[:, 100:140, 100:140] = 1
    >>> x = np.zeros((4, 240, 240, 4), np.float32)
    >>> _ = write_competition(root / "comp", train={"x": x, "y": y, "case_id": case_ids("train", 4)},
    ...                   test={"x": x, "y": y, "case_id": case_ids("test", 4),
    ...                         "public": np.array([True, True, False, False])}, attrs={"generator": "doc"})
    >>> for team, shift in (("ada", 0), ("bob", 5)):
    ...     (root / "subs" / team).mkdir(parents=True)
    ...     _ = write_submission(root / "subs" / team / "p.npy", np.roll(y, shift, axis=2))
    >>> summary = build_leaderboard(root / "subs", root / "comp" / "private", root / "site", bootstrap=0)
    >>> summary.leader, summary.teams_ranked, summary.phase
    ('ada', 2, 'public')
    """
    check_options(bootstrap=bootstrap, jobs=jobs, seed=seed, per_day=per_day)
    columns = extra.extra_columns(metrics)  # an unknown name is refused before any file is read
    ranked_by = ranking_type(ranking)
    out = Path(os.path.abspath(out))
    sub_dir = Path(os.path.abspath(submissions))
    base_dir = Path(os.path.abspath(baselines)) if baselines is not None else None
    truth = load_board_truth(truth, seed=seed)
    if ranking is None:
        ranking = recorded_ranking(truth.path)
        ranked_by = ranking_type(ranking)
    mask_metrics = extra.mask_names(columns) + masks_for(ranked_by)
    cache_dir = Path(os.path.abspath(cache if cache is not None else truth.path.parent / ".leaderboard-cache"))
    _check_paths(sub_dir, Path(os.path.abspath(truth.path)), out, cache_dir, base_dir)
    entries = collect_and_score(sub_dir, truth, baselines=base_dir, cache=cache_dir, jobs=jobs,
                                metrics=tuple(dict.fromkeys(mask_metrics)), progress=progress)
    # ``page``: rank_and_publish's roster, links and problem_files (the live board's page, reproduced offline).
    return rank_and_publish(entries, truth, out, reveal=reveal, per_day=per_day, bootstrap=bootstrap, seed=seed,
                            title=title, metrics=metrics, ranking=ranking, **page)


def collect_and_score(submissions, truth, *, baselines=None, cache, jobs: int = 1, metrics=(),
                      progress=no_progress) -> Entries:
    """Step one: list the files of ``submissions`` (and ``baselines``), validate and count each through ``cache``.

    ``metrics``: mask scores to compute per case at scoring time (:func:`~.scoring.score_submissions`).

    Refuses an invalid baseline (:class:`~data_spec.KitError` ``invalid_baseline``).
    """
    subs, notes = collect_submissions(submissions)
    bases = collect_baselines(baselines) if baselines is not None else []
    store = ScoreCache(cache)
    stats = score_submissions(subs + bases, truth, store, jobs=jobs, metrics=metrics, progress=progress)
    store.save()
    check_baselines(bases)
    return Entries(subs, bases, notes, stats, str(store.path), store.ignored_reason)


def score_baselines(source, truth, cache, metrics=()) -> list:
    """The reference submissions of ``source`` (``DIR/<baseline>/<file>`` or ``DIR/<baseline>.<ext>``), counted.

    Scored through the score ``cache`` like the teams' files (with the per-case mask scores
    ``metrics``); an invalid one is refused. Their scores per phase: :func:`baseline_scores`.
    """
    bases = collect_baselines(source)
    store = ScoreCache(cache)
    score_submissions(bases, truth, store, metrics=metrics)
    store.save()
    check_baselines(bases)
    return bases


def baseline_scores(bases, phase: str) -> dict:
    """The official score of each (valid) baseline on ``phase``, by name, from its counts (``Counts.scores``)."""
    return {b.team: b.counts.scores(phase)[RANKING.name] for b in bases}


def check_baselines(bases) -> None:
    """Refuse an invalid reference submission: a baseline is the instructor's, never a team's mistake."""
    for b in bases:
        if not b.valid:
            raise KitError(f"baseline {clean_text(b.team)!r} is invalid: {b.errors[0]['message']}",
                           code="invalid_baseline", path=b.path, hint=b.errors[0].get("hint"))


def rank_and_publish(entries: Entries, truth, out, *, reveal: bool = False, per_day: Optional[int] = None,
                     bootstrap: int = 2000, seed: int = 0, title: str = "Leaderboard",
                     metrics=None, ranking=None, roster: tuple = (), links: tuple = (),
                     problem_files: bool = True) -> LeaderboardSummary:
    """Step two: quota, selection, the one ranking (:func:`~.ranking.rank_teams`), intervals; write the site.

    Reads no submission file: everything comes from ``entries`` (their status, errors,
    counts and any scores already computed) and the truth's flags.

    Parameters
    ----------
    entries : Entries
    truth : Truth
        The truth the counts were made against (its public flags, ``has_flags``).
    out : path-like
        The site folder, replaced as a whole.
    reveal, per_day, bootstrap, seed, title, metrics, ranking
        As :func:`build_leaderboard` (a mask score's column is empty for a submission whose
        entry carries no per-case values of it; ranking by a mask score needs them).
    roster : tuple of str
        Every team of the course: those with nothing on the board are listed at its bottom.
    links : tuple of (text, href)
        Links the page shows at its top (the server's sign-in and team page).
    problem_files : bool
        List invalid and ignored files by name with their errors (the instructor's offline site);
        False: per-team counts only (the server's public board: each team sees its own errors on its page).
    """
    check_options(bootstrap=bootstrap, jobs=1, seed=seed, per_day=per_day)
    columns = extra.extra_columns(metrics)
    ranked_by = ranking_type(ranking)
    out = Path(os.path.abspath(out))
    subs, bases, notes = entries.subs, entries.bases, list(entries.notes)
    phase = "private" if reveal else "public"
    masks = {"public": truth.public}
    if reveal:
        if truth.public.all():
            raise LayoutError("the truth has no private case to reveal", path=truth.path)
        masks["private"] = ~truth.public
    phase_scores([s for s in subs + bases if s.valid], masks, ranked_by)
    over = apply_quota(subs, per_day)
    ranked = rank_teams(subs, phase, ranked_by)

    labels = display_names({s.team for s in subs})
    rows, stab = _rows(subs, bases, ranked, labels, phase, masks, reveal, bootstrap, seed, ranked_by)
    extra.fill(rows, columns, masks[phase])
    if not truth.has_flags:
        # The site says how, never the seed: with it anyone could recompute which cases are public.
        notes.insert(0, "Public/private flags derived with data_spec.public_mask from the instructor's seed "
                        "(the truth file has none).")
    if over:
        notes.append(f"{over} valid submission{'s' if over != 1 else ''} over the quota of {per_day} per team "
                     "and UTC day ignored (listed below).")
    board = _Board(title, phase, reveal, truth, rows, subs, ranked, labels, notes, bootstrap, seed, stab, columns,
                   ranked_by)
    report = _report(board)
    ranked_teams = {board.labels[r.team] for r in ranked}
    report["absent"] = sorted({clean_text(t) for t in roster} - ranked_teams)
    report["links"] = [(str(text), str(href)) for text, href in links]
    report["problem_files"] = problem_files
    _publish(out, report)

    team_rows = [r for r in rows if r["kind"] == "team"]
    return LeaderboardSummary(
        site=str(out), phase=phase, teams=len(labels), teams_ranked=len(team_rows), baselines=len(bases),
        submissions=len(subs), valid=sum(1 for s in subs if s.valid),
        invalid=sum(1 for s in subs if s.status == INVALID), over_quota=over,
        scored=entries.stats["scored"], cached=entries.stats["cached"], cache=entries.cache,
        public_cases=int(truth.public.sum()), private_cases=int((~truth.public).sum()),
        public_flags=truth.public_source, bootstrap=bootstrap, seed=seed,
        leader=labels[ranked[0].team] if ranked else None,
        files=[str(out / name) for name in SITE_FILES],
        notes=notes + ([entries.cache_note] if entries.cache_note else []),
        board=board_scores(ranked, bases, labels, ranked_by) if reveal else None,
        ranking=ranked_by.name,
    )


def board_scores(ranked: list, bases: list, labels: dict, ranking=RANKING) -> BoardScores:
    """The revealed board's private scores in full precision, keyed as the site shows the teams."""
    teams = {label: None for label in labels.values()}
    teams.update({labels[r.team]: score_of(r.submission, "private", ranking) for r in ranked})
    return BoardScores(teams, {clean_text(b.team): score_of(b, "private", ranking) for b in bases}, True)


def _rows(subs, bases, ranked, labels, phase, masks, reveal, bootstrap, seed, ranking=RANKING) -> tuple:
    """The board's rows of ``phase`` (with the public rank, scores and move after the reveal) and per-team counts."""
    rows, stab = _board(ranked, bases, labels, phase, masks[phase], bootstrap, seed, ranking)
    if reveal:
        for r in rows:
            public = r["sub"].scores["public"]
            r["public_dice"], r["public_f1"] = public[ranking.name], public["f1"]
    per_team: dict = {}
    for s in subs:
        per_team.setdefault(s.team, []).append(s)
    for r in rows:
        if r["kind"] == "team":
            team_subs = per_team[r["sub"].team]
            r["n_valid"] = sum(1 for s in team_subs if s.valid)
            r["n_invalid"] = sum(1 for s in team_subs if s.status == INVALID)
            r["n_over_quota"] = sum(1 for s in team_subs if s.status == OVER_QUOTA)
    return rows, stab


def _publish(out: Path, report: dict) -> None:
    """Render every file of the site and swap it in as a whole."""
    files = {
        "leaderboard.csv": render.leaderboard_csv(report),
        "grades.csv": render.grades_csv(report),
        "leaderboard.md": render.leaderboard_md(report),
        "index.html": render.index_html(report),
        "stability.html": stability_html(*report["stability"]),
    }
    with atomic_dir(out) as tmp:
        for name in SITE_FILES:
            write_text(tmp / name, files[name])
        write_bytes(tmp / SITE_MARKER, b"brats-kit leaderboard site: replaced as a whole by 'brats-kit leaderboard'\n")


@dataclass
class _Board:
    """What :func:`_report` turns into the renderers' input."""

    title: str
    phase: str
    reveal: bool
    truth: object
    rows: list
    subs: list
    ranked: list
    labels: dict
    notes: list
    n_boot: int
    seed: int
    stability: object = None
    columns: tuple = ()
    ranking: object = RANKING


def _report(board: _Board) -> dict:
    """Everything the renderers show, already cleaned; nothing private unless revealed."""
    title, phase, reveal, truth, rows = board.title, board.phase, board.reveal, board.truth, board.rows
    notes = board.notes
    n_pub, n_priv = int(truth.public.sum()), int((~truth.public).sum())
    if reveal:
        subtitle = (f"Final (private) leaderboard: ranked on the {n_priv} private test cases; "
                    f"Move: change of rank from the public leaderboard ({n_pub} public cases).")
    else:
        subtitle = (f"Public leaderboard: scored on the {n_pub} public test cases; the {n_priv} private cases "
                    "decide the final ranking at the reveal.")
    ranking = board.ranking
    short = "Dice" if ranking is RANKING else ranking.title
    score_label = f"{short} ({phase} cases)"
    histories, problems, history_plot, all_scores = _histories(board)
    grades = _grades(board)
    selected_scores = [r["dice"] for r in rows if r["kind"] == "team"]
    base_marks = [(r["label"], r["dice"]) for r in rows if r["kind"] == "baseline"]
    method = _method(board, n_priv if reveal else n_pub)
    page_title = title + (" (final)" if reveal else " (public)")
    return {
        "title": page_title,
        "subtitle": subtitle,
        "phase": phase,
        "revealed": reveal,
        "decimals": ranking.precision,
        "score_name": ranking.name,
        "score_title": short,
        "extra": board.columns,
        "rows": rows,
        "grades": grades,
        "histories": histories,
        "problems": problems,
        "notes": notes,
        "method": method,
        "stability": (page_title, phase, n_priv if reveal else n_pub, board.n_boot, board.stability, method, notes),
        "figures": {
            "whiskers": figures.whiskers_png(
                [{"label": r["label"] + (" (baseline)" if r["kind"] == "baseline" else ""), "kind": r["kind"],
                  "dice": r["dice"], "dice_lo": r["dice_lo"], "dice_hi": r["dice_hi"]} for r in rows], score_label),
            "history": figures.history_png([p for p, _ in history_plot], score_label, [lab for _, lab in history_plot],
                                           lower_is_better=ranking.is_lower_the_better),
            "distribution": figures.distribution_png(all_scores, selected_scores, base_marks, score_label),
        },
    }


def _histories(board: _Board) -> tuple:
    """Each team's submissions as shown (scores of valid ones only), the invalid ones, the history figure's data.

    The page lists the teams by name; the figure gets them in board order (its legend
    breaks equal scores as the board does), with their labels.
    """
    phase, reveal, labels = board.phase, board.reveal, board.labels
    chosen = {id(r.submission) for r in board.ranked}
    histories, problems, plot, all_scores = [], [], {}, []
    for team in sorted(labels):
        team_subs = [s for s in board.subs if s.team == team]
        items, times, scores, sel_index = [], [], [], None
        for s in team_subs:
            shown = s.valid  # an over-quota score is never shown: that is what the quota is for
            item = {"submitted_at": s.time_text, "submission": clean_text(s.name), "selected": id(s) in chosen,
                    "status": {"scored": "valid", "invalid": "invalid", "over_quota": "over quota"}[s.status]}
            if shown:
                item["public"] = score_of(s, "public", board.ranking)
                if reveal:
                    item["private"] = score_of(s, "private", board.ranking)
                if item["selected"]:
                    sel_index = len(times)
                times.append(s.submitted_at)
                scores.append(score_of(s, phase, board.ranking))
            else:
                problems.append({"label": labels[team], "submission": item["submission"],
                                 "submitted_at": s.time_text, "status": item["status"],
                                 "message": "; ".join(clean_text(f"{e['code']}: {e['message']}") for e in s.errors)})
            items.append(item)
        histories.append({"label": labels[team], "submissions": items})
        plot[team] = (times, scores, sel_index)
        all_scores += scores
    order = [r.team for r in board.ranked] + [t for t in sorted(labels) if t not in {r.team for r in board.ranked}]
    return histories, problems, [(plot[t], labels[t]) for t in order], all_scores


def _grades(board: _Board) -> list:
    """One row per team for ``grades.csv``: its selected submission's scores and ranks (private ones once revealed)."""
    grades = []
    by_sub = {id(r["sub"]): r for r in board.rows if r["kind"] == "team"}
    ranked = {r.team: r for r in board.ranked}
    for team in sorted(board.labels):
        if team not in ranked:
            grades.append({"label": board.labels[team], "status": "no valid submission"})
            continue
        sub = ranked[team].submission
        r = by_sub[id(sub)]
        s = sub.scores
        g = {"label": board.labels[team], "status": "ranked", "submission": r["submission"],
             "submitted_at": r["submitted_at"], "public_dice": s["public"][board.ranking.name],
             "public_f1": s["public"]["f1"]}
        if board.reveal:
            g.update(public_rank=r["public_rank"], dice=r["dice"], f1=r["f1"], rank=r["rank"], move=r["move"])
        else:
            g["public_rank"] = r["rank"]
        grades.append(g)
    return grades


def _method(board: _Board, n_cases: int) -> str:
    """The page's note on the score, the selection rule, the intervals and the ties."""
    n_teams = sum(1 for r in board.rows if r["kind"] == "team")
    shown_seed = board.seed if board.truth.has_flags else "withheld (it also drew the public cases)"
    method = METHOD_NOTE.format(b=board.n_boot, n=n_cases, phase=board.phase, seed=shown_seed,
                                m=max(0, n_teams - 1))
    if board.n_boot == 0:
        method = "No bootstrap intervals (--bootstrap 0). " + method.split("Ties (=): ", 1)[1]
    ranking = board.ranking
    score = ("Score: mean over test cases of per-case Dice (both masks empty: 1, one empty: 0)" if ranking is RANKING
             else f"Score: {ranking.title}, mean over test cases of its per-case value"
             + (" (lower is better; the intervals and tests use the same per-case values)"
                if ranking.is_lower_the_better else "") + "; see data_spec/SPEC.md")
    return (score + "; pixel F1 pooled "
            "over all pixels. Selection: the team's final submissions when named (the best public score among "
            "them), otherwise its best public score; equal scores, within a team or between teams, go to the "
            "earlier submission. ") + method
