"""Build the course's competition from a downloaded BraTS release (``brats-kit data prepare``).

>>> from cohorts.prepare import prepare_competition  # doctest: +SKIP
>>> summary = prepare_competition("MICCAI_BraTS_2018_Data_Training", "competition", seed=0)  # doctest: +SKIP

- :mod:`.sources`: recognise the release from its folder and file naming;
- :mod:`.volume`: orient, normalise and slice one patient;
- :mod:`.build`: stream the patients and write the competition.
"""
from .build import GENERATOR, NotEnoughCasesError, SkippedCaseWarning, prepare_competition
from .sources import SCHEMES, Case, Scheme, Source, find_source
from .volume import AXCODES, ORIENTATION, SLICE_RULES

__all__ = [
    "AXCODES",
    "GENERATOR",
    "ORIENTATION",
    "SCHEMES",
    "SLICE_RULES",
    "Case",
    "NotEnoughCasesError",
    "Scheme",
    "SkippedCaseWarning",
    "Source",
    "find_source",
    "prepare_competition",
]
