"""The synthetic cohort: contract, appearance, determinism, files (tiny cohorts, seconds)."""
from __future__ import annotations

import hashlib
import json
import re
import warnings

import h5py
import numpy as np
import pytest

from data_spec import (
    KitError,
    MANIFEST_FILE,
    PRIVATE_DIR,
    X_DTYPE,
    X_ITEM_SHAPE,
    Y_DTYPE,
    Y_ITEM_SHAPE,
    case_ids,
    open_split,
    open_truth,
    public_mask,
)
from cohorts.synth import (
    GENERATOR,
    MAX_SEED,
    ReproducibleSeedWarning,
    patient_rng,
    simulate_case,
    synthesize,
    write_synthetic_competition,
)
from starter import foreground_mask

N_TRAIN, N_TEST, SEED = 6, 3, 0


@pytest.fixture(scope="module")
def cohort():
    return synthesize(n_train=N_TRAIN, n_test=N_TEST, seed=SEED)


def _write(out, **kwargs):
    """Write a cohort, silencing the warning an explicit seed gives (tested on its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReproducibleSeedWarning)
        return write_synthetic_competition(out, **kwargs)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "competition"
    files = _write(out, n_train=3, n_test=2, seed=SEED)
    return out, files


def _sha256_tree(directory):
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_shapes_dtypes_ids(cohort):
    train, test = cohort["train"], cohort["test"]
    assert train["x"].shape == (N_TRAIN,) + X_ITEM_SHAPE and train["x"].dtype == X_DTYPE
    assert train["y"].shape == (N_TRAIN,) + Y_ITEM_SHAPE and train["y"].dtype == Y_DTYPE
    assert test["x"].shape == (N_TEST,) + X_ITEM_SHAPE and test["y"].shape == (N_TEST,) + Y_ITEM_SHAPE
    assert set(np.unique(np.concatenate([train["y"], test["y"]]))) <= {0, 1}
    assert np.isfinite(train["x"]).all() and np.isfinite(test["x"]).all()
    np.testing.assert_array_equal(train["case_id"], case_ids("train", N_TRAIN))
    np.testing.assert_array_equal(test["case_id"], case_ids("test", N_TEST))
    np.testing.assert_array_equal(test["public"], public_mask(N_TEST, SEED))


def test_background_is_the_slice_minimum(cohort):
    for x in np.concatenate([cohort["train"]["x"], cohort["test"]["x"]]):
        floor = x.min(axis=(0, 1))
        at_floor = x == floor
        # The corners of the field are never brain.
        assert at_floor[[0, 0, -1, -1], [0, -1, 0, -1]].all()
        # The background is the same pixels in every modality (a brain pixel may
        # touch the minimum of one modality, at most a handful).
        assert (at_floor != at_floor[..., :1]).sum() <= 8
        brain = foreground_mask(x)
        assert 0.08 < brain.mean() < 0.7


def test_normalised_over_the_volume_not_the_slice(cohort):
    x = cohort["train"]["x"]
    fg = foreground_mask(x)
    means = np.array([x[i][fg[i]].mean(axis=0) for i in range(len(x))])
    stds = np.array([x[i][fg[i]].std(axis=0) for i in range(len(x))])
    # z-scored over the 3D brain: a slice is near 0 / 1, but not exactly.
    assert np.abs(means).max() < 1.5 and np.abs(means).max() > 1e-3
    assert 0.4 < stds.min() and stds.max() < 2.0
    assert np.abs(stds - 1).max() > 1e-3


def test_tumour_only_inside_the_brain(cohort):
    for split in ("train", "test"):
        x, y = cohort[split]["x"], cohort[split]["y"].astype(bool)
        assert not (y & ~foreground_mask(x)).any()
    assert cohort["train"]["y"].any(axis=(1, 2)).sum() >= N_TRAIN - 1  # tumour-free slices are rare


def test_lesion_appearance(cohort):
    x = np.concatenate([cohort["train"]["x"], cohort["test"]["x"]])
    y = np.concatenate([cohort["train"]["y"], cohort["test"]["y"]]).astype(bool)
    fg = foreground_mask(x)
    tumour, healthy = x[y], x[fg & ~y]
    t1, t2, flair = 0, 2, 3
    # Oedema: bright on FLAIR and T2; the core is dark on T1.
    assert tumour[:, flair].mean() > healthy[:, flair].mean() + 1.0
    assert tumour[:, t2].mean() > healthy[:, t2].mean() + 0.5
    assert tumour[:, t1].mean() < healthy[:, t1].mean()
    # Fluid (the brightest healthy T2) is dark on FLAIR.
    csf = healthy[:, t2] > np.percentile(healthy[:, t2], 97)
    assert healthy[csf, flair].mean() < healthy[:, flair].mean() - 0.5
    # Not trivially separable: some healthy pixels are as bright on FLAIR as typical tumour.
    assert (healthy[:, flair] > np.median(tumour[:, flair])).sum() > 50


def test_enhancing_rim_on_t1ce():
    # Patients are independent: look for a high-grade case with necrosis among a few.
    for i in range(30):
        x, y, params = simulate_case(SEED, "train", i)
        focus = params["tumour"]["foci"][0]
        if params["tumour"]["grade"] == "high" and focus["necrosis_fraction"] > 0 and y.sum() > 800:
            break
    else:
        pytest.fail("no high-grade tumour with necrosis among 30 patients")
    healthy = x[foreground_mask(x) & (y == 0)]
    tumour = x[y.astype(bool)]
    t1ce = 1
    assert np.percentile(tumour[:, t1ce], 95) > np.percentile(healthy[:, t1ce], 95) + 0.5


def test_same_seed_same_bytes_other_seed_differs(written, tmp_path):
    out, files = written
    again = tmp_path / "again"
    _write(again, n_train=3, n_test=2, seed=SEED)
    first = _sha256_tree(out)
    assert set(first) == set(files) and any(name.endswith(".h5") for name in first)
    assert first == _sha256_tree(again)
    other = tmp_path / "other"
    _write(other, n_train=3, n_test=2, seed=SEED + 1)
    second = _sha256_tree(other)
    for name in ("train_data_x.dat", "test_data_x.dat", "train.h5", "test.h5"):
        assert first[name] != second[name]


def test_patient_independent_of_cohort_size(cohort):
    small = synthesize(n_train=2, n_test=1, seed=SEED)
    np.testing.assert_array_equal(small["train"]["x"], cohort["train"]["x"][:2])
    np.testing.assert_array_equal(small["test"]["y"], cohort["test"]["y"][:1])


def test_files_load_in_both_layouts(written):
    out, _ = written
    data = synthesize(n_train=3, n_test=2, seed=SEED)
    for layout in ("hdf5", "course"):
        train = open_split(out, "train", layout=layout)
        np.testing.assert_array_equal(np.asarray(train.x), data["train"]["x"])
        np.testing.assert_array_equal(np.asarray(train.y), data["train"]["y"])
        test = open_split(out, "test", layout=layout)
        np.testing.assert_array_equal(np.asarray(test.x), data["test"]["x"])
        assert test.y is None  # the student's copy holds no test masks
    h5 = open_split(out, "train", layout="hdf5", verify=True)
    assert h5.attrs["generator"] == GENERATOR and "seed" not in h5.attrs
    truth = open_truth(out)
    np.testing.assert_array_equal(np.asarray(truth.y), data["test"]["y"])
    np.testing.assert_array_equal(truth.public, data["test"]["public"])
    manifest = json.loads((out / PRIVATE_DIR / MANIFEST_FILE).read_text())
    assert manifest["seed"] == SEED and manifest["seed_source"] == "explicit"
    assert set(manifest["cases"]) == {"train-0000", "train-0001", "train-0002", "test-0000", "test-0001"}
    case = manifest["cases"]["train-0001"]
    assert {"slice_z_mm", "tumour", "tumour_pixels", "rotation_deg"} <= set(case)
    assert case["tumour_pixels"] == int(data["train"]["y"][1].sum())


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"n_test": -1}, {"seed": -1}, {"seed": 1.5}, {"seed": 2**128}])
def test_bad_arguments(kwargs):
    with pytest.raises(KitError):
        synthesize(**{"n_train": 1, "n_test": 1, **kwargs})


def test_largest_seed_is_written(tmp_path):
    # The seed lives in the private manifest (JSON), as large as a secret one.
    _write(tmp_path / "c", n_train=1, n_test=1, seed=MAX_SEED)
    assert json.loads((tmp_path / "c" / PRIVATE_DIR / MANIFEST_FILE).read_text())["seed"] == MAX_SEED == 2**128 - 1


# -- the seed is secret by default -----------------------------------------------------------------

PUBLIC_H5 = ("train.h5", "test.h5")


def _public_files(out):
    return [p for p in sorted(out.rglob("*")) if p.is_file() and PRIVATE_DIR not in p.relative_to(out).parts]


def _public_attributes(out) -> list:
    """Every attribute of every object in the students' HDF5 files."""
    values = []

    def visit(_name, obj):
        values.extend(obj.attrs.items())

    for name in PUBLIC_H5:
        with h5py.File(out / name, "r") as f:
            values.extend(f.attrs.items())
            f.visititems(visit)
    return values


