"""Code submission packages: folders and zips are checked and copied; hostile ones are refused by name."""
from __future__ import annotations

import os
import stat
import zipfile

import pytest

from grader.code.package import MAX_FILES, unpack_submission
from grader.errors import CodePackageError

CODE = b"def predict(x):\n    return (x[..., 3] > 1).astype('uint8')\n"


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, name)
            else:
                zf.writestr(name, data)
    return path


@pytest.mark.parametrize("members", [
    [("submission.py", CODE), ("model.json", b"{}")],
    [("team1/submission.py", CODE), ("team1/lib/helpers.py", b"X = 1\n"), ("__MACOSX/team1/._x", b"")],
])
def test_a_zip_of_the_folder_or_its_content_unpacks(tmp_path, members):
    dest = unpack_submission(make_zip(tmp_path / "s.zip", members), tmp_path / "job")
    assert (dest / "submission.py").read_bytes() == CODE
    assert not (tmp_path / "job" / "__MACOSX").exists()
    assert stat.S_IMODE(os.stat(dest / "submission.py").st_mode) == 0o644


def test_a_folder_is_copied(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "submission.py").write_bytes(CODE)
    (src / "sub" / "w.json").write_text("[1]")
    dest = unpack_submission(src, tmp_path / "job")
    assert (dest / "sub" / "w.json").read_text() == "[1]"


def _link_info(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("members, where", [
    ([("submission.py", CODE), ("/etc/cron.d/x", b"x")], "/etc/cron.d/x"),
    ([("submission.py", CODE), ("../../outside.py", b"x")], "outside"),
    ([("submission.py", CODE), ("a\\..\\..\\x", b"x")], "x"),
    ([("submission.py", CODE), ("C:/x", b"x")], "C:/x"),
    ([("submission.py", CODE), ("/private/test_truth.h5", _link_info("link"))], "link"),
    ([("submission.py", CODE), ("Submission.py", b"x")], "Submission.py"),
    ([("model.py", CODE)], None),
    ([("submission.py", CODE), ("lib", b"a file"), ("lib/x.py", b"X = 1")], "lib/x.py"),
])
def test_hostile_zips_are_refused_by_name(tmp_path, members, where):
    with pytest.raises(CodePackageError) as info:
        unpack_submission(make_zip(tmp_path / "s.zip", members), tmp_path / "job")
    if where:
        assert where in str(info.value)
    assert not (tmp_path / "job").exists()
    assert not (tmp_path.parent / "outside.py").exists()


def test_zip_bomb_is_stopped_on_the_bytes_read(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", [("submission.py", CODE), ("zeros.bin", b"\0" * (50 * 2**20))])
    assert path.stat().st_size < 2**20
    with pytest.raises(CodePackageError, match="compression bomb"):
        unpack_submission(path, tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_too_many_files_and_not_a_zip_are_refused(tmp_path):
    many = [("submission.py", CODE)] + [(f"f{i}.txt", b"") for i in range(MAX_FILES + 1)]
    with pytest.raises(CodePackageError, match="members"):
        unpack_submission(make_zip(tmp_path / "many.zip", many), tmp_path / "job")
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(CodePackageError, match="zip"):
        unpack_submission(tmp_path / "fake.zip", tmp_path / "job2")


def test_links_in_a_folder_are_refused(tmp_path):
    secret = tmp_path / "truth.h5"
    secret.write_text("truth")
    src = tmp_path / "src"
    src.mkdir()
    (src / "submission.py").write_bytes(CODE)
    (src / "data.h5").symlink_to(secret)
    with pytest.raises(CodePackageError, match="link"):
        unpack_submission(src, tmp_path / "job")
    (src / "data.h5").unlink()
    (src / "lib").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(CodePackageError, match="link"):
        unpack_submission(src, tmp_path / "job")
