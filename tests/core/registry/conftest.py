"""Registry fixtures: every registry test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from the ``pgserver`` test dependency: a self-contained
PostgreSQL 16 started once per test session in a temp folder (no root, no
system package). Each test gets a fresh database on it, dropped afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest

import jupyter_resman as resman

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole test session."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        import pgserver

    # Its own folder under /tmp: as root, pgserver opens every parent folder of its
    # data dir to other users, which must not happen to pytest's private tmp tree.
    root = Path(tempfile.mkdtemp(prefix="resman-pg-"))
    server = pgserver.get_server(root / "data", cleanup_mode="stop")
    # No fsync in tests: durability is PostgreSQL's job (and benchmarks keep it on);
    # the lock and lost-update tests check isolation, which this does not change.
    # All three settings take effect on reload, so the server need not restart.
    server.psql("ALTER SYSTEM SET fsync = off;\nALTER SYSTEM SET synchronous_commit = off;\n"
                "ALTER SYSTEM SET full_page_writes = off;\nSELECT pg_reload_conf();")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _admin(server):
    import psycopg

    return psycopg.connect(server.get_uri(), autocommit=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy URL)."""
    name = f"resman_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    uri = pg_server.get_uri(name)
    yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    with _admin(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def registry_url(request, home):
    """``None`` (the SQLite file in the home) or a PostgreSQL URL: one run per backend."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture
def reg_session(home, registry_url):
    """An isolated Session whose registry uses the backend under test."""
    s = resman.Session(home=home, registry_url=registry_url)
    previous = resman.set_session(s)
    yield s
    resman.set_session(previous)
    s.close()


@pytest.fixture
def registry(reg_session):
    """The registry of ``reg_session``."""
    return reg_session.registry


@pytest.fixture
def backend(registry):
    return registry.backend
