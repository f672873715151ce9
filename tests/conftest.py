"""Shared fixtures: small data the tests build themselves."""
from __future__ import annotations

import numpy as np
import pytest

from data_spec import X_ITEM_SHAPE, case_ids, public_mask, write_competition


def make_slices(n: int, seed: int = 0, tumour: bool = True):
    """``n`` small fake slices: a disc of brain on a background at the minimum, a blob of tumour."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:240, :240]
    x = np.empty((n,) + X_ITEM_SHAPE, dtype=np.float32)
    y = np.zeros((n, 240, 240), dtype=np.uint8)
    for i in range(n):
        brain = (rows - 120) ** 2 + (cols - 120) ** 2 < (70 + 5 * i % 30) ** 2
        xi = rng.normal(size=X_ITEM_SHAPE).astype(np.float32)
        if tumour and i % 4 != 3:  # every fourth slice is tumour-free
            cy, cx = 100 + 7 * i % 40, 110 + 11 * i % 30
            blob = ((rows - cy) ** 2 + (cols - cx) ** 2 < (8 + i % 12) ** 2) & brain
            y[i][blob] = 1
            xi[blob, 3] += 2.5
            xi[blob, 2] += 1.5
        for m in range(4):
            floor = xi[..., m][brain].min() - 1.0
            xi[..., m][~brain] = floor
        x[i] = xi
    return x, y


@pytest.fixture(scope="session")
def competition(tmp_path_factory):
    """A tiny competition directory in both layouts: 12 train, 6 test slices."""
    out = tmp_path_factory.mktemp("competition")
    xtr, ytr = make_slices(12, seed=1)
    xte, yte = make_slices(6, seed=2)
    write_competition(
        out,
        train={"x": xtr, "y": ytr, "case_id": case_ids("train", 12)},
        test={"x": xte, "y": yte, "case_id": case_ids("test", 6), "public": public_mask(6, 0)},
        attrs={"generator": "tests.conftest", "seed": 0},
        manifest={"generator": "tests.conftest"},
    )
    return out


@pytest.fixture(scope="session")
def scorer(competition):
    """The isolated scoring workers of the server tests (two: the concurrency tests score in parallel)."""
    from grader.isolation import IsolatedScorer

    with IsolatedScorer(competition / "private", workers=2, timeout=30) as s:
        yield s


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster for the tests that run on both backends (skipped, with a warning, without one)."""
    import warnings

    from test_server_support import pg_cluster_or_reason

    cluster, reason = pg_cluster_or_reason()
    if cluster is None:
        # A warning is in pytest's summary by default (a skip reason only with -rs): never silent.
        warnings.warn(reason, pytest.PytestWarning, stacklevel=1)
        pytest.skip(reason)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    """A course database on each backend (None: the course's own SQLite file)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    """A class of 6 teams on 12 test cases (some files invalid, a manifest, 2 baselines), one per test module."""
    from cohorts.classroom import make_class

    root = tmp_path_factory.mktemp("small-class")
    c = make_class(root, n_teams=6, n_cases=12, private_harder=True)
    c["root"] = root
    return c
