"""``brats-kit leaderboard``: a folder of submissions in, a leaderboard site out."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress


@click.command()
@click.argument("submissions", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--truth", required=True, type=click.Path(exists=True, path_type=Path),
              help="Test truth: private/test_truth.h5, the competition folder, or a course test_data_y.dat.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Site folder to write (replaced as a whole once complete).")
@click.option("--reveal", is_flag=True, help="Rank on the private cases and show each team's move.")
@click.option("--per-day", type=click.IntRange(1, 10_000), default=None,
              help="Keep at most K valid submissions per team and UTC day (the earliest).")
@click.option("--bootstrap", default=2000, show_default=True, type=click.IntRange(0, 100_000),
              help="Case-level bootstrap resamples for the 95% intervals (0: none; at most 100000).")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(-1, 256),
              help="Parallel workers for scoring (-1: all cores; 0 is refused).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
              help="Seeds the bootstrap, and the public flags of a truth file without them.")
@click.option("--baselines", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Reference submissions, DIR/<baseline>/<file> or DIR/<baseline>.<ext>: shown, never ranked.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score cache folder (default: .leaderboard-cache beside the truth file; never inside the site).")
@click.option("--title", default="Leaderboard", show_default=True, help="Heading of the pages.")
@click.option("--roster", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="student_id,name,email,team: with --reveal, also write a gradebook (one row per student).")
@click.option("--format", "grades_format", type=click.Choice(["moodle", "canvas", "csv"]), default="csv",
              show_default=True, help="Gradebook layout: Moodle's or Canvas's grade import CSV, or plain CSV.")
@click.option("--scale", default="linear:100", show_default=True,
              help="Marks: linear[:LOW..HIGH]:MARKS (default points: the flair-threshold baseline = 0, the best "
                   "baseline = MARKS) or thresholds 0.6:10,0.7:14,0.8:18,0.85:20.")
@click.option("--grades-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Gradebook file to write (private: outside the site), with a README beside it.")
@click.option("--metrics", default=None, metavar="NAMES",
              help="Extra score columns, comma-separated (e.g. lesion_dice,lesion_hd95,nsd): each team's selected "
                   "submission on the phase's cases; mask scores are computed once per file and cached.")
@click.option("--ranking", default=None, metavar="SCORE",
              help="The score to rank by: dice (default), hd95, lesion_dice, lesion_hd95 or nsd; lower-is-better "
                   "scores (the distances) rank ascending.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def leaderboard(submissions, truth, out, reveal, per_day, bootstrap, jobs, seed, baselines, cache, title,
                roster, grades_format, scale, grades_out, metrics, ranking, as_json):
    """Validate, score and rank SUBMISSIONS/<team>/<file>; write the site to --out.

    \b
    SUBMISSIONS may hold a manifest.csv (team, file, submitted_at, final: yes/no);
    without one, file modification times date the submissions. Each file is scored
    once (cached by content); invalid files are listed, never ranked or counted
    against a quota. Before --reveal nothing derived from the private cases is written.

    \b
    Example:
      brats-kit leaderboard submissions --truth competition/private --out site --per-day 5
      brats-kit leaderboard submissions --truth competition/private --out site --reveal
      brats-kit leaderboard submissions --truth competition/private --out site --metrics lesion_dice,nsd
    """
    from grader.leaderboard import build_leaderboard

    gradebook = None
    if roster is not None:
        from grader.leaderboard.gradebook import NotRevealedError, parse_scale

        if grades_out is None:
            raise click.UsageError("--roster needs --grades-out FILE")
        if not reveal:
            raise NotRevealedError("a gradebook needs the private scores", hint="add --reveal")
        parse_scale(scale)  # a bad scale is refused before any scoring
        _check_gradable(truth, ranking)
    elif grades_out is not None:
        raise click.UsageError("--grades-out needs --roster FILE")
    summary = build_leaderboard(
        submissions, truth, out, reveal=reveal, per_day=per_day, bootstrap=bootstrap, jobs=jobs, seed=seed,
        baselines=baselines, cache=cache, title=title, metrics=metrics, ranking=ranking,
        progress=click_progress,
    )
    if roster is not None:
        from grader.leaderboard.gradebook import gradebook_from_site

        gradebook = gradebook_from_site(summary.site, roster, grades_out, fmt=grades_format, scale=scale,
                                        scores=summary.board)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(dict(summary.to_dict(), gradebook=gradebook) if gradebook else summary.to_dict())
        return
    board = "final (private)" if summary.phase == "private" else "public"
    click.echo(
        f"{board} leaderboard: {summary.teams_ranked} of {summary.teams} teams ranked, "
        f"{summary.submissions} submissions ({summary.valid} valid, {summary.invalid} invalid, "
        f"{summary.over_quota} over quota); scored {summary.scored} new, {summary.cached} from the cache"
    )
    for note in summary.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {summary.site}/ ({', '.join(Path(f).name for f in summary.files)})")
    if gradebook:
        from brats_kit.text import safe_name, safe_text

        for note in gradebook["notes"]:
            click.echo(f"gradebook note: {safe_text(note)}")
        click.echo(f"wrote gradebook {safe_name(gradebook['out'])} ({gradebook['format']}, "
                   f"{gradebook['students']} students, {gradebook['graded']} with a score) "
                   f"and {safe_name(Path(gradebook['readme']).name)}")


def _check_gradable(truth, ranking) -> None:
    """A gradebook's scale turns higher scores into higher grades: refuse a board ranked by a distance."""
    from data_spec import find_truth
    from data_spec.ranking_record import recorded_ranking
    from grader.leaderboard.gradebook import gradable

    gradable(ranking if ranking is not None else recorded_ranking(find_truth(truth)))
