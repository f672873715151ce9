"""``brats-kit data prepare``: small fake releases in every naming scheme, built with nibabel."""
from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from data_spec import (
    COURSE_X,
    H5_FILES,
    KitError,
    LayoutError,
    MissingFileError,
    MODALITIES,
    case_ids,
    open_split,
    open_truth,
    public_mask,
)
from cohorts.prepare import NotEnoughCasesError, SkippedCaseWarning, find_source, prepare_competition
from cohorts.prepare.volume import choose_slice

N_SLICES = 16  # not 155: the code must not assume BraTS's depth
ROWS, COLS = np.mgrid[:240, :240]

TAGS_OLD = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
TAGS_2023 = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}
MSD_ORDER = ("flair", "t1", "t1ce", "t2")  # the Decathlon's channels: FLAIR, T1w, T1gd, T2w
# Tumour radius of the slices around the lesion's centre slice s0: a unique largest area at s0.
PROFILE = {-2: 4, -1: 7, 0: 11, 1: 9, 2: 5}


def fake_patient(seed: int, labels=(1, 2, 4), tumour: bool = True, n_slices: int = N_SLICES):
    """Volumes in the kit's (P, L, S) orientation: ``{modality: int16}``, the label map, the centre slice.

    Every modality has its own level and an inferior-superior gradient (so the
    3D brain statistics differ from any one slice's); the lesion has three
    nested labels ``labels = (core, oedema, enhancing)`` and is off-centre
    (anterior, on the patient's left) so that a flip or transpose shows.
    """
    rng = np.random.default_rng(seed)
    brain = np.zeros((240, 240, n_slices), dtype=bool)
    for k in range(2, n_slices - 2):
        shrink = 1 - 0.5 * ((k - n_slices / 2) / (n_slices / 2)) ** 2
        brain[..., k] = ((ROWS - 120) / 95) ** 2 + ((COLS - 120) / 75) ** 2 < shrink
    seg = np.zeros(brain.shape, dtype=np.uint8)
    s0 = 5 + seed % 5
    r0, c0 = 85 + 3 * (seed % 4), 150 - 4 * (seed % 3)
    core, oedema, enhancing = labels
    if tumour:
        for dk, radius in PROFILE.items():
            d2 = (ROWS - r0) ** 2 + (COLS - c0) ** 2
            seg[..., s0 + dk][d2 < radius**2] = oedema
            seg[..., s0 + dk][d2 < (0.6 * radius) ** 2] = core
            seg[..., s0 + dk][d2 < (0.3 * radius) ** 2] = enhancing
    depth = np.arange(n_slices)[None, None, :]
    vols = {}
    for c, m in enumerate(MODALITIES):
        v = 300.0 * (c + 1) + 15.0 * (c + 1) * depth + rng.normal(0, 40, brain.shape)
        v = v + {"t1": -80, "t1ce": 150, "t2": 220, "flair": 260}[m] * (seg != 0)
        vols[m] = np.where(brain, np.maximum(v, 1), 0).astype(np.int16)
    return vols, seg, s0


def save(array, affine, path: Path, dtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=dtype or array.dtype), affine), str(path))


# Storage orders, written by hand (not with nibabel's helpers) so that the kit's orientation is checked.
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # how BraTS stores its volumes


def to_lps(v):
    return v.transpose(1, 0, 2)


LPI = np.diag([-1.0, -1.0, -1.0, 1.0])  # axial order reversed: the slice index in the file changes


def to_lpi(v):
    return v.transpose(1, 0, 2)[:, :, ::-1]


RAS = np.eye(4)


def to_ras(v):
    return v.transpose(1, 0, 2)[::-1, ::-1]


def write_folder_case(root: Path, case: str, vols, seg, tags, sep, store=to_lps, affine=LPS, dtype=None, skip=()):
    for key, tag in tags.items():
        if key in skip:
            continue
        data = seg if key == "seg" else vols[key]
        save(store(data), affine, root / case / f"{case}{sep}{tag}.nii.gz", dtype=None if key == "seg" else dtype)


