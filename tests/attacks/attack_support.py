"""Helpers of the attack suite (no test here): signing in through the pages' own forms, the files handed in.

The suite (issue 20: hostile students and careless instructors) is kept apart: ``pytest tests/attacks``
runs it alone. It reuses the server tests' helpers (``tests/test_server_support.py``) and fixtures
(``tests/conftest.py``: the tiny competition, the shared scorer, the ``db`` of each backend). A test
module imports :func:`files` from here (a second ``conftest.py`` would clash with the first under
``--doctest-modules``).
"""
from __future__ import annotations

import html
import re

import pytest

from data_spec import load_truth
from data_spec.submission import write_submission
from test_server_support import shifted

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page) -> str:
    return html.unescape(CSRF.search(page.text).group(1))


def sign_in(client, token, role="team"):
    csrf = csrf_of(client.get("/"))
    return client.post("/signin", data={"csrf": csrf, "token": token, "role": role}, follow_redirects=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory, competition):
    """Two valid submissions of different Dice (``good``, ``other``) and the truth."""
    truth = load_truth(competition / "private")
    d = tmp_path_factory.mktemp("attack-subs")
    out = {"truth": truth}
    for name, shift in (("good", 3), ("other", 5)):
        write_submission(d / f"{name}.npy", shifted(truth.y, shift))
        out[name] = d / f"{name}.npy"
    return out
