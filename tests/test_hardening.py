"""Issue 11, part A: nothing overwritten, no code run from a model file, no crash on odd .npy headers,
no terminal tricks in printed names, unreadable submissions are invalid submissions.

Each test stands for a class of input (the data_spec/cohorts parts of ``data prepare`` are in
test_prepare.py).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.lib import format as npy_format

import data_spec as ds
from baselines.model_file import (
    TRUSTED_TYPES,
    NotAModelError,
    UntrustedModelError,
    is_model_file,
    load_model,
    save_model,
)
from brats_kit.cli import main as cli
from brats_kit.text import safe_name
from data_spec.layout import OverwriteError, check_output_file
from grader.readers import is_submission_file
from grader.validate import validate_submission

N_TEST = 6  # the conftest competition's test slices


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def comp(competition, tmp_path):
    """A private copy of the conftest competition: a test that fails must not damage the shared one."""
    out = tmp_path / "comp"
    shutil.copytree(competition, out)
    # the course's teacher pack keeps its truth beside the inputs, too
    shutil.copy(out / "private" / "test_data_y.dat", out / "test_data_y.dat")
    return out


@pytest.fixture(scope="module")
def model(competition, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "flair.skops"
    result = run("baseline", "train", "flair-threshold", "--data", competition, "--out", path)
    assert result.exit_code == 0, result.output
    return path


# -- 1. nothing a command did not create is overwritten --------------------------------------------


@pytest.mark.parametrize("target", ["private/test_data_y.dat", "private/test_truth.h5", "private/manifest.json",
                                    "private/new_name.dat", "test_data_x.dat", "test.h5", "test_data_y.dat",
                                    "train_data_y.dat"])
@pytest.mark.parametrize("force", [False, True])
def test_predict_never_writes_over_the_competition_or_into_private(model, comp, target, force):
    before = snapshot(comp)
    result = run("baseline", "predict", model, "--data", comp, "--out", comp / target, *(["--force"] if force else []))
    assert result.exit_code == 1, result.output
    assert "would_overwrite" in result.output or "private folder" in result.output or "named like" in result.output
    assert "Traceback" not in result.output and "Hint:" in result.output
    assert snapshot(comp) == before


@pytest.mark.parametrize("target", ["private/test_data_y.dat", "test_data_x.dat", "private/m.skops", "train.h5"])
def test_train_refuses_before_training(comp, target):
    before = snapshot(comp)
    result = run("baseline", "train", "flair-threshold", "--data", comp, "--out", comp / target, "--force")
    assert result.exit_code == 1, result.output
    assert "classification report" not in result.output  # refused before any work
    assert snapshot(comp) == before


def test_predict_replaces_its_own_submissions_and_nothing_else_without_force(model, comp, tmp_path):
    for name in ("sub.dat", "sub.npy", "sub.h5"):
        out = tmp_path / name
        assert run("baseline", "predict", model, "--data", comp, "--out", out).exit_code == 0
        assert is_submission_file(out)
        again = run("baseline", "predict", model, "--data", comp, "--out", out)  # its own file: replaced
        assert again.exit_code == 0, again.output
    notes = tmp_path / "notes.txt"
    notes.write_text("my report, not a submission\n")
    refused = run("baseline", "predict", model, "--data", comp, "--out", notes)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert notes.read_text() == "my report, not a submission\n"
    forced = run("baseline", "predict", model, "--data", comp, "--out", notes, "--force")
    assert forced.exit_code == 0 and is_submission_file(notes)


def test_a_link_or_a_folder_is_never_replaced(model, comp, tmp_path):
    link = tmp_path / "link.dat"
    link.symlink_to(comp / "private" / "test_data_y.dat")
    folder = tmp_path / "folder.dat"
    folder.mkdir()
    assert run("baseline", "predict", model, "--data", comp, "--out", link, "--force").exit_code == 1
    assert run("baseline", "predict", model, "--data", comp, "--out", folder, "--force").exit_code == 2  # click's
    with pytest.raises(OverwriteError, match="is a folder"):
        check_output_file(folder, what="a submission", recognise=lambda p: True, force=True)
    assert link.is_symlink() and folder.is_dir()
    # a link to private/ is private/
    (tmp_path / "p").symlink_to(comp / "private")
    assert run("baseline", "predict", model, "--data", comp, "--out", tmp_path / "p" / "s.dat").exit_code == 1


def test_train_replaces_a_model_file_but_not_another_file(comp, model, tmp_path):
    mine = tmp_path / "m.skops"
    shutil.copy(model, mine)
    assert run("baseline", "train", "flair-threshold", "--data", comp, "--out", mine).exit_code == 0
    other = tmp_path / "data.npy"
    np.save(other, np.arange(3))
    result = run("baseline", "train", "flair-threshold", "--data", comp, "--out", other)
    assert result.exit_code == 1 and "not a brats-kit model file" in result.output
    assert np.load(other).tolist() == [0, 1, 2]


def test_data_synth_and_prepare_refuse_an_existing_competition(comp, tmp_path):
    before = snapshot(comp)
    for args in (["data", "synth", "--out", comp, "--train", "1", "--test", "1"],
                 ["data", "prepare", tmp_path, "--out", comp, "--train", "1", "--test", "1"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert "already holds a competition" in result.output and "--force" in result.output
    # never inside a competition's private/ folder, --force or not
    for args in (["data", "synth", "--out", comp / "private" / "new", "--force"],
                 ["data", "prepare", tmp_path, "--out", comp / "private", "--force"]):
        result = run(*args)
        assert result.exit_code == 1 and "private folder" in result.output, result.output
    assert snapshot(comp) == before


def test_write_competition_replaces_only_with_force(tmp_path):
    from conftest import make_slices

    x, y = make_slices(3)
    parts = dict(
        train={"x": x[:2], "y": y[:2], "case_id": ds.case_ids("train", 2)},
        test={"x": x[2:], "y": y[2:], "case_id": ds.case_ids("test", 1), "public": ds.public_mask(1, 0)},
        attrs={},
    )
    out = tmp_path / "c"
    ds.write_competition(out, **parts)
    truth = (out / "private" / "test_truth.h5").read_bytes()
    with pytest.raises(OverwriteError) as info:
        ds.write_competition(out, **dict(parts, test=dict(parts["test"], y=1 - y[2:])))
    assert info.value.code == "would_overwrite" and (out / "private" / "test_truth.h5").read_bytes() == truth
    # with force: replaced, and a layout not written again leaves no stale truth behind
    ds.write_competition(out, **parts, layouts=("hdf5",), force=True)
    assert not (out / "private" / "test_data_y.dat").exists() and not (out / "test_data_x.dat").exists()


def test_atomic_path_check_refuses_before_and_leaves_nothing(tmp_path):
    from plumbing.atomic import atomic_path

    target = tmp_path / "keep.txt"
    target.write_text("keep")

    def refuse(path):
        raise OverwriteError("no", path=path)

    with pytest.raises(OverwriteError):
        with atomic_path(target, check=refuse) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_check_output_file_is_the_one_rule(comp, tmp_path):
    never = lambda p: False  # noqa: E731
    with pytest.raises(OverwriteError, match="private folder"):
        check_output_file(comp / "private" / "x.png", what="a figure", recognise=never, force=True)
    # a contract name is refused where it exists or in a competition, fine elsewhere
    with pytest.raises(OverwriteError, match="named like"):
        check_output_file(comp / "train.h5", what="a figure", recognise=lambda p: True, force=True)
    assert check_output_file(tmp_path / "elsewhere" / "test_data_y.dat", what="x", recognise=never)


def test_data_show_refuses_to_overwrite_data(comp):
    before = snapshot(comp)
    result = run("data", "show", comp, "--out", comp / "test_data_x.dat")
    assert result.exit_code == 1 and snapshot(comp) == before


# -- 2. model files never run code -------------------------------------------------------------------


class Planted:
    """What an attacker's object does when it is built: leave a trace."""

    def __init__(self, trace):
        self.trace = str(trace)

    def __setstate__(self, state):
        with open(state["trace"], "w") as fh:
            fh.write("code ran")

    def __reduce__(self):
        return (_touch, (self.trace,))


