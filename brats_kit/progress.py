"""The command line's progress bar (the protocol itself lives in :mod:`plumbing.progress`)."""
from __future__ import annotations

import sys
from typing import Iterable, Optional

from plumbing.progress import no_progress  # noqa: F401  (re-exported for the commands)


def click_progress(iterable: Iterable, label: str = "", length: Optional[int] = None) -> Iterable:
    """A click progress bar on stderr (so that ``--json`` output on stdout stays clean).

    Nothing at all is printed when stderr is not a terminal (logs, CI, pipes).
    """
    if not sys.stderr.isatty():
        yield from iterable
        return
    import click

    with click.progressbar(iterable, label=label, length=length, file=sys.stderr) as bar:
        yield from bar
