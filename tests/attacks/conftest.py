"""Fixtures of the attack suite: the database each attack runs against (SQLite, and PostgreSQL when installed)."""
from __future__ import annotations

import warnings

import pytest

from test_server_support import pg_cluster_or_reason


@pytest.fixture(scope="session")
def attack_pg_cluster():
    cluster, reason = pg_cluster_or_reason()
    if cluster is None:
        warnings.warn(reason, pytest.PytestWarning, stacklevel=1)
        pytest.skip(reason)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    """``None`` (SQLite) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("attack_pg_cluster").new_database()
