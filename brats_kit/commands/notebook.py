"""``brats-kit notebook``: copy the students' starting-kit notebook into a folder."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.text import safe_name


@click.command()
@click.option("--out", default=".", show_default=True, type=click.Path(path_type=Path),
              help="The folder to copy the notebook into (created if needed).")
@click.option("--force", is_flag=True, help="Replace a different starting_kit.ipynb already there.")
@click.option("--json", "as_json", is_flag=True, help="Print where it went as one JSON object.")
def notebook(out, force, as_json):
    """Copy the starting-kit notebook (load and plot the data, train a pixel and a window model,
    validate with the grader's scorer, write the submission) into --out, and say where it went.

    A different notebook already there is kept unless --force. Exit code 0 copied (or already
    there), 1 refused.
    """
    from starter.notebooks import copy_notebook

    result = copy_notebook(out, force=force)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(result)
        return
    verb = {"written": "copied the notebook to", "replaced": "replaced the notebook at",
            "unchanged": "the notebook is already at"}[result["status"]]
    click.echo(f"{verb} {safe_name(result['path'])}")
    click.echo("open it with 'jupyter lab' (or any notebook editor) next to your competition folder")
