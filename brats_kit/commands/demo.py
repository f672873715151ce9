"""``brats-kit demo``: play the course on the synthetic cohort."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress


@click.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quick", is_flag=True, help="Small cohort, for a fast look.")
@click.option("--seed", default=0, show_default=True, type=int)
def demo(out, quick, seed):
    """Build the synthetic competition and show what the kit does with it."""
    from brats_kit.demo import run_demo

    from .data import format_summary

    result = run_demo(out, quick=quick, seed=seed, progress=click_progress, log=click.echo)
    click.echo(format_summary(result["summary"]))
    click.echo("figures:")
    for path in result["figures"]:
        click.echo(f"  {path}")
