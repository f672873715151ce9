"""The synthetic cohort: many simulated patients, one slice each, written as a competition."""
from __future__ import annotations

import secrets
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from plumbing.progress import no_progress

from data_spec.background import foreground_mask
from data_spec.constants import HIDDEN, SPLITS, TEST, TRAIN, X_DTYPE, X_ITEM_SHAPE, Y_DTYPE, Y_ITEM_SHAPE, case_ids, public_mask
from data_spec.constants import hidden_public_mask
from data_spec.errors import KitError
from data_spec.layout import check_competition_out, write_competition
from data_spec.ranking_record import RANKING_KEY
from . import patient as _patient
from .anatomy import TEMPLATE_FUNCTIONS, TEMPLATES, load_anatomy
from .patient import Patient

GENERATOR = "cohorts.synth"
#: Bumped whenever the same seed would give different data.
GENERATOR_VERSION = "3.2"
#: One patient in this many has its slice away from the tumour (tumour-free, as a few
#: course slices are). Exactly one per block of consecutive patients: a random
#: share would make small test sets swing (each empty slice moves mean Dice by 1/N).
AWAY_EVERY = 20
#: Bits of the secret seed drawn from the operating system when none is given.
SECRET_SEED_BITS = 128
#: Explicit seeds go up to the size of a secret one (they are only ever written under private/).
MAX_SEED = 2**SECRET_SEED_BITS - 1


class ReproducibleSeedWarning(UserWarning):
    """An explicit seed: anyone holding the kit and the seed can regenerate the test truth."""