def _touch(path):
    with open(path, "w") as fh:
        fh.write("code ran")


def _payload(model):
    import skops.io as sio

    return sio.load(model, trusted=list(TRUSTED_TYPES))


def _dump(payload, path):
    import skops.io as sio

    sio.dump(payload, path)
    return path


def test_a_pickled_model_is_refused_without_unpickling(tmp_path, comp):
    import joblib

    trace = tmp_path / "trace"
    evil = tmp_path / "evil.joblib"
    joblib.dump({"format": "brats-kit-model", "estimator": Planted(trace)}, evil)
    result = run("baseline", "predict", evil, "--data", comp, "--out", tmp_path / "s.dat")
    assert result.exit_code == 1 and "pickle" in result.output, result.output
    assert not trace.exists()


@pytest.mark.parametrize("where", ["estimator", "metrics"])
def test_a_skops_model_naming_an_untrusted_type_is_refused_before_anything_is_built(model, tmp_path, comp, where):
    trace = tmp_path / "trace"
    payload = _payload(model)
    if where == "estimator":
        payload["estimator"].planted_ = Planted(trace)
    else:
        payload["metrics"] = {"validation": Planted(trace)}
    evil = _dump(payload, tmp_path / "evil.skops")
    with pytest.raises(UntrustedModelError, match="test_hardening.Planted") as info:
        load_model(evil)
    assert info.value.code == "untrusted_model" and not trace.exists()
    result = run("baseline", "predict", evil, "--data", comp, "--out", tmp_path / "s.dat")
    assert result.exit_code == 1 and "does not trust" in result.output, result.output
    assert not trace.exists() and not (tmp_path / "s.dat").exists()


