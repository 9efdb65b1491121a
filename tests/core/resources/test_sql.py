"""The SQL provider on a real SQLite file through SQLAlchemy."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from jupyter_resman.core.errors import ProviderError
from jupyter_resman.core.resources import HealthStatus, PoolConfig, SQLProvider


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE runs (id INTEGER PRIMARY KEY, worker INTEGER)")
    engine.dispose()
    return url


def test_eight_threads_write_through_a_pool_of_three(manager, db_url):
    manager.register_provider("db", SQLProvider(db_url), PoolConfig(max_size=3,
                                                                    acquire_timeout=60))
    errors = []

    def worker(i):
        try:
            for _ in range(20):
                with manager.use("db", owner=f"worker-{i}") as conn:
                    conn.exec_driver_sql("INSERT INTO runs (worker) VALUES (?)", (i,))
                    conn.commit()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with manager.use("db", owner="check") as conn:
        rows = conn.exec_driver_sql("SELECT worker, count(*) FROM runs GROUP BY worker").all()
    assert sorted(rows) == [(i, 20) for i in range(8)]
    m = manager.metrics("db")["db"]
    assert m.created <= 3 and m.peak_active <= 3 and m.acquisitions == 161
    # Our idle connections are what SQLAlchemy's pool sees checked out.
    assert m.provider["checkedout"] == m.idle


def test_a_returned_connection_has_its_transaction_rolled_back(manager, db_url):
    manager.register_provider("db", SQLProvider(db_url), PoolConfig(max_size=1))
    conn = manager.acquire("db", owner="cell-1")
    conn.exec_driver_sql("INSERT INTO runs (worker) VALUES (99)")  # never committed
    manager.release("db", owner="cell-1")
    again = manager.acquire("db", owner="cell-2")
    assert again is conn and not again.in_transaction()
    assert again.exec_driver_sql("SELECT count(*) FROM runs").scalar() == 0
    again.rollback()
    manager.release("db", owner="cell-2")


def test_a_broken_connection_is_replaced_on_acquire(manager, db_url):
    manager.register_provider("db", SQLProvider(db_url), PoolConfig(max_size=1))
    conn = manager.acquire("db", owner="cell-1")
    conn.invalidate()  # what SQLAlchemy does when the server dropped the connection
    manager.release("db", owner="cell-1")
    fresh = manager.acquire("db", owner="cell-1")
    assert fresh is not conn and fresh.exec_driver_sql("SELECT 1").scalar() == 1
    assert manager.metrics("db")["db"].invalidated == 1
    manager.release("db", owner="cell-1")


def test_health_of_a_real_and_an_unreachable_database(manager, db_url, tmp_path):
    manager.register_provider("db", SQLProvider(db_url))
    nowhere = f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}"
    manager.register_provider("gone", SQLProvider(nowhere))
    reports = manager.health()
    assert reports["db"].status is HealthStatus.HEALTHY
    assert reports["db"].details["dialect"] == "sqlite"
    assert reports["gone"].status is HealthStatus.UNHEALTHY
    assert "unable to open database file" in reports["gone"].message
    with pytest.raises(ProviderError, match="could not make the first 1"):
        manager.register_provider("gone-now", SQLProvider(nowhere), PoolConfig(min_size=1))


def test_credentials_never_show_and_bad_urls_say_so(manager):
    provider = SQLProvider("postgresql+psycopg://lab:s3cret@127.0.0.1:1/lab",
                           engine_options={"connect_args": {"connect_timeout": 2}})
    assert "s3cret" not in provider.target and "***" in provider.target
    manager.register_provider("pg", provider)
    report = manager.health("pg")["pg"]
    assert report.status is HealthStatus.UNHEALTHY and "s3cret" not in report.message
    assert "s3cret" not in repr(manager.snapshot())
    with pytest.raises(ProviderError, match="cannot build a SQLAlchemy engine"):
        SQLProvider("not a url at all")
    with pytest.raises(TypeError):
        SQLProvider(sa.create_engine("sqlite://"), engine_options={"echo": True})


def test_an_engine_passed_in_stays_open(db_url):
    engine = sa.create_engine(db_url)
    provider = SQLProvider(engine)
    conn = provider.acquire()
    provider.release(conn)
    provider.close()
    with engine.connect() as again:  # still usable: the provider did not dispose of it
        assert again.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
