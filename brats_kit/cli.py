"""The ``brats-kit`` command: a thin click layer over the kit's library functions.

Exit codes: 0 success, 1 invalid input (a file, a submission, a model),
2 usage error (click's own), 3 internal error (a bug: please report it).
Errors are printed as one line on stderr, never as a traceback; set
``BRATS_KIT_DEBUG=1`` to see the traceback of an internal error.
"""
from __future__ import annotations

import os
import sys

import click

from . import __version__
from .commands.baseline import baseline
from .commands.code import code
from .commands.data import data
from .commands.demo import demo
from .commands.grade import score, validate
from .commands.leaderboard import leaderboard
from .commands.notebook import notebook
from .commands.server import server
from .commands.submit import finals, submissions, submit
from .text import safe_text

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class KitGroup(click.Group):
    """A click group that turns the kit's errors into one-line messages and exit codes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            # Imported here, not at the top: `brats-kit --help` never loads numpy and h5py (issue 22).
            from data_spec.errors import KitError

            if isinstance(exc, KitError):
                click.echo(f"error: {safe_text(exc)}", err=True)  # names in it are escaped: no terminal tricks
                ctx.exit(EXIT_INVALID)
            if isinstance(exc, OSError):
                where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
                click.echo(f"error: {safe_text(where)}{safe_text(exc.strerror or exc)}", err=True)
                ctx.exit(EXIT_INVALID)
            if os.environ.get("BRATS_KIT_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (set BRATS_KIT_DEBUG=1 for the traceback)", err=True
            )
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=KitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brats-kit")
def main():
    """brats-kit: a pixel-classification competition on brain-tumour MRI (simplified BraTS 2018).

    Start with 'brats-kit demo', or 'brats-kit data synth --out DIR' for the data alone.
    """


def __getattr__(name):
    """``echo_json`` stays importable from here for scripts, loaded (with numpy) only when asked for."""
    if name == "echo_json":
        from .output import echo_json

        return echo_json
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _command in (data, validate, score, leaderboard, baseline, demo, server, submit, submissions, finals,
                 notebook, code):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
