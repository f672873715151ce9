"""A synthetic BraTS-like cohort: the kit's default data set, built from the MNI152 anatomy nilearn ships.

>>> from cohorts.synth import write_synthetic_competition  # doctest: +SKIP
>>> written = write_synthetic_competition("competition", n_train=256, n_test=29)  # secret seed  # doctest: +SKIP

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
