"""The manager: owners, release rules, leaks, health, metrics, the session and the live feed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

from jupyter_resman.core.errors import ConfigError, LeakWarning, ProviderError
from jupyter_resman.core.resources import (
    FactoryProvider,
    HealthReport,
    HealthStatus,
    PoolConfig,
    ResourceManager,
    current_owner,
    owner_scope,
    published,
    set_default_owner,
)


class Closable:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


@pytest.fixture
def default_owner():
    """Restore the process-wide default owner, whatever the test set."""
    previous = set_default_owner(None)
    yield
    set_default_owner(previous)


def test_owners_are_tracked_per_resource(manager):
    manager.register_provider("db", FactoryProvider(Closable), PoolConfig(max_size=5))
    a = manager.acquire("db", owner="cell-1")
    b = manager.acquire("db", owner="cell-1")
    c = manager.acquire("db", owner="cell-2")
    assert len({id(a), id(b), id(c)}) == 3  # every acquire gets its own resource
    assert manager.owners("db") == {"cell-1": 2, "cell-2": 1}
    assert manager.has_resource("db", "cell-2") and not manager.has_resource("db", "cell-9")
    assert [lease.owner for lease in manager.leases("db")] == ["cell-1", "cell-1", "cell-2"]
    manager.release("db", owner="cell-1")  # the one it took last
    assert manager.leases(owner="cell-1")[0].resource is a
    manager.release("db", resource=c)
    assert manager.owners("db") == {"cell-1": 1}
    with pytest.raises(ProviderError, match=r"cell-2 holds no 'db'.*cell-1 \(1"):
        manager.release("db", owner="cell-2")
    with pytest.raises(ProviderError, match="not a 'db' resource held by cell-2"):
        manager.release("db", owner="cell-2", resource=a)
    with pytest.raises(ProviderError, match=r"no resource provider named 'dbx' \(registered: 'db'\)"):
        manager.acquire("dbx")


def test_use_releases_even_when_the_block_raises(manager):
    manager.register_provider("db", FactoryProvider(Closable))
    with pytest.raises(ZeroDivisionError):
        with manager.use("db", owner="cell-1"):
            1 / 0
    assert manager.owners("db") == {}
    assert manager.metrics("db")["db"].releases == 1


def test_release_all_of_one_owner_or_of_everyone(manager):
    manager.register_provider("a", FactoryProvider(Closable))
    manager.register_provider("b", FactoryProvider(Closable))
    for owner in ("cell-1", "cell-1", "cell-2"):
        manager.acquire("a", owner=owner)
        manager.acquire("b", owner=owner)
    assert manager.release_all("cell-1") == 4
    assert manager.owners("a") == {"cell-2": 1} and manager.owners("b") == {"cell-2": 1}
    assert manager.release_all() == 2
    assert manager.leases() == []


def test_default_owner_scope_and_threads(manager, default_owner):
    manager.register_provider("r", FactoryProvider(object), PoolConfig(max_size=10))
    manager.acquire("r")
    assert manager.owners("r") == {"main": 1}
    set_default_owner("cell-4")  # what the notebook hook does before a cell
    manager.acquire("r")
    with owner_scope("step-a"):
        manager.acquire("r")
        from_thread = []
        thread = threading.Thread(target=lambda: from_thread.append(current_owner()))
        thread.start()
        thread.join()
    assert from_thread == ["cell-4"]  # threads a cell starts are charged to the cell
    set_default_owner(None)
    named = []
    worker = threading.Thread(target=lambda: named.append(current_owner()), name="loader")
    worker.start()
    worker.join()
    assert named == ["thread:loader"]
    assert manager.owners("r") == {"main": 1, "cell-4": 1, "step-a": 1}
    assert manager.leaks("cell-4")[0].where.rsplit(":", 1)[0] == __file__  # this test's line


def test_leaks_are_warned_once_each_and_logged(manager, caplog):
    manager.register_provider("db", FactoryProvider(Closable))
    manager.register_provider("api", FactoryProvider(Closable))
    manager.acquire("db", owner="cell-7")
    manager.acquire("api", owner="cell-7")
    manager.acquire("db", owner="cell-8")
    with pytest.warns(LeakWarning) as caught:
        with caplog.at_level(logging.WARNING, logger="jupyter_resman.resources"):
            reported = manager.check_leaks("cell-7")
    assert [lease.name for lease in reported] == ["db", "api"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert all("cell-7" in m and "test_manager.py:" in m for m in messages)
    assert "'db'" in messages[0] and "'api'" in messages[1]
    assert sum("resource leak" in r.getMessage() for r in caplog.records) == 2
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert manager.check_leaks("cell-7") == []
    assert again == []  # reported once, not after every later cell
    assert manager.owners("db") == {"cell-7": 1, "cell-8": 1}  # still held: maybe on purpose
    manager.release("db", owner="cell-7")
    manager.release("api", owner="cell-7")
    with warnings.catch_warnings(record=True) as none_left:
        warnings.simplefilter("always")
        manager.check_leaks("cell-7")
    assert none_left == []


def test_health_of_every_provider_never_raises(manager, caplog):
    def broken():
        raise ConnectionError("refused")

    manager.register_provider("ok", FactoryProvider(object))
    manager.register_provider("raises", FactoryProvider(object, health=broken))
    manager.register_provider("false", FactoryProvider(object, health=lambda: False))
    manager.register_provider("cannot-make", FactoryProvider(broken), PoolConfig(min_size=0))
    with caplog.at_level(logging.WARNING, logger="jupyter_resman.resources"):
        reports = manager.health()
    assert reports["ok"].status is HealthStatus.HEALTHY
    assert reports["raises"].status is HealthStatus.UNHEALTHY
    assert "ConnectionError: refused" in reports["raises"].message
    assert reports["false"].status is HealthStatus.UNHEALTHY
    assert "cannot acquire" in reports["cannot-make"].message
    assert manager.last_health("raises") is reports["raises"]
    assert {"raises", "false", "cannot-make"} == {
        r.getMessage().split("'")[1] for r in caplog.records if "is unhealthy" in r.getMessage()}
    assert manager.health("ok")["ok"].healthy


def test_metrics_count_acquisitions_failures_and_times(manager):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("first try fails")
        return Closable()

    manager.register_provider("svc", flaky, PoolConfig(max_size=2))
    with pytest.raises(ProviderError):
        manager.acquire("svc", owner="x")
    with manager.use("svc", owner="x"):
        threading.Event().wait(0.05)
    m = manager.metrics()["svc"]
    assert (m.acquisitions, m.failures, m.releases, m.active, m.idle) == (1, 1, 1, 0, 1)
    assert m.avg_hold_s >= 0.05 and m.max_hold_s >= 0.05 and m.avg_acquire_s > 0
    assert m.kind == "factory" and m.target.endswith("flaky")
    assert json.loads(json.dumps(m.to_dict()))["acquisitions"] == 1


def test_registration_rules(manager):
    first = Closable()
    provider = FactoryProvider(object, dispose=lambda r: None)
    provider.close = first.close
    manager.register_provider("db", provider)
    with pytest.raises(ProviderError, match="already registered"):
        manager.register_provider("db", FactoryProvider(object))
    manager.register_provider("db", FactoryProvider(list), replace=True)
    assert first.closed  # the replaced provider was closed
    assert manager.provider("db").target == "list"
    for bad in ("", " db", "a\nb", "x" * 101, 42):
        with pytest.raises(ConfigError):
            manager.register_provider(bad, FactoryProvider(object))
    with pytest.raises(TypeError, match="needs a provider"):
        manager.register_provider("n", 42)
    assert manager.names == ["db"] and "db" in manager and len(manager) == 1


def test_unregister_releases_holders_and_closes_the_provider(manager):
    closed = []
    provider = FactoryProvider(Closable)
    provider.close = lambda: closed.append(True)
    manager.register_provider("db", provider)
    held = manager.acquire("db", owner="cell-1")
    manager.unregister("db")
    assert held.closed and closed == [True] and "db" not in manager
    with pytest.raises(ProviderError, match="no resource provider named 'db'"):
        manager.owners("db")


def test_close_releases_everything_and_refuses_later_use():
    manager = ResourceManager()
    manager.register_provider("db", FactoryProvider(Closable))
    held = [manager.acquire("db", owner=f"cell-{i}") for i in range(3)]
    manager.close()
    manager.close()  # idempotent
    assert all(resource.closed for resource in held)
    with pytest.raises(ProviderError, match="closed"):
        manager.acquire("db")
    with pytest.raises(ProviderError, match="closed"):
        manager.register_provider("x", FactoryProvider(object))


def test_health_reports_round_trip():
    report = HealthReport.ok("fine", latency_s=0.01, version="3")
    again = HealthReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.healthy


# -- the session and the live feed ---------------------------------------------------

READ_FEED = textwrap.dedent("""
    import json, sys
    import jupyter_resman as resman
    from jupyter_resman.core.resources import published
    with resman.Session(home=sys.argv[1]) as s:
        print(json.dumps({str(pid): snap for pid, snap in published(s.live).items()}))
