"""The project's promises about itself: README quick start, CI entry, packaging, CLI plumbing."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no quick start code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    demo, tests = commands
    assert demo.startswith("python3 -m venv .venv") and demo.endswith("brats-kit demo")
    assert tests.startswith("python3 -m venv .venv") and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '(.*?)' README.md", ci).group(1)
    matches = [c for c in quick_start_commands() if re.search(pattern, c)]
    assert matches == [quick_start_commands()[1]]
    # bash can parse it
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)


def test_cli_maps_errors_to_exit_codes(tmp_path):
    from brats_kit.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["data", "info", str(tmp_path)])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    assert "train.h5" in result.output
    result = runner.invoke(main, ["data", "info"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and "brats-kit" in result.output


def test_data_info_human_and_json(competition):
    import json

    from brats_kit.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["data", "info", str(competition)])
    assert result.exit_code == 0, result.output
    assert "train: 12 slices" in result.output and "flair" in result.output
    result = runner.invoke(main, ["data", "info", str(competition), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert summary["splits"]["test"]["n_slices"] == 6


def test_corrupt_input_gives_one_line_error(tmp_path):
    from brats_kit.cli import main

    (tmp_path / "train_data_x.dat").write_bytes(b"\0" * 1000)
    result = CliRunner().invoke(main, ["data", "info", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "train_data_x.dat" in lines[0]
    assert "is not a whole number of slices" in result.output


KIT_PACKAGES = ("plumbing", "data_spec", "cohorts", "starter", "grader", "baselines", "brats_kit")


@pytest.mark.parametrize("package", ["plumbing", "data_spec", "cohorts", "starter", "grader", "baselines"])
def test_library_packages_import_without_the_application(package):
    # A fresh interpreter, so that what this test process already imported cannot hide an upward import.
    code = f"import json, sys, {package}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout)) & set(KIT_PACKAGES)
    assert package in loaded and "brats_kit" not in loaded
    if package == "plumbing":  # the leaf: it loads no other package of the kit
        assert loaded == {"plumbing"}


def test_data_synth_cli_writes_both_layouts_and_points_to_the_notebook(tmp_path):
    from brats_kit.cli import main

    out = tmp_path / "comp"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--train", "3", "--test", "2"])
    assert result.exit_code == 0, result.output
    assert "brats-kit notebook" in result.output and "private/" in result.output
    assert (out / "train_data_x.dat").stat().st_size == 3 * 240 * 240 * 4 * 4
    assert (out / "private" / "test_truth.h5").is_file()
    show = CliRunner().invoke(main, ["data", "show", str(out), "--case", "1", "--out", str(tmp_path / "f.png")])
    assert show.exit_code == 0, show.output
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(main, ["data", "show", str(out), "--case", "7", "--out", str(tmp_path / "g.png")])
    assert bad.exit_code == 1 and "error:" in bad.output and not (tmp_path / "g.png").exists()