def _candidate_seeds(out, n_small: int = 10_000) -> set:
    """What a student would try: 0..n_small, and every number found in the public attributes."""
    seeds = set(range(n_small + 1))
    for _key, value in _public_attributes(out):
        for v in np.atleast_1d(value).tolist():
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                seeds.add(abs(int(v)))
            elif isinstance(v, str):
                seeds.update(int(d) for d in re.findall(r"\d+", v))
                seeds.update(int(h, 16) for h in re.findall(r"[0-9a-fA-F]{16,}", v))
    return {s for s in seeds if s <= MAX_SEED}


def _first_test_draws(seed) -> np.ndarray:
    """The start of the random stream that draws the first test patient (its geometry comes first).

    Equal streams mean an identical first test slice and truth: comparing them is
    the cheap stand-in for rebuilding the slice (80 ms) for every candidate seed.
    """
    return patient_rng(seed, "test", 0).random(4)


def student_attack(out, true_seed) -> list:
    """Candidate seeds, from the public files alone, that regenerate the instructor's test truth.

    ``true_seed`` (from the private manifest) is only the oracle that checks a
    guess; the guesses use nothing else than the students' files.
    """
    target = _first_test_draws(true_seed)
    hits = [s for s in sorted(_candidate_seeds(out)) if np.array_equal(_first_test_draws(s), target)]
    truth = np.asarray(open_truth(out).y)
    x_test = np.asarray(open_split(out, "test", layout="course").x)
    # A stream match is confirmed on the real thing: the first test slice and its mask.
    return [s for s in hits if np.array_equal(simulate_case(s, "test", 0)[0], x_test[0])
            and np.array_equal(simulate_case(s, "test", 0)[1], truth[0])]


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    out = tmp_path_factory.mktemp("secret") / "competition"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReproducibleSeedWarning)  # no seed given: no warning
        write_synthetic_competition(out, n_train=1, n_test=1)
    return out, json.loads((out / PRIVATE_DIR / MANIFEST_FILE).read_text())