@pytest.mark.parametrize("estimator", [None, "PixelSegmenter", 42, [1, 2]])
def test_a_model_without_a_segmenter_is_a_named_error(model, tmp_path, comp, estimator):
    payload = _payload(model)
    payload["estimator"] = estimator
    path = _dump(payload, tmp_path / "m.skops")
    with pytest.raises(NotAModelError, match="holds no segmenter"):
        load_model(path)
    result = run("baseline", "predict", path, "--data", comp, "--out", tmp_path / "s.dat")
    assert result.exit_code == 1 and "holds no segmenter" in result.output


@pytest.mark.parametrize("version, message", [("1", "format_version is '1' (str), not an integer"),
                                              (True, "not an integer"), (1.0, "not an integer"),
                                              (None, "not an integer"), (1, "written with model format 1, this is 2")])
def test_format_version_of_the_wrong_type_is_named_as_such(model, tmp_path, version, message):
    payload = _payload(model)
    payload["format_version"] = version
    path = _dump(payload, tmp_path / "m.skops")
    with pytest.raises(ds.KitError) as info:
        load_model(path)
    assert message in str(info.value)
    assert "format 1, this is 1" not in str(info.value)


def test_model_files_are_recognised_by_their_header(model, tmp_path):
    assert is_model_file(model)
    for content in (b"", b"PK\x03\x04junk", b"\x80\x04junk"):
        (tmp_path / "x").write_bytes(content)
        assert not is_model_file(tmp_path / "x")


def test_save_model_refuses_untrusted_estimators(tmp_path):
    with pytest.raises(UntrustedModelError):
        save_model(tmp_path / "m.skops", Planted(tmp_path / "t"), baseline="x")
    assert not list(tmp_path.iterdir())


def test_predict_help_states_the_rule():
    text = " ".join(run("baseline", "predict", "--help").output.split())
    assert "never runs code" in text and "skops" in text and "pickles" in text


# -- 4. .npy headers numpy accepts but no array can have ---------------------------------------------


def npy_bytes(shape, data: bytes = b"", descr="|u1") -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


NPY_HEADERS = {
    "bool_first": ((True, 240, 240), b"\0" * 57600),
    "bool_inside": ((N_TEST, True, 240), b""),
    "65_dims_of_1": ((1,) * 65, b"\0"),
    "70_dims": ((2,) * 70, b""),
    "zero_beside_huge": ((0, 2**62, 2**62), b""),
    "zero_beside_overflow": ((0, 10**30, 240), b""),
    "huge_product": ((2**40, 2**40, 240), b""),
    "negative": ((-1, 240, 240), b""),
}


@pytest.mark.parametrize("name", sorted(NPY_HEADERS))
def test_every_npy_header_numpy_accepts_gets_a_verdict(tmp_path, comp, name):
    shape, data = NPY_HEADERS[name]
    path = tmp_path / "sub.npy"
    path.write_bytes(npy_bytes(shape, data))
    with open(path, "rb") as fh:  # numpy itself accepts the header
        npy_format.read_magic(fh)
        npy_format.read_array_header_1_0(fh)
    result = validate_submission(path, n_slices=N_TEST)
    assert not result.ok and result.errors[0].code == "corrupt_file", [e.code for e in result.errors]
    cli_result = run("validate", path, "--data", comp, "--json")
    assert cli_result.exit_code == 1, cli_result.output
    assert json.loads(cli_result.stdout)["errors"][0]["code"] == "corrupt_file"
    assert not is_submission_file(path)


# -- 5. names printed as they are, not as the terminal would draw them -------------------------------


