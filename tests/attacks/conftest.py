"""The attack suite (issue 20): hostile students and careless instructors, kept apart (``pytest tests/attacks``).

Its tests reuse the server tests' helpers (``tests/test_server_support.py``) and fixtures
(``tests/conftest.py``: the tiny competition, the shared scorer, the ``db`` of each backend).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test_server_support, beside tests/conftest.py

from data_spec import load_truth  # noqa: E402
from data_spec.submission import write_submission  # noqa: E402
from test_server_support import shifted  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, competition):
    truth = load_truth(competition / "private")
    d = tmp_path_factory.mktemp("attack-subs")
    out = {"truth": truth}
    for name, shift in (("good", 3), ("other", 5)):
        write_submission(d / f"{name}.npy", shifted(truth.y, shift))
        out[name] = d / f"{name}.npy"
    return out