def make_brats2018(root: Path, broken: bool = True) -> dict:
    """Five good cases under HGG/ and LGG/ and, with ``broken``, one case per way of being unusable."""
    truth = {}
    for i, (grade, case) in enumerate([("HGG", "Brats18_2013_2_1"), ("HGG", "Brats18_CBICA_AAB_1"),
                                       ("HGG", "Brats18_TCIA01_131_1"), ("LGG", "Brats18_2013_0_1"),
                                       ("LGG", "Brats18_TCIA09_141_1")]):
        vols, seg, s0 = fake_patient(i, labels=(1, 2, 4))
        write_folder_case(root / grade, case, vols, seg, TAGS_OLD, "_")
        truth[case] = (vols, seg, s0)
    if broken:
        vols, seg, _ = fake_patient(10)
        write_folder_case(root / "HGG", "Brats18_MISSING_1", vols, seg, TAGS_OLD, "_", skip=("t1ce",))
        write_folder_case(root / "HGG", "Brats18_SHAPE_1", vols, seg, TAGS_OLD, "_")
        save(to_lps(seg[:, :, :-1]), LPS, root / "HGG/Brats18_SHAPE_1/Brats18_SHAPE_1_seg.nii.gz")
        small = {m: v[20:220, 20:220] for m, v in vols.items()}
        write_folder_case(root / "LGG", "Brats18_SMALL_1", small, seg[20:220, 20:220], TAGS_OLD, "_")
        write_folder_case(root / "LGG", "Brats18_CORRUPT_1", vols, seg, TAGS_OLD, "_")
        bad = root / "LGG/Brats18_CORRUPT_1/Brats18_CORRUPT_1_t2.nii.gz"
        bad.write_bytes(bad.read_bytes()[:5000])  # a truncated download
        vols, seg, _ = fake_patient(11, tumour=False)
        write_folder_case(root / "LGG", "Brats18_NOTUMOUR_1", vols, seg, TAGS_OLD, "_")
    return truth


BROKEN_2018 = {
    "Brats18_MISSING_1": "missing t1ce",
    "Brats18_SHAPE_1": "shape mismatch",
    "Brats18_SMALL_1": "expected 240x240",
    "Brats18_CORRUPT_1": "unreadable t2 file",
    "Brats18_NOTUMOUR_1": "no tumour voxel",
}


def make_brats2021(root: Path) -> dict:
    truth = {}
    for i, case in enumerate(["BraTS2021_00000", "BraTS2021_00002", "BraTS2021_00003"]):
        vols, seg, s0 = fake_patient(20 + i, labels=(1, 2, 4))
        write_folder_case(root, case, vols, seg, TAGS_OLD, "_", store=to_lpi, affine=LPI)
        truth[case] = (vols, seg, s0)
    return truth


def make_brats2023(root: Path) -> dict:
    truth = {}
    for i, case in enumerate(["BraTS-GLI-00000-000", "BraTS-GLI-00002-000", "BraTS-GLI-00002-001"]):
        vols, seg, s0 = fake_patient(30 + i, labels=(1, 2, 3))
        write_folder_case(root, case, vols, seg, TAGS_2023, "-", dtype=np.float32)
        truth[case] = (vols, seg, s0)
    return truth