def test_default_seed_is_secret_and_only_under_private(secret):
    out, manifest = secret
    seed = manifest["seed"]
    assert manifest["seed_source"].startswith("secret") and 0 <= seed <= MAX_SEED
    assert seed.bit_length() > 64  # 128 random bits: below 2**64 with probability 2**-64
    names = {key for key, _ in _public_attributes(out)}
    assert not any("seed" in name for name in names)
    # Neither the seed nor its hexadecimal form appears in any byte of the students' files.
    for form in (str(seed), f"{seed:x}", f"{seed:X}"):
        for path in _public_files(out):
            assert form.encode() not in path.read_bytes(), (form, path)
    # Two runs without a seed differ.
    other = out.parent / "again"
    write_synthetic_competition(other, n_train=1, n_test=1)
    assert json.loads((other / PRIVATE_DIR / MANIFEST_FILE).read_text())["seed"] != seed
    assert (other / "test_data_x.dat").read_bytes() != (out / "test_data_x.dat").read_bytes()


def test_student_cannot_regenerate_the_truth(secret):
    out, manifest = secret
    assert student_attack(out, manifest["seed"]) == []


def test_student_attack_finds_a_small_explicit_seed(tmp_path):
    # The attack is real: on a cohort built with a small explicit seed it finds that seed.
    with pytest.warns(ReproducibleSeedWarning, match="regenerate the test truth"):
        write_synthetic_competition(tmp_path / "c", n_train=1, n_test=1, seed=4321)
    assert student_attack(tmp_path / "c", 4321) == [4321]