def _check_args(n_train, n_test, seed, n_hidden=0):
    for name, n, low in (("n_train", n_train, 1), ("n_test", n_test, 1), ("n_hidden", n_hidden, 0)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < low:
            raise KitError(f"{name} must be an integer of at least {low}, got {n!r}", code="bad_argument")
    if seed is None:
        return
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise KitError(
            f"seed must be an integer from 0 to 2**{SECRET_SEED_BITS} - 1, got {seed!r}", code="bad_argument",
            hint="omit the seed to draw a secret one",
        )


def draw_secret_seed() -> int:
    """A fresh seed of :data:`SECRET_SEED_BITS` bits from the operating system's CSPRNG."""
    return secrets.randbits(SECRET_SEED_BITS)


#: The random stream of each split: train and test as they always were, the hidden slices their own.
STREAMS = {**{split: i for i, split in enumerate(SPLITS)}, HIDDEN: len(SPLITS)}


def patient_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one patient: from (seed, split, index) only.

    A patient is therefore the same whatever the size of the cohort it is part of.
    """
    return np.random.default_rng([int(seed), STREAMS[split], int(index)])



def simulate_case(seed: int, split: str, index: int):
    """Simulate one patient and return its slice.

    Returns
    -------
    x : ndarray float32 (240, 240, 4)
        Normalised like the course data (z-score over the 3D brain, background at
        the slice minimum of each modality).
    y : ndarray uint8 (240, 240)
        Whole-tumour mask.
    params : dict
        The patient's simulation parameters (for the private manifest).
    """
    rng = patient_rng(seed, split, index)
    phase = np.random.default_rng([int(seed), STREAMS[split]]).integers(AWAY_EVERY)
    # The matrix products here are tiny (n x 3 by 3 x k): threaded BLAS only adds
    # overhead (twice the time per slice, worse on a busy machine).
    with threadpool_limits(1, user_api="blas"):
        case = Patient.draw(rng, load_anatomy(), away=(index + phase) % AWAY_EVERY == 0)
        x, y = case.slice(rng)
    params = dict(case.params)
    params["tumour_pixels"] = int(y.sum())
    params["brain_pixels"] = int(foreground_mask(x).sum())
    return x, y, params


def _parameters() -> dict:
    """The simulation's fixed parameters, for the manifest."""
    tables = (
        "GM", "CSF", "OEDEMA", "ENHANCING", "NECROSIS", "NONENHANCING", "HALO", "WMH", "PLAQUE", "VESSEL", "CHOROID",
        "NOISE",
    )
    out = {name.lower(): np.round(getattr(_patient, name).astype(np.float64), 4).tolist() for name in tables}
    out["intensity_units"] = "healthy white matter = 1 in every modality, (t1, t1ce, t2, flair)"
    out["healthy_t1_t1ce"] = (
        "the T1 template (white matter = 1) to a per-patient power; the gm and csf rows apply to t2 and flair"
    )
    out["band_look"] = (
        f"thin bands: white matter + oedema's look (without the patient's oedema gain) x {_patient.BAND[0]}-{_patient.BAND[1]}"
    )
    out["oedema_margin"] = (
        f"over its outer {_patient.MARGIN_MM[0]}-{_patient.MARGIN_MM[1]} mm the oedema's contrast falls to "
        f"{_patient.FAINT[0]}-{_patient.FAINT[1]} of its full value (infiltrative margin)"
    )
    out["plaques"] = (
        "confluent white-matter lesions with oedema's look, centred within half their radius of the slice "
        "and away from the tumour: large enough to survive a 5 x 5-cross opening"
    )
    out["slice_away_from_tumour"] = f"one patient in {AWAY_EVERY}"
    from . import lesion as _lesion

    out["ranges"] = {
        "head_scale": list(_patient.HEAD_SCALE),
        "oedema_gain": list(_patient.OEDEMA_GAIN),
        "heterogeneity": list(_patient.HETEROGENEITY),
        "noise_gain": list(_patient.NOISE_GAIN),
        "tumour_radius_mm": list(_lesion.RADIUS_MM),
        "tumour_radius_law": f"log-normal, centred on the range's geometric mean, log sd {_lesion.RADIUS_LOG_SD}, "
                             "truncated to the range",
        "slice_offset_from_tumour_centre": f"uniform, within {_patient.SLICE_OFFSET} of the main focus's radius",
        "band_look": list(_patient.BAND),
        "multifocal_share": _lesion.MULTIFOCAL,
        "white_matter_hyperintensities_mean": _lesion.WMH_COUNT,
        "plaques_mean": _lesion.PLAQUE_COUNT,
        "plaques_max": _lesion.PLAQUE_MAX,
        "plaque_radius_mm": list(_lesion.PLAQUE_RADIUS_MM),
        "plaque_gain": list(_patient.PLAQUE_GAIN),
        "oedema_margin_mm": list(_patient.MARGIN_MM),
        "oedema_margin_faint": list(_patient.FAINT),
    }
    out["background"] = "raw signal 0 (tissue is at least MIN_SIGNAL), z-scored with the brain: each modality's slice minimum"
    out["volume_statistics"] = f"coarse lattice over the head, {_patient.STATS_SPACING:g} mm spacing"
    return out


def synthesize(n_train: int = 256, n_test: int = 29, seed: int | None = None, progress=no_progress,
               n_hidden: int = 0) -> dict:
    """Build the synthetic BraTS-like cohort in memory.

    Each case is one axial slice of its own simulated patient: MNI152 anatomy
    under a random affine and elastic deformation, a glioma (oedema, enhancing
    rim, necrosis; sometimes multifocal; some low grade), lesion mimics,
    per-modality contrast, bias field and noise.

    Parameters
    ----------
    n_train, n_test : int
        Number of training and test slices (patients).
    seed : int or None
        None (the default) draws a secret 128-bit seed from the operating
        system (:func:`draw_secret_seed`). An integer from 0 to 2**128 - 1
        gives the same arrays, byte for byte; patient ``i`` of a split depends
        only on ``(seed, split, i)``. Either way the seed is returned only in
        the private ``manifest``, never in ``attrs``.
    progress : callable
        Wraps the loop over cases (see :mod:`plumbing.progress`).
    n_hidden : int
        Hidden test slices for the code track (inputs and truth, private; 0: none,
        and everything else byte-identical to a build without them).

    Returns
    -------
    dict
        ``train``: ``x``, ``y``, ``case_id``; ``test``: the same and
        ``public``; ``hidden`` (when ``n_hidden``): the same as ``test``; ``attrs`` (HDF5 provenance written into the students'
        files: nothing in it depends on the seed); ``manifest`` (the seed, its
        source, parameters and per-case simulation parameters: private).
    """
    _check_args(n_train, n_test, seed, n_hidden)
    seed_source = "explicit" if seed is not None else f"secret: {SECRET_SEED_BITS} bits from the operating system"
    seed = draw_secret_seed() if seed is None else int(seed)
    import nilearn

    load_anatomy()
    sizes = {TRAIN: n_train, TEST: n_test, **({HIDDEN: n_hidden} if n_hidden else {})}
    data = {
        split: {
            "x": np.empty((n,) + X_ITEM_SHAPE, dtype=X_DTYPE),
            "y": np.empty((n,) + Y_ITEM_SHAPE, dtype=Y_DTYPE),
            "case_id": case_ids(split, n),
        }
        for split, n in sizes.items()
    }
    data[TEST]["public"] = public_mask(n_test, seed)
    if n_hidden:
        data[HIDDEN]["public"] = hidden_public_mask(n_hidden, seed)
    cases = {}
    jobs = [(split, i) for split in sizes for i in range(sizes[split])]
    for split, i in progress(jobs, label="simulating patients", length=len(jobs)):
        x, y, params = simulate_case(seed, split, i)
        data[split]["x"][i] = x
        data[split]["y"][i] = y
        if split != TRAIN:
            params["public"] = bool(data[split]["public"][i])
        cases[str(data[split]["case_id"][i])] = params
    # Public provenance: what built the data, never the seed nor anything drawn from it
    # (a student holding the kit and the seed regenerates the test truth).
    attrs = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "templates": TEMPLATES,
        "nilearn_version": nilearn.__version__,
    }
    manifest = {
        **attrs,
        "seed": seed,
        "seed_source": seed_source,
        "template_functions": list(TEMPLATE_FUNCTIONS),
        "n_train": n_train,
        "n_test": n_test,
        "parameters": _parameters(),
        "cases": cases,
    }
    out = {"train": data[TRAIN], "test": data[TEST], "attrs": attrs, "manifest": manifest}
    if n_hidden:
        manifest["n_hidden"] = n_hidden
        out["hidden"] = data[HIDDEN]
    return out


