"""``brats-kit demo``: play the whole course on the synthetic cohort."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress


@click.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Everything is written below this directory.")
@click.option("--quick", is_flag=True, help="Small cohort and three baselines: about a minute.")
@click.option("--seed", default=None, type=click.IntRange(0, 2**63 - 1),
              help="Same seed, byte-identical data, sites and reports. Default: a secret seed for the cohort "
                   "(kept under competition/private/), 0 for the rest.")
@click.option("--json", "as_json", is_flag=True, help="Print where everything is as JSON.")
def demo(out, quick, seed, as_json):
    """Play the course: data, baselines, a class of teams, grading, leaderboard."""
    from brats_kit.demo import run_demo

    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = run_demo(out, quick=quick, seed=seed, progress=click_progress, log=log)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(result.to_dict())
        return
    board, final = result.leaderboard, result.leaderboard_final
    click.echo("")
    click.echo(f"done in {result.seconds:.0f} s. What to look at:")
    click.echo(f"  data (student files)     {result.competition}/   (test truth under private/)")
    click.echo(f"  leaderboard (public)     {result.site / 'index.html'}   leader: {board.leader}")
    click.echo(f"  leaderboard (revealed)   {result.site_final / 'index.html'}   leader: {final.leader}")
    click.echo(f"  class submissions        {result.submissions}/   (exported by the submission server)")
    click.echo(f"  submission server        {result.course}/   (tokens under private/; 'brats-kit server run' serves it)")
    rep = result.report["report"]
    click.echo(f"  per-case report          {rep['csv']}, {rep['png']}  ({result.best_baseline})")
    click.echo("  figures                  " + "\n                           ".join(str(p) for p in result.figures))
    click.echo("next: 'brats-kit baseline list', or copy the students' notebook with 'brats-kit notebook --out .'.")