HOSTILE_NAMES = [
    "x\rvalid: test_data_ypred.dat (dat, 6 slices)\x1b[K.dat",
    "\x1b[2K\x1b[1Gvalid.dat",
    "abc\u202edat.exe",
    "line\nvalid: other.dat",
    "zw\u200bsp\u2028.dat",
    "\x9b31m.dat",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_are_printed_escaped(tmp_path, comp, name):
    path = tmp_path / name
    path.write_bytes(b"\0" * 100)  # invalid: wrong size
    for args in (["validate", path, "--data", comp], ["score", path, "--truth", comp / "private"],
                 ["baseline", "predict", path, "--data", comp, "--out", tmp_path / "s.dat"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        shown = result.output
        for ch in ("\r", "\x1b", "\x9b", "\u202e", "\u200b", "\u2028"):
            assert ch not in shown, (args[0], repr(shown))
        assert shown.count("\n") == result.output.rstrip("\n").count("\n") + 1
        assert "valid: other.dat" not in shown.replace("\\nvalid: other.dat", "")


def test_safe_name_escapes_controls_and_keeps_text():
    assert safe_name("a\rb") == "a\\rb"
    assert safe_name("\x1b[2K") == "\\x1b[2K"
    assert safe_name("r\u202eev") == "r\\u202eev"
    assert safe_name(os.fsdecode(b"caf\xe9.dat")) == "caf\\xe9.dat"  # an undecodable byte of a file name
    assert safe_name("café Ünïcode ß 東京.dat") == "café Ünïcode ß 東京.dat"
    assert safe_name("back\\slash") == "back\\\\slash"  # an escape cannot be faked


def test_names_in_one_line_errors_are_escaped(tmp_path, comp):
    result = run("baseline", "predict", tmp_path / "no\rpe\x1b[0m.skops", "--data", comp, "--out", tmp_path / "s")
    assert result.exit_code == 1 and "\r" not in result.output and "\x1b" not in result.output
    assert "no\\rpe\\x1b[0m.skops" in result.output


# -- 5b. an unreadable submission is an invalid submission, not a usage error -------------------------


@pytest.fixture
def unreadable(tmp_path, monkeypatch):
    """A submission this user cannot read: chmod 000, and for root (who reads anything) the same refusal
    simulated where the kit asks the system (os.access, os.open)."""
    path = tmp_path / "test_data_ypred.dat"
    path.write_bytes(b"\0" * (N_TEST * 240 * 240))
    path.chmod(0)
    if os.geteuid() == 0:
        real_access, real_open = os.access, os.open

        def access(p, mode, *a, **k):
            return False if os.fspath(p) == os.fspath(path) and mode & os.R_OK else real_access(p, mode, *a, **k)

        def fake_open(p, flags, *a, **k):
            if os.fspath(p) == os.fspath(path):
                raise PermissionError(13, "Permission denied", os.fspath(p))
            return real_open(p, flags, *a, **k)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(os, "open", fake_open)
    yield path
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("command", ["validate", "score"])
def test_an_unreadable_submission_is_unsafe_file_with_json(unreadable, comp, command):
    args = ["--data", comp] if command == "validate" else ["--truth", comp / "private"]
    result = run(command, unreadable, *args, "--json")
    assert result.exit_code == 1, result.output
    verdict = json.loads(result.stdout)
    assert verdict["status"] == "invalid" and verdict["errors"][0]["code"] == "unsafe_file"
    human = run(command, unreadable, *args)
    assert human.exit_code == 1 and "unsafe_file" in human.output


def test_score_report_is_never_written_into_private(tmp_path):
    """`score --report` into the competition's private/ folder is refused (exit 1), nothing written there."""
    import numpy as np
    from click.testing import CliRunner

    from brats_kit.cli import main
    from cohorts.synth import write_synthetic_competition
    from data_spec.submission import write_submission

    comp = tmp_path / "comp"
    write_synthetic_competition(comp, n_train=2, n_test=3, seed=0)
    sub = write_submission(tmp_path / "test_data_ypred.dat", np.zeros((3, 240, 240), np.uint8))
    before = sorted(p.name for p in (comp / "private").iterdir())
    result = CliRunner().invoke(main, ["score", str(sub), "--truth", str(comp / "private"),
                                       "--report", str(comp / "private" / "report")])
    assert result.exit_code == 1 and "never written into a competition's private/ folder" in result.output
    assert sorted(p.name for p in (comp / "private").iterdir()) == before
    ok = CliRunner().invoke(main, ["score", str(sub), "--truth", str(comp / "private"),
                                   "--report", str(tmp_path / "report")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "report" / "per_slice.csv").is_file()