def test_volume_statistics_are_those_of_the_3d_brain():
    # The z-score uses the brain statistics of the whole (never built) 3D volume, estimated
    # on a coarse lattice: they must match a dense 4 mm sampling of that volume.
    from cohorts.synth import load_anatomy, patient_rng
    from cohorts.synth.patient import Patient

    grid = np.mgrid[-100:100:4.0, -120:120:4.0, -85:85:4.0].astype(np.float32).reshape(3, -1).T
    for i in range(2):
        patient = Patient.draw(patient_rng(SEED, "train", i), load_anatomy())
        mean, std = patient.volume_statistics(np.random.default_rng(i))
        raw, brain, _ = patient.render(grid)
        dense = raw[brain].astype(np.float64)
        dense_std = np.sqrt(dense.var(axis=0) + patient.contrast["noise"].astype(np.float64) ** 2)
        # Anything rendered in the volume but left out of volume_statistics (e.g. a mimic
        # that is not small) shifts the z-score away from the 3D brain's.
        shift = (mean - dense.mean(axis=0)) / dense_std
        assert np.abs(shift).max() < 0.03, f"patient {i}: mean off by {shift.round(3)} SD"
        assert np.abs(std / dense_std - 1).max() < 0.03, f"patient {i}: std ratio {(std / dense_std).round(3)}"


def test_oedema_is_faint_at_its_infiltrative_margin():
    # The oedema's density is low where the label's boundary lies and full deep inside:
    # border pixels are ambiguous alone, clear beside the brighter oedema.
    from cohorts.synth.lesion import draw_focus

    focus = draw_focus(np.random.default_rng(0), np.zeros(3), 20.0, high_grade=False)
    direction = np.linalg.solve(focus.shape, np.array([1.0, 0.0, 0.0]))  # r = 1 at t = 1
    q = (np.linspace(0, 1.5, 301)[:, None] * direction).astype(np.float32)
    wm = np.full(len(q), 0.5, dtype=np.float32)
    whole, _, _, density = focus.memberships(q, wm, margin=3.0)
    edge = np.abs(whole - 0.5) < 0.1
    assert edge.any() and density[edge].max() < 0.2
    assert density[whole > 0.99].min() > 0.9
    _, _, _, flat = focus.memberships(q, wm, margin=0.0)
    assert (flat[whole > 1e-3] == 1).all()


