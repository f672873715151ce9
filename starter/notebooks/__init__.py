"""The students' starting-kit notebook, shipped inside the installed package."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

NOTEBOOK = "starting_kit.ipynb"


def notebook_path() -> Path:
    """Where the installed starting-kit notebook is (copy it next to your data to work in it)."""
    return Path(str(files(__package__) / NOTEBOOK))