def make_msd(root: Path) -> dict:
    truth = {}
    task = root / "Task01_BrainTumour"
    for i, case in enumerate(["BRATS_001", "BRATS_002", "BRATS_003"]):
        vols, seg, s0 = fake_patient(40 + i, labels=(1, 2, 3))
        image = np.stack([to_ras(vols[m]).astype(np.float32) for m in MSD_ORDER], axis=-1)
        save(image, RAS, task / "imagesTr" / f"{case}.nii.gz")
        save(to_ras(seg), RAS, task / "labelsTr" / f"{case}.nii.gz")
        truth[case] = (vols, seg, s0)
    (task / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\0\5\26\7 macOS resource fork")
    (task / "imagesTs").mkdir()
    (task / "dataset.json").write_text(json.dumps(
        {"name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
         "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}}))
    return truth


MAKERS = {"brats2018": make_brats2018, "brats2021": make_brats2021, "brats2023": make_brats2023, "msd": make_msd}


@pytest.fixture(scope="session")
def releases(tmp_path_factory):
    """kind -> (release folder, {source case: (volumes, label map, centre slice)})."""
    base = tmp_path_factory.mktemp("releases")
    return {kind: (base / kind, make(base / kind)) for kind, make in MAKERS.items()}


def expected_slice(vols, k):
    """The course's normalisation, recomputed: 3D brain z-score, background at the slice's minimum."""
    brain = np.any([vols[m] != 0 for m in MODALITIES], axis=0)
    out = np.empty((240, 240, 4), dtype=np.float32)
    for c, m in enumerate(MODALITIES):
        v = vols[m].astype(np.float64)
        z = (v[..., k] - v[brain].mean()) / v[brain].std()
        z[~brain[..., k]] = z[brain[..., k]].min()
        out[..., c] = z
    return out, brain


def manifest_of(out: Path) -> dict:
    return json.loads((out / "private" / "manifest.json").read_text())


def build(source, out, **kw):
    kw.setdefault("warn", lambda message: None)
    return prepare_competition(source, out, **kw)


# --- recognising releases -------------------------------------------------------------------------


def test_each_scheme_is_recognised_with_its_cases(releases):
    for kind, (root, truth) in releases.items():
        source = find_source(root)
        assert source.scheme.kind == kind
        good = [c.case_id for c in source.cases if not c.missing()]
        assert set(truth) <= set(good)
    # BraTS 2018's HGG/ and LGG/ sub-folders are searched; the incomplete case is listed, not dropped.
    cases = {c.case_id: c for c in find_source(releases["brats2018"][0]).cases}
    assert len(cases) == 10 and cases["Brats18_MISSING_1"].missing() == ["t1ce"]
    # The Decathlon's macOS "._" files are not cases; its channels come from dataset.json.
    msd = find_source(releases["msd"][0])
    assert [c.case_id for c in msd.cases] == ["BRATS_001", "BRATS_002", "BRATS_003"]
    assert msd.cases[0].channels == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}


def test_2023_tags_map_to_the_kit_modalities(releases):
    case = find_source(releases["brats2023"][0]).cases[0]
    assert {k: p.name.split("-")[-1] for k, p in case.files.items()} == {
        "t1": "t1n.nii.gz", "t1ce": "t1c.nii.gz", "t2": "t2w.nii.gz", "flair": "t2f.nii.gz", "seg": "seg.nii.gz"}


def test_unknown_folder_lists_the_recognised_schemes(tmp_path):
    (tmp_path / "patient1").mkdir()
    (tmp_path / "patient1" / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(LayoutError) as err:
        find_source(tmp_path)
    message = str(err.value)
    for title in ("BraTS 2018-2020", "BraTS 2021", "BraTS 2023+", "Task01_BrainTumour"):
        assert title in message
    assert "patient1" in message
    archive = tmp_path / "BraTS2021_Training_Data.tar"
    archive.write_bytes(b"")
    with pytest.raises(LayoutError, match="extract the archive"):
        find_source(archive)
    with pytest.raises(MissingFileError):
        find_source(tmp_path / "nowhere")


def test_two_releases_in_one_folder_are_refused(releases, tmp_path):
    shutil.copytree(releases["brats2021"][0], tmp_path / "2021")
    shutil.copytree(releases["brats2023"][0], tmp_path / "2023")
    with pytest.raises(LayoutError, match="several releases"):
        find_source(tmp_path)


# --- what a build writes --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["brats2018", "brats2021", "brats2023", "msd"])
def test_build_maps_modalities_merges_labels_and_takes_the_largest_slice(releases, tmp_path, kind):
    root, truth = releases[kind]
    n_train, n_test = (3, 2) if kind == "brats2018" else (2, 1)
    summary = build(root, tmp_path / "out", n_train=n_train, n_test=n_test, seed=0)
    assert summary.source["kind"] == kind and summary.used == n_train + n_test
    manifest = manifest_of(tmp_path / "out")
    train, test = open_split(tmp_path / "out", "train"), open_split(tmp_path / "out", "test")
    truth_y = open_truth(tmp_path / "out").y
    rows = [(train.x[i], train.y[i], r) for i, r in enumerate(manifest["train"])]
    rows += [(test.x[i], truth_y[i], r) for i, r in enumerate(manifest["test"])]
    for x, y, record in rows:
        vols, seg, s0 = truth[record["source_case"]]
        # The largest tumour slice, in the file's own axial order (BraTS 2021 fake: stored upside down).
        assert record["slice_index"] == (N_SLICES - 1 - s0 if kind == "brats2021" else s0)
        assert record["n_axial_slices"] == N_SLICES
        # Whole tumour = every non-zero label, in the kit's orientation.
        np.testing.assert_array_equal(y, (seg[..., s0] != 0).astype(np.uint8))
        assert record["labels"] == ([1, 2, 4] if kind in ("brats2018", "brats2021") else [1, 2, 3])
        # Modalities in the kit's order, normalised as the course.
        np.testing.assert_allclose(x, expected_slice(vols, s0)[0], rtol=0, atol=1e-5)


def test_normalisation_statistics(releases, tmp_path):
    root, truth = releases["brats2018"]
    build(root, tmp_path / "out", n_train=3, n_test=2, seed=3)
    manifest = manifest_of(tmp_path / "out")
    train = open_split(tmp_path / "out", "train")
    for i, record in enumerate(manifest["train"]):
        vols, _, s0 = truth[record["source_case"]]
        brain = np.any([vols[m] != 0 for m in MODALITIES], axis=0)
        x = train.x[i]
        for c, m in enumerate(MODALITIES):
            mean, std = record["brain_mean"][m], record["brain_std"][m]
            z = (vols[m].astype(np.float64) - mean) / std
            # z-scored over the brain voxels of the whole 3D volume...
            assert abs(z[brain].mean()) < 1e-9 and abs(z[brain].std() - 1) < 1e-9
            # ...not over the slice (the fake volumes have an inferior-superior gradient).
            assert abs(x[..., c][brain[..., s0]].mean()) > 0.05
            np.testing.assert_allclose(x[..., c][brain[..., s0]], z[..., s0][brain[..., s0]], atol=1e-5)
            # Background is exactly the slice's minimum of that modality.
            assert np.all(x[..., c][~brain[..., s0]] == x[..., c].min())
            assert x[..., c][brain[..., s0]].min() == x[..., c].min()


def test_outputs_both_layouts_positional_ids_and_manifest(releases, tmp_path, monkeypatch):
    root, _ = releases["brats2018"]
    out = tmp_path / "out"
    monkeypatch.chdir(root.parent)  # a relative SOURCE, as typed by a user
    build(Path(root.name), out, n_train=3, n_test=2, seed=1)
    for split, n in (("train", 3), ("test", 2)):
        h5, course = open_split(out, split, "hdf5"), open_split(out, split, "course")
        np.testing.assert_array_equal(np.asarray(h5.x), np.asarray(course.x))
        assert list(h5.case_id) == list(case_ids(split, n))
        assert h5.attrs["generator"] == "brats-kit prepare" and h5.attrs["source_kind"] == "brats2018"
        assert h5.attrs["slice_rule"] == "largest" and "seed" not in h5.attrs  # the seed stays private
    truth = open_truth(out)
    np.testing.assert_array_equal(truth.public, public_mask(2, 1))
    manifest = manifest_of(out)
    assert manifest["parameters"] == {"n_train": 3, "n_test": 2, "seed": 1, "slice_rule": "largest"}
    assert "--slice largest" in manifest["command"] and manifest["source"]["kind"] == "brats2018"
    assert [r["case_id"] for r in manifest["test"]] == ["test-0000", "test-0001"]
    assert [r["public"] for r in manifest["test"]] == list(public_mask(2, 1))
    record = manifest["train"][0]
    assert set(record["files"]) == {"t1", "t1ce", "t2", "flair", "seg"} and len(record["sha256"]) == 5
    assert manifest["source"]["path"] == str(root.resolve())
    assert record["files"]["seg"] in (f"{grade}/{record['source_case']}/{record['source_case']}_seg.nii.gz"
                                      for grade in ("HGG", "LGG"))
    assert set(manifest["files"]) >= {"train.h5", "test.h5", COURSE_X["train"], "private/test_truth.h5"}
    # Source case names stay private: nothing a student receives names them.
    sources = [r["source_case"] for r in manifest["train"] + manifest["test"]]
    for name in (H5_FILES["train"], H5_FILES["test"]):
        assert not any(s.encode() in (out / name).read_bytes() for s in sources)


def test_same_arguments_give_byte_identical_files(releases, tmp_path):
    root, _ = releases["msd"]
    a, b = tmp_path / "a", tmp_path / "b"
    build(root, a, n_train=2, n_test=1, seed=5, slice_rule="random")
    build(root, b, n_train=2, n_test=1, seed=5, slice_rule="random")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 8
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_patients_are_shuffled_with_the_seed(releases, tmp_path):
    root, _ = releases["brats2018"]
    orders = set()
    for seed in range(3):
        build(root, tmp_path / f"s{seed}", n_train=3, n_test=2, seed=seed)
        m = manifest_of(tmp_path / f"s{seed}")
        orders.add(tuple(r["source_case"] for r in m["train"] + m["test"]))
    assert len(orders) > 1


def test_random_slice_is_seeded_and_always_has_tumour(releases, tmp_path):
    root, truth = releases["brats2023"]
    chosen = {}
    for seed in range(4):
        out = tmp_path / f"s{seed}"
        build(root, out, n_train=2, n_test=1, seed=seed, slice_rule="random")
        train, truth_y = open_split(out, "train"), open_truth(out).y
        masks = list(train.y) + list(truth_y)
        m = manifest_of(out)
        for mask, record in zip(masks, m["train"] + m["test"]):
            _, seg, _ = truth[record["source_case"]]
            k = record["slice_index"]
            assert seg[..., k].any() and mask.any()
            np.testing.assert_array_equal(mask, seg[..., k] != 0)
            chosen.setdefault(record["source_case"], set()).add(k)
    # The slice follows the seed: not always the same one (nor always the largest).
    assert any(len(ks) > 1 for ks in chosen.values())
    build(root, tmp_path / "again", n_train=2, n_test=1, seed=2, slice_rule="random")
    assert manifest_of(tmp_path / "again")["train"] == manifest_of(tmp_path / "s2")["train"]


def test_largest_slice_ties_go_to_the_lowest_index():
    rng = np.random.default_rng(0)
    assert choose_slice(np.array([0, 3, 5, 5, 1]), "largest", rng) == 2
    assert {choose_slice(np.array([0, 3, 0, 5, 0]), "random", rng) for _ in range(50)} == {1, 3}


# --- skipping and refusing ------------------------------------------------------------------------


def test_broken_patients_are_skipped_named_and_counted(releases, tmp_path):
    root, truth = releases["brats2018"]
    messages = []
    # All five good patients are needed, so every broken one is read on the way.
    summary = prepare_competition(root, tmp_path / "out", n_train=3, n_test=2, seed=0, warn=messages.append)
    assert summary.found == 10 and summary.used == 5 and summary.read == 10
    assert summary.n_skipped == 5 and summary.not_read == 0
    reasons = {item["case"]: item["reason"] for item in summary.skipped}
    assert set(reasons) == set(BROKEN_2018)
    for case, why in BROKEN_2018.items():
        assert why in reasons[case]
        assert any(case in message and why in message for message in messages)
    assert manifest_of(tmp_path / "out")["skipped"] == summary.skipped
    used = {r["source_case"] for r in manifest_of(tmp_path / "out")["train"]}
    assert used <= set(truth)


def test_default_warnings_are_python_warnings(releases, tmp_path):
    root, _ = releases["brats2018"]
    with pytest.warns(SkippedCaseWarning) as caught:
        prepare_competition(root, tmp_path / "out", n_train=3, n_test=2, seed=0)
    assert len(caught) == 5 and any("Brats18_MISSING_1: missing t1ce" in str(w.message) for w in caught)


def test_too_few_usable_patients_is_an_error_and_writes_nothing(releases, tmp_path):
    root, _ = releases["brats2018"]
    with pytest.raises(NotEnoughCasesError, match=r"10 cases found.*256 train \+ 29 test = 285"):
        build(root, tmp_path / "out")
    with pytest.raises(NotEnoughCasesError, match=r"only 5 usable patients \(5 skipped"):
        build(root, tmp_path / "out", n_train=4, n_test=2)
    assert not (tmp_path / "out").exists()


def test_a_validation_release_without_labels_says_so(releases, tmp_path):
    src = tmp_path / "validation"
    shutil.copytree(releases["brats2021"][0], src)
    for seg in src.rglob("*_seg.nii.gz"):
        seg.unlink()
    with pytest.raises(NotEnoughCasesError, match="validation release has no label maps"):
        build(src, tmp_path / "out", n_train=2, n_test=1)


def test_one_patient_at_a_time(releases, tmp_path):
    """Peak memory stays near one patient's volumes, not the whole release's."""
    src = tmp_path / "big"
    for i in range(8):
        vols, seg, _ = fake_patient(50 + i)
        write_folder_case(src, f"Brats18_MEM_{i}", vols, seg, TAGS_OLD, "_")
    one_patient = 4 * 240 * 240 * N_SLICES * 4  # four float32 volumes
    tracemalloc.start()
    try:
        build(src, tmp_path / "out", n_train=6, n_test=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print('peak / one patient', peak / one_patient)
    assert peak < 4 * one_patient, (peak, one_patient)  # holding all 8 patients would need 8x


def test_corrupt_gzip_header_is_skipped(releases, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(releases["brats2021"][0], src)
    target = src / "BraTS2021_00002" / "BraTS2021_00002_flair.nii.gz"
    target.write_bytes(b"this is not gzip at all")
    messages = []
    with pytest.raises(NotEnoughCasesError, match="BraTS2021_00002: unreadable flair file"):
        prepare_competition(src, tmp_path / "out", n_train=2, n_test=1, warn=messages.append)
    assert messages == [messages[0]] and "skipped BraTS2021_00002: unreadable flair file" in messages[0]


# --- the command ----------------------------------------------------------------------------------


def test_command_human_and_json_output(releases, tmp_path):
    from brats_kit.commands.prepare import prepare

    root, _ = releases["brats2018"]
    runner = CliRunner()
    result = runner.invoke(prepare, [str(root), "--out", str(tmp_path / "h"), "--train", "3", "--test", "2",
                                     "--seed", "0", "--slice", "random"])
    assert result.exit_code == 0, result.output
    assert "recognised BraTS 2018-2020" in result.output and "10 cases found" in result.output
    assert "skipped 5" in result.output and "warning: skipped Brats18_CORRUPT_1" in result.output
    result = runner.invoke(prepare, [str(root), "--out", str(tmp_path / "j"), "--train", "3", "--test", "2",
                                     "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    # no --seed: a secret random one, so the patients read (and skipped) on the way vary
    assert summary["source"]["kind"] == "brats2018" and summary["n_skipped"] == summary["read"] - 5
    parameters = manifest_of(tmp_path / "j")["parameters"]
    assert parameters["slice_rule"] == "largest" and 0 <= parameters["seed"] < 2**63


def test_command_errors_are_one_line_with_exit_codes(tmp_path):
    from brats_kit.cli import KitGroup
    from brats_kit.commands.prepare import prepare

    group = KitGroup(commands={"prepare": prepare})  # what registration under ``data`` will give
    result = CliRunner().invoke(group, ["prepare", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no BraTS case found" in result.output and "BraTS 2021" in result.output
    result = CliRunner().invoke(group, ["prepare", str(tmp_path), "--out", "o", "--slice", "median"])
    assert result.exit_code == 2


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_seed_out_of_range_is_a_named_error_and_writes_nothing(releases, tmp_path, seed):
    # Seeds seed numpy's generators (non-negative) and are stored as int64 HDF5 attributes.
    root, _ = releases["brats2021"]
    with pytest.raises(KitError, match="seed"):
        build(root, tmp_path / "out", n_train=2, n_test=1, seed=seed)
    assert not (tmp_path / "out").exists()


def test_command_refuses_a_negative_seed_as_usage_error(releases, tmp_path):
    from brats_kit.cli import KitGroup
    from brats_kit.commands.prepare import prepare

    group = KitGroup(commands={"prepare": prepare})
    root, _ = releases["brats2021"]
    result = CliRunner().invoke(group, ["prepare", str(root), "--out", str(tmp_path / "o"), "--train", "2",
                                        "--test", "1", "--seed", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "--seed" in result.output
    assert not (tmp_path / "o").exists()


# --- hardening (issue 11): one broken patient never stops the build, nothing leaks -----------------


@pytest.fixture(scope="session")
def good_cases(tmp_path_factory):
    """Three good BraTS 2018-style cases, written once."""
    root = tmp_path_factory.mktemp("good")
    for i in range(3):
        vols, seg, _ = fake_patient(60 + i)
        write_folder_case(root, f"Brats18_GOOD_{i}", vols, seg, TAGS_OLD, "_")
    return root


@pytest.fixture
def small_release(good_cases):
    """``small_release(root)``: the three good cases copied into ``root``; returns the case names there."""
    def make(root: Path) -> list:
        shutil.copytree(good_cases, root, dirs_exist_ok=True)
        return sorted(p.name for p in root.iterdir())
    return make


def seed_reading_first(n_cases: int, index: int = 0, second=None) -> int:
    """A seed whose shuffle reads case ``index`` first (and ``second`` next): it is surely read."""
    for seed in range(10_000):
        order = list(np.random.default_rng(seed).permutation(n_cases))
        if order[0] == index and (second is None or order[1] == second):
            return seed
    raise AssertionError("no such seed")


def header_only(path: Path, shape, dtype=np.int16):
    """A NIfTI file whose header declares ``shape`` but holds no voxel: nothing may read it."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_sform(LPS, code=1)
    hdr["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hdr.binaryblock + b"\0" * 4)


def build_with_broken(tmp_path, small_release, make_broken, why: str):
    root = tmp_path / "release"
    make_broken(root / "Brats18_A_BROKEN_1")
    small_release(root)
    messages = []
    out = tmp_path / "out"
    summary = prepare_competition(root, out, n_train=2, n_test=1, seed=seed_reading_first(4), warn=messages.append)
    assert summary.used == 3 and summary.n_skipped == 1, summary.skipped
    (skipped,) = summary.skipped
    assert skipped["case"] == "Brats18_A_BROKEN_1" and why in skipped["reason"], skipped
    assert any("Brats18_A_BROKEN_1" in m and why in m for m in messages)
    assert manifest_of(out)["skipped"] == summary.skipped
    return summary


def _case_with_seg(seg_transform, dtype=None):
    def make(folder: Path):
        vols, seg, _ = fake_patient(70)
        write_folder_case(folder.parent, folder.name, vols, seg_transform(seg), TAGS_OLD, "_")
        if dtype is not None:  # rewrite the label map in another dtype
            path = folder / f"{folder.name}_seg.nii.gz"
            save(to_lps(seg_transform(seg)).astype(dtype), LPS, path)
    return make


def _with_nan(seg):
    seg = seg.astype(np.float32)
    seg[120, 120, 3] = np.nan
    return seg


def _mri_as_seg(seg):
    return np.linspace(0, 900.5, seg.size, dtype=np.float32).reshape(seg.shape) * (seg >= 0)


@pytest.mark.parametrize("transform, why", [
    (_with_nan, "NaN or infinite"),
    (_mri_as_seg, "fractional values"),
    (lambda seg: np.where(seg == 4, 7, seg).astype(np.uint8), "labels 7 are outside BraTS 2018-2020's label set"),
    (lambda seg: np.where(seg == 4, 255, seg).astype(np.uint8), "labels 255 are outside"),
    (lambda seg: np.where(seg == 4, -1, seg.astype(np.int16)), "labels -1 are outside"),
])
def test_a_label_map_that_is_not_one_skips_that_patient(tmp_path, small_release, transform, why):
    build_with_broken(tmp_path, small_release, _case_with_seg(transform), why)


def test_a_huge_volume_is_skipped_before_it_is_read(tmp_path, small_release):
    def make(folder: Path):
        for tag in TAGS_OLD.values():  # 240 x 240 x 4000: 3.7 GB of float32 per modality
            header_only(folder / f"{folder.name}_{tag}.nii", (240, 240, 4000))
    build_with_broken(tmp_path, small_release, make, "too large: 4000 axial slices")


def test_running_out_of_memory_on_one_patient_skips_it(tmp_path, small_release, monkeypatch):
    from cohorts.prepare import volume

    floats = volume._Image.floats

    def fail_on_broken(self):
        if "BROKEN" in self.path.name:
            raise MemoryError
        return floats(self)

    monkeypatch.setattr(volume._Image, "floats", fail_on_broken)
    build_with_broken(tmp_path, small_release, _case_with_seg(lambda s: s), "not enough memory")


def test_one_patient_under_two_names_is_kept_on_one_side_only(tmp_path, small_release):
    root = tmp_path / "release"
    names = small_release(root)
    # The same patient again under another name (a release that ships one case twice).
    original = root / names[0]
    twin = root / "Brats18_A_TWIN_1"
    twin.mkdir()
    for f in original.iterdir():
        shutil.copy(f, twin / f.name.replace(original.name, twin.name))
    cases = sorted(p.name for p in root.iterdir())
    seed = seed_reading_first(len(cases), cases.index(twin.name), cases.index(original.name))
    messages = []
    summary = prepare_competition(root, tmp_path / "out", n_train=2, n_test=1, seed=seed, warn=messages.append)
    (skipped,) = summary.skipped
    assert skipped["case"] == original.name and f"duplicate of {twin.name}" in skipped["reason"]
    manifest = manifest_of(tmp_path / "out")
    used = [r["source_case"] for r in manifest["train"] + manifest["test"]]
    assert original.name not in used and twin.name in used
    hashes = [h for r in manifest["train"] + manifest["test"] for h in r["sha256"].values()]
    assert len(hashes) == len(set(hashes))  # no image file shared between kept patients


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"n_test": -1}, {"n_train": 2.5}, {"slice_rule": "median"},
                                    {"seed": "0"}, {"n_test": True}])
def test_bad_arguments_are_named_errors(releases, tmp_path, kwargs):
    root, _ = releases["brats2021"]
    with pytest.raises(KitError) as info:
        build(root, tmp_path / "out", **{"n_train": 2, "n_test": 1, **kwargs})
    assert info.value.code == "bad_argument" and not (tmp_path / "out").exists()


PUBLIC_ATTRS = {"generator", "source_kind", "slice_rule", "spec_version", "split", "modalities", "normalisation",
                "sha256_x", "sha256_y", "sha256_case_id"}


@pytest.mark.parametrize("seed", [123_456_789_012, None])
def test_no_public_file_holds_the_seed_or_a_source_name(releases, tmp_path, seed):
    import h5py

    root, _ = releases["brats2018"]
    out = tmp_path / "out"
    build(root, out, n_train=3, n_test=2, seed=seed)
    manifest = manifest_of(out)
    seed = manifest["parameters"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**63
    public = [p for p in out.iterdir() if p.is_file()]
    assert sorted(p.name for p in public) == sorted(["train.h5", "test.h5", COURSE_X["train"], COURSE_X["test"],
                                                     "train_data_y.dat"])
    secrets = [str(seed).encode(), np.int64(seed).tobytes(), np.uint64(seed).tobytes()]
    secrets += [r["source_case"].encode() for r in manifest["train"] + manifest["test"]]
    for path in public:
        data = path.read_bytes()
        assert not any(s in data for s in secrets), path.name
    for name in ("train.h5", "test.h5"):
        with h5py.File(out / name, "r") as f:
            assert set(f.attrs) <= PUBLIC_ATTRS, set(f.attrs) - PUBLIC_ATTRS


def test_an_existing_competition_is_refused_before_anything_is_read(releases, tmp_path, monkeypatch):
    from cohorts.prepare import build as build_module
    from data_spec.layout import OverwriteError

    root, _ = releases["brats2021"]
    out = tmp_path / "out"
    build(root, out, n_train=2, n_test=1, seed=3)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(build_module, "extract_patient", lambda *a, **k: pytest.fail("read a patient"))
    with pytest.raises(OverwriteError, match="already holds a competition"):
        build(root, out, n_train=2, n_test=1, seed=4)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    build(root, out, n_train=2, n_test=1, seed=4, force=True)
    assert manifest_of(out)["parameters"]["seed"] == 4


def test_any_failure_on_one_patient_skips_it(tmp_path, small_release, monkeypatch):
    from cohorts.prepare import volume

    labels = volume._Image.labels

    def odd(self):
        if "BROKEN" in self.path.name:
            raise IndexError("something nibabel or numpy did not expect")
        return labels(self)

    monkeypatch.setattr(volume._Image, "labels", odd)
    build_with_broken(tmp_path, small_release, _case_with_seg(lambda s: s), "could not be read (IndexError")


def test_a_secret_seed_is_never_echoed(releases, tmp_path):
    from brats_kit.commands.prepare import prepare

    root, _ = releases["brats2021"]
    result = CliRunner().invoke(prepare, [str(root), "--out", str(tmp_path / "s"), "--train", "2", "--test", "1"])
    assert result.exit_code == 0, result.output
    manifest = manifest_of(tmp_path / "s")
    seed = manifest["parameters"]["seed"]
    assert manifest["seed_source"].startswith("secret") and str(seed) not in result.output
    assert "a secret seed" in result.output
    given = CliRunner().invoke(prepare, [str(root), "--out", str(tmp_path / "g"), "--train", "2", "--test", "1",
                                         "--seed", "7", "--json"])
    assert json.loads(given.stdout)["seed"] == 7 and manifest_of(tmp_path / "g")["seed_source"] == "explicit"


def test_prepare_records_the_ranking_score_in_the_private_manifest_only(releases, tmp_path):
    from brats_kit.cli import main

    root, _ = releases["brats2018"]
    runner = CliRunner()
    bad = runner.invoke(main, ["data", "prepare", str(root), "--out", str(tmp_path / "bad"), "--train", "3", "--test", "2",
                                  "--ranking", "recall"])
    assert bad.exit_code == 1 and "cannot rank by" in bad.output and not (tmp_path / "bad").exists()
    ok = runner.invoke(main, ["data", "prepare", str(root), "--out", str(tmp_path / "c"), "--train", "3", "--test", "2",
                                 "--seed", "0", "--ranking", "lesion_dice"])
    assert ok.exit_code == 0, ok.output
    assert manifest_of(tmp_path / "c")["ranking"] == "lesion_dice"
    plain = runner.invoke(main, ["data", "prepare", str(root), "--out", str(tmp_path / "d"), "--train", "3", "--test", "2",
                                    "--seed", "0"])
    assert plain.exit_code == 0 and "ranking" not in manifest_of(tmp_path / "d")
