"""Machine output of the commands: ``--json`` prints one JSON object on stdout."""
from __future__ import annotations

import json

import click

from plumbing.jsonio import json_default


def echo_json(obj) -> None:
    """Print one JSON object on stdout (the machine-readable output of ``--json``); paths and numpy values allowed."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=json_default))
