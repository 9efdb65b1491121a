"""Storage: engine set-up, migrations on open, and damage that must never be "repaired"."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import multiprocessing
import os
import sqlite3
import stat

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import jupyter_resman as resman
from jupyter_resman.core.errors import ConfigError, RegistryCorruptError, RegistryError
from jupyter_resman.core.registry import Asset, Consumable, Registry
from jupyter_resman.core.registry.engine import MIGRATIONS_DIR
from jupyter_resman.core.registry.schema import HEAD, VERSION_TABLE, metadata

from . import _workers

SPAWN = multiprocessing.get_context("spawn")


def test_open_migrates_once_then_is_a_no_op(reg_session):
    registry = reg_session.registry
    assert registry.migrated
    again = Registry(reg_session)
    try:
        assert not again.migrated
        assert again.describe()["schema"] == HEAD
    finally:
        again.close()


def test_head_constant_is_the_newest_migration():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_schema_module_matches_the_migrations(registry):
    def diff(conn):
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return compare_metadata(context, metadata)

    assert registry._db.run(diff, write=False) == []


def test_version_table_records_head(registry):
    version = registry._db.run(
        lambda c: c.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar(),
        write=False)
    assert version == HEAD


def test_a_newer_schema_is_refused_and_left_alone(reg_session):
    registry = reg_session.registry
    registry.add(Asset(name="keep me"))
    registry._db.run(lambda c: c.execute(
        sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")))
    with pytest.raises(RegistryError, match="newer than this jupyter_resman"):
        Registry(reg_session)
    # Nothing was dropped or rebuilt.
    assert [r.name for r in registry.query()] == ["keep me"]


def test_tables_of_another_app_are_not_taken_over(home, registry_url):
    s = resman.Session(home=home, registry_url=registry_url)
    try:
        from jupyter_resman.core.registry.engine import RegistryDB

        url = registry_url or f"sqlite:///{s.home.registry_db}"
        other = RegistryDB(url)
        other.run(lambda c: c.exec_driver_sql("CREATE TABLE resources (x INTEGER)"))
        other.close()
        with pytest.raises(RegistryError, match="did not create"):
            s.registry  # noqa: B018
    finally:
        s.close()


def test_concurrent_first_opens_migrate_exactly_once(home, registry_url):
    start, queue = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=_workers.open_registry,
                           args=(str(home), registry_url, start, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(r[0] == "ok" for r in results), results
    assert sum(r[1] for r in results) == 1  # one process ran the migration
    with resman.Session(home=home, registry_url=registry_url) as s:
        assert s.registry.count() == 4


def test_sqlite_file_is_private_and_in_wal_mode(session):
    registry = session.registry
    path = session.home.registry_db
    assert registry.url == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    mode = registry._db.run(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                            write=False)
    assert mode == "wal"


def test_garbage_file_raises_corrupt_error_and_is_never_touched(home):
    home.mkdir(parents=True)
    path = home / "registry.sqlite"
    garbage = b"this is not a database, but it is someone's file\n" * 200
    path.write_bytes(garbage)
    for _ in range(2):  # every open fails the same way; nothing "repairs" it
        with resman.Session(home=home) as s:
            with pytest.raises(RegistryCorruptError) as info:
                s.registry  # noqa: B018
            assert str(path) in str(info.value)
            assert "never deleted or rebuilt" in str(info.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in home.iterdir() if p.name.startswith("registry")) == [
        "registry.sqlite"]


def test_damaged_pages_raise_corrupt_error_naming_the_file(home):
    with resman.Session(home=home) as s:
        for i in range(300):
            s.registry.add(Asset(name=f"sample {i}", attributes={"pad": "x" * 200}))
    path = home / "registry.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, page):  # keep the header page intact
        data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    damaged = bytes(data)
    with resman.Session(home=home) as s, \
            pytest.raises(RegistryCorruptError, match="registry.sqlite"):
        s.registry.query()
    assert path.read_bytes() == damaged


@pytest.mark.parametrize("url, message", [
    ("not a url", "not a database URL"),
    ("mysql://user@host/db", "supports sqlite and postgresql"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
])
def test_unusable_urls_are_config_errors(home, url, message):
    with resman.Session(home=home, registry_url=url) as s, \
            pytest.raises(ConfigError, match=message):
        s.registry  # noqa: B018


def test_environment_variable_selects_the_database(home, monkeypatch, tmp_path):
    target = tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("RESMAN_REGISTRY_URL", f"sqlite:///{target}")
    with resman.Session(home=home) as s:
        s.registry.add(Asset(name="x"))
        assert s.registry.url == str(target)
    assert target.exists()
    assert not (home / "registry.sqlite").exists()


def test_unreachable_postgres_is_a_clear_error(home, tmp_path):
    url = f"postgresql+psycopg://nobody:secret@/db?host={tmp_path}/no-such-socket-dir"
    with resman.Session(home=home, registry_url=url) as s, \
            pytest.raises(RegistryError, match="cannot reach the registry database") as info:
        s.registry  # noqa: B018
    assert "secret" not in str(info.value)


def test_password_never_shown():
    from jupyter_resman.core.registry.engine import RegistryDB

    db = RegistryDB("postgresql+psycopg://alice:hunter2@db.example/registry")
    assert "hunter2" not in db.where and "alice" in db.where


def test_connections_dropped_by_the_server_are_replaced(pg_url, home):
    import psycopg

    def kill_our_connections():
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
        assert killed >= 1

    with resman.Session(home=home, registry_url=pg_url) as s:
        registry = s.registry
        stock = registry.add(Consumable(name="stock", quantity=5))
        kill_our_connections()  # e.g. a server restart, or an idle timeout
        assert registry.get(stock).quantity == 5
        kill_our_connections()
        assert registry.decrease_quantity(stock, 1).quantity == 4
        assert len(registry.history(stock)) == 2  # the retried write happened exactly once


def test_close_is_idempotent_and_reopens_on_use(registry):
    item = registry.add(Consumable(name="x", quantity=3))
    registry.close()
    registry.close()
    assert registry.get(item).quantity == 3


@pytest.mark.parametrize("module", [
    "jupyter_resman.core.registry",
    "jupyter_resman.core.registry.resources",
    "jupyter_resman.core.registry.crud",
    "jupyter_resman.core.registry.containers",
    "jupyter_resman.core.registry.history",
    "jupyter_resman.core.registry.templates",
    "jupyter_resman.core.registry.datasets",
    "jupyter_resman.core.registry.registry",
])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
