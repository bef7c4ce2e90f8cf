"""Fixtures shared by the backend leg: ONE throwaway PostgreSQL server per test session."""

from __future__ import annotations

import pytest

from tests.backends.servers import PostgresServer, pg_bindir, require


@pytest.fixture(scope="session")
def pg_server():
    """A running :class:`PostgresServer` (initdb in a temporary folder, a free port)."""
    require(pg_bindir() is not None, "PostgreSQL (Debian: postgresql)")
    pytest.importorskip("psycopg")
    with PostgresServer() as pg:
        yield pg
