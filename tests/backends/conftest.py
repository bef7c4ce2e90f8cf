"""Fixtures shared by the backend leg: ONE throwaway PostgreSQL server per test session."""

from __future__ import annotations

import os

import pytest

from tests.backends.servers import PostgresServer, pg_bindir


def require(ok: bool, what: str):
    """Skip when ``what`` is not installed; in CI (``$CI``) fail instead."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing in CI (.ci/run installs it)")
        pytest.skip(f"{what} not installed")


@pytest.fixture(scope="session")
def pg_server():
    """A running :class:`PostgresServer` (initdb in a temporary folder, a free port)."""
    require(pg_bindir() is not None, "PostgreSQL (Debian: postgresql)")
    pytest.importorskip("psycopg")
    with PostgresServer() as pg:
        yield pg
