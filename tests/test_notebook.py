"""The starting kit runs top to bottom on a small synthetic cohort."""
from __future__ import annotations

import os

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")


def test_notebook_is_shipped_with_the_package():
    from starter.notebooks import notebook_path

    path = notebook_path()
    assert path.is_file() and path.suffix == ".ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # shipped clean


def test_notebook_runs_without_error(tmp_path, monkeypatch):
    from cohorts.synth import write_synthetic_competition
    from starter.notebooks import notebook_path

    data = tmp_path / "competition"
    write_synthetic_competition(data, n_train=24, n_test=6, seed=0)
    nb = nbformat.read(notebook_path(), as_version=4)
    monkeypatch.setenv("BRATS_KIT_DATA", str(data))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    assert (tmp_path / "test_data_ypred.dat").stat().st_size == 6 * 240 * 240
    outputs = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "valid" in outputs and "Dice" in outputs
    from grader.code import sandbox_problem

    if sandbox_problem() is None:  # the packaged model runs in the sandbox and predicts what the notebook did
        assert "same predictions as in this notebook: True" in outputs, outputs[-2000:]
