"""Fixtures of the attack suite: the server tests' database fixture (``db``: SQLite, and PostgreSQL when installed)."""
from __future__ import annotations

from test_server import db, pg_cluster  # noqa: F401 - the same fixtures, so every attack runs on both databases