""")


def read_feed_elsewhere(home):
    out = subprocess.run([sys.executable, "-c", READ_FEED, str(home)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {int(pid): snap for pid, snap in json.loads(out.stdout).items()}


def test_session_resources_are_published_for_other_processes(session, monkeypatch):
    import os

    # Acquire/release publish at most this often; make "too soon" certain on a slow machine.
    monkeypatch.setattr("jupyter_resman.core.resources.feed.PUBLISH_EVERY_S", 3600.0)

    resources = session.resources
    assert isinstance(resources, ResourceManager) and session.resources is resources
    held = Closable()
    resources.register_provider("db", FactoryProvider(lambda: held), PoolConfig(max_size=3))
    resources.acquire("db", owner="cell-12")
    resources.health()  # publishes at once, with the health it found
    feed = read_feed_elsewhere(session.home.root)
    mine = feed[os.getpid()]["providers"]["db"]
    assert mine["health"]["status"] == "healthy" and mine["pool"]["max_size"] == 3
    assert [lease["owner"] for lease in mine["leases"]] == ["cell-12"]
    assert mine["metrics"]["active"] == 1
    assert published(session.live, include_self=False) == {}
    resources.release("db", owner="cell-12")  # too soon to publish on its own...
    assert read_feed_elsewhere(session.home.root)[os.getpid()]["providers"]["db"]["leases"]
    resources.check_leaks("cell-12")  # ...but the end-of-cell check catches the feed up
    assert read_feed_elsewhere(session.home.root)[os.getpid()]["providers"]["db"]["leases"] == []
    resources.acquire("db", owner="cell-13")
    session.close()
    assert held.closed  # released and disposed of when the session closed
    assert os.getpid() not in read_feed_elsewhere(session.home.root)  # the feed was cleared
