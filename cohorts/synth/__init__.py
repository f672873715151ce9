"""A synthetic BraTS-like cohort: the kit's default data set, built from the MNI152 anatomy nilearn ships.

>>> import tempfile
>>> from cohorts.synth import write_synthetic_competition
>>> out = tempfile.mkdtemp() + "/competition"
>>> written = write_synthetic_competition(out, n_train=2, n_test=1)   # the course has 256 + 29; secret seed
>>> sorted(name for name in written if not name.startswith("private/"))
['test.h5', 'test_data_x.dat', 'train.h5', 'train_data_x.dat', 'train_data_y.dat']

Modules: :mod:`.anatomy` (templates and derived maps), :mod:`.fields` (smooth
random fields), :mod:`.lesion` (tumours and mimics), :mod:`.patient` (one
simulated patient and its normalised slice), :mod:`.cohort` (the cohort and
its competition directory).
"""
from .anatomy import TEMPLATES, load_anatomy
from .cohort import (
    GENERATOR,
    GENERATOR_VERSION,
    MAX_SEED,
    ReproducibleSeedWarning,
    draw_secret_seed,
    patient_rng,
    simulate_case,
    synthesize,
    write_synthetic_competition,
)

__all__ = [
    "GENERATOR",
    "GENERATOR_VERSION",
    "MAX_SEED",
    "ReproducibleSeedWarning",
    "TEMPLATES",
    "draw_secret_seed",
    "load_anatomy",
    "patient_rng",
    "simulate_case",
    "synthesize",
    "write_synthetic_competition",
]