def write_synthetic_competition(out, n_train: int = 256, n_test: int = 29, seed: int | None = None, progress=no_progress,
                                force: bool = False, n_hidden: int = 0, ranking: str | None = None) -> dict:
    """Build the synthetic cohort and write it as a competition directory (both layouts).

    Everything is simulated in memory first, then written file by file
    atomically: student files in ``out``, test truth and manifest under
    ``out/private/``.

    Without ``seed`` a secret 128-bit seed is drawn from the operating system
    and recorded only in ``out/private/manifest.json``: the students' files
    carry no seed, so nobody can regenerate the test truth. An explicit seed
    reproduces the files byte for byte and emits a
    :class:`ReproducibleSeedWarning`: students holding the kit and that seed
    could rebuild the truth (use it for tests and benchmarks, not for a class).

    ``n_hidden`` hidden test slices (the code track's) go, inputs and truth, to
    ``out/private/hidden_test.h5`` only.

    ``out`` must not hold a competition already, unless ``force``
    (:func:`data_spec.layout.check_competition_out`, checked before simulating).

    ``ranking`` (a score name the leaderboard accepts, checked by the command) is recorded in
    the private manifest (:mod:`data_spec.ranking_record`); without it the board ranks by Dice.

    Returns
    -------
    dict
        Relative file name -> Path of every file written.
    """
    check_competition_out(out, force=force)
    if seed is not None:
        warnings.warn(
            f"seed {seed} given: anyone with brats-kit and this seed can regenerate the test truth; "
            "omit the seed for a competition students take part in",
            ReproducibleSeedWarning,
            stacklevel=2,
        )
    data = synthesize(n_train=n_train, n_test=n_test, seed=seed, progress=progress, n_hidden=n_hidden)
    if ranking is not None:
        data["manifest"][RANKING_KEY] = ranking
    return write_competition(
        out, train=data["train"], test=data["test"], attrs=data["attrs"], manifest=data["manifest"], force=force,
        hidden=data.get("hidden"),
    )
