"""The import contract (issue 10): imports go downward only, the library never loads the CLI, no cycle."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_lint_imports_keeps_every_contract():
    # The console script installed beside this interpreter, run on the project's own configuration.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_covers_every_package_of_the_kit():
    # A new top-level package must be placed in the layers, or it would escape the check.
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    config = PYPROJECT["tool"]["importlinter"]
    assert set(config["root_packages"]) == packages
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers" and "containers" not in c]
    layered = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    assert layered == packages
    assert layers["layers"][0] == "brats_kit" and layers["layers"][-1] == "plumbing"
    (cycles,) = [c for c in config["contracts"] if c["type"] == "acyclic_siblings"]
    assert set(cycles["ancestors"]) == packages


def test_importing_data_spec_loads_no_brats_kit_module():
    code = "import data_spec, sys; print([m for m in sys.modules if m.startswith('brats_kit')])"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "[]"


def test_the_servers_layers_are_a_contract():
    # The HTTP layer on top, the database and the store at the bottom: a lower module importing a higher one
    # (the store reaching for the service, the service for a page) breaks lint-imports.
    config = PYPROJECT["tool"]["importlinter"]
    (server,) = [c for c in config["contracts"] if c.get("containers") == ["brats_kit.server"]]
    layers = [{m.strip() for m in layer.split(":")} for layer in server["layers"]]
    order = {m: i for i, layer in enumerate(layers) for m in layer}
    assert order["app"] < order["pages"] < order["board"] == order["gradebook"] < order["service"] < order["db"]
    server = ROOT / "brats_kit" / "server"
    modules = {p.stem for p in server.glob("*.py")} | {p.parent.name for p in server.glob("*/__init__.py")}
    # Every module of the server has its layer (the students' client stands apart: it imports none of them).
    assert set(order) == modules - {"__init__", "client"}