def test_data_synth_command_says_where_the_secret_seed_is_and_warns_on_an_explicit_one(tmp_path):
    from click.testing import CliRunner

    from brats_kit.cli import main as cli

    result = CliRunner().invoke(cli, ["data", "synth", "--out", str(tmp_path / "a"), "--train", "1", "--test", "1"])
    assert result.exit_code == 0, result.output
    assert "secret 128-bit seed" in result.stdout and "private/manifest.json" in result.stdout
    assert "warning" not in result.stderr
    manifest = json.loads((tmp_path / "a" / PRIVATE_DIR / MANIFEST_FILE).read_text())
    assert manifest["seed_source"].startswith("secret")
    result = CliRunner().invoke(
        cli, ["data", "synth", "--out", str(tmp_path / "b"), "--train", "1", "--test", "1", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "can regenerate the test truth" in result.stderr and "secret" not in result.stdout
    assert json.loads((tmp_path / "b" / PRIVATE_DIR / MANIFEST_FILE).read_text())["seed"] == 3


def test_plaques_are_oedema_like_patches_off_the_tumour_that_survive_an_opening():
    # Confluent white-matter lesions give the pixel classifiers contiguous false positives
    # (as the course's periventricular and blob-like mimics do): near the slice, outside
    # the label, bright on T2 and FLAIR like oedema, and wider than a 5 x 5-cross opening.
    from scipy import ndimage as ndi

    from cohorts.synth import load_anatomy
    from cohorts.synth.patient import PLANE_XY, Patient

    cross = ndi.iterate_structure(ndi.generate_binary_structure(2, 1), 2)
    counts, survived, crossed = [], 0, 0
    for i in range(8):
        patient = Patient.draw(patient_rng(SEED, "train", i), load_anatomy())
        counts.append(len(patient.mimics.plaque_centres))
        if not counts[-1]:
            continue
        p = np.empty((len(PLANE_XY), 3), dtype=np.float32)
        p[:, :2], p[:, 2] = PLANE_XY, patient.slice_z
        raw, brain, label = patient.render(p)
        plaque = (patient.mimics.plaques(patient.tumour.displace(patient.to_template(p))) > 0.5) & brain
        assert plaque.any(), f"patient {i}: its plaques miss the slice"
        assert not (plaque & label).any(), f"patient {i}: a plaque inside the tumour label"
        healthy = brain & ~label & ~plaque
        survived += ndi.binary_opening(plaque.reshape(240, 240), structure=cross).any()
        # Brighter than the healthy brain on T2 (which includes bright fluid) and clearly on FLAIR,
        # where the slice crosses a plaque's body (the elastic field and the tumour's push move
        # plaques by a few mm: a slice may only graze one, at half its contrast).
        body = (patient.mimics.plaques(patient.tumour.displace(patient.to_template(p))) > 0.9) & brain
        if body.sum() < 30:
            continue
        crossed += 1
        gap = np.median(raw[body, 2:], axis=0) - np.median(raw[healthy, 2:], axis=0)
        assert gap[0] > 0 and gap[1] > 0.3, f"patient {i}: T2, FLAIR above the healthy brain by {gap}"
    assert len(set(counts)) > 1, "the number of plaques must vary from patient to patient"
    assert survived >= 2 and crossed >= 2


def test_a_slice_away_from_the_tumour_stays_in_the_brain():
    # A large focus high (or low) in the brain: both ways out of it may leave the brain
    # (generator 3.1 then gave an empty slice, no brain at all). The offset stops at the
    # brain's limit instead, on the side that keeps the slice further from the focus.
    from cohorts.synth import load_anatomy
    from cohorts.synth.patient import AWAY_TEMPLATE_Z, Patient, _inside_brain, _template_z

    anatomy = load_anatomy()
    lo, hi = AWAY_TEMPLATE_Z
    for i in range(6):
        patient = Patient.draw(patient_rng(SEED, "train", i), anatomy, away=True)
        focus = patient.tumour.foci[0]
        centre_p = np.linalg.solve(patient.linear, focus.centre - anatomy.centre) + patient.shift
        for wanted in (-150.0, -80.0, 80.0, 150.0):  # far beyond the brain both ways
            offset = _inside_brain(wanted, centre_p, patient.linear, patient.shift, anatomy)
            z = _template_z(centre_p[2] + offset, centre_p, patient.linear, patient.shift, anatomy)
            assert lo < z < hi, f"patient {i}: offset {wanted} -> {offset:.1f} mm, template height {z:.1f}"
            assert abs(offset) > 20, f"patient {i}: the slice stays near the focus ({offset:.1f} mm)"
    # Every away slice of a cohort holds brain.
    for index in (207, 227, 247):  # seed 5's away slices (one in 20); 207 was empty in 3.1
        x, y, params = simulate_case(5, "train", index)
        assert params["slice_away_from_tumour"], "the test lost its away slices"
        assert foreground_mask(x).sum() > 2000
