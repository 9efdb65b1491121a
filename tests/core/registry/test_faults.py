"""Faults 19-22 of RELIABILITY.md, with real processes, on SQLite and PostgreSQL.

19. Several processes read-modify-write -> no lost update; a blocked writer
    waits a bounded time and gets LockTimeout, never an instant "locked".
20. A lock holder is SIGKILLed, or a lock row is garbage -> the next process
    gets the lock once it expires, without cleanup.
21. A's lease expires and B takes the lock -> A's release does not free B's
    lock; A's late write is refused (fencing).
22. A process forks with a connection open -> the child opens its own.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
import sqlalchemy as sa

from jupyter_resman.core.errors import LockTimeout, StaleLockError
from jupyter_resman.core.registry import Asset, Consumable
from jupyter_resman.core.registry.schema import locks as locks_table

from . import _workers

SPAWN = multiprocessing.get_context("spawn")


def _results(queue, n, timeout=120):
    out = [queue.get(timeout=timeout) for _ in range(n)]
    errors = [r for r in out if r[0] != "ok"]
    assert not errors, errors
    return [r[1] for r in out]


def _join(procs):
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"


# -- 19: read-modify-write ------------------------------------------------------------


def test_four_processes_decrease_one_consumable_lose_nothing(registry, home, registry_url):
    stock = registry.add(Consumable(name="tips", quantity=10_000, unit="tips"))
    queue = SPAWN.Queue()
    procs = [SPAWN.Process(target=_workers.decrement,
                           args=(str(home), registry_url, stock.id, 500, queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    assert _results(queue, 4) == [500] * 4
    _join(procs)
    assert registry.get(stock).quantity == 10_000 - 2_000
    updates = registry.history(stock, change_type="updated")
    assert len(updates) == 2_000
    # Every decrement saw the previous one: versions form one unbroken chain.
    assert sorted(e.version for e in updates) == list(range(2, 2_002))


def test_lock_protected_read_then_write_from_four_processes(registry, home, registry_url):
    counter = registry.add(Asset(name="counter", attributes={"counter": 0}))
    stock = registry.add(Consumable(name="stock", quantity=0))
    queue = SPAWN.Queue()
    procs = [SPAWN.Process(target=_workers.locked_increment,
                           args=(str(home), registry_url, [counter.id, stock.id], 25, queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    _results(queue, 4)
    _join(procs)
    assert registry.get(counter).attributes["counter"] == 100
    assert registry.get(stock).quantity == 100
    assert registry.locks() == []


def test_blocked_writer_waits_then_raises_lock_timeout(reg_session, home, registry_url):
    from jupyter_resman.core.registry import Registry

    stock = reg_session.registry.add(Consumable(name="buffer", quantity=10))
    impatient = Registry(reg_session, busy_timeout=0.5)
    try:
        ready, release, queue = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        holder = SPAWN.Process(target=_workers.hold_write_lock,
                               args=(str(home), registry_url, stock.id, ready, release, queue))
        holder.start()
        assert ready.wait(60)
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="locked by another"):
            impatient.decrease_quantity(stock, 1)
        waited = time.monotonic() - started
        release.set()
        assert _results(queue, 1) == ["released"]
        _join([holder])
        # It waited for the holder (not an instant "database is locked")...
        assert waited >= 0.4
        # ...and once the holder is gone the same write goes through.
        assert impatient.decrease_quantity(stock, 1).quantity == 9
    finally:
        impatient.close()


# -- 20: dead holders and garbage lock rows -------------------------------------------


def test_lock_of_a_killed_holder_is_taken_after_expiry(registry, home, registry_url):
    plate = registry.add(Asset(name="plate"))
    queue = SPAWN.Queue()
    holder = SPAWN.Process(target=_workers.hold_lease_forever,
                           args=(str(home), registry_url, plate.id, 1.5, queue))
    holder.start()
    _results(queue, 1)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert holder.exitcode == -signal.SIGKILL
    # The lease outlives its holder until it expires...
    assert registry.is_locked(plate)
    with pytest.raises(LockTimeout, match="doomed kernel"):
        registry.acquire_lock(plate, duration=5)
    # ...then the next process simply takes it: no cleanup step anywhere.
    lease = registry.acquire_lock(plate, duration=5, wait=10, owner="survivor")
    assert registry.lock_info(plate).owner == "survivor"
    assert lease.fences[plate.id] == 2
    assert registry.release_lock(lease)


@pytest.mark.parametrize("garbage", [
    {"token": "t", "owner": "x", "acquired_at": 0.0, "expires_at": 1e300},  # lease of ages
    {"token": "t", "owner": "x", "acquired_at": None, "expires_at": None},
    {"token": None, "owner": "x", "acquired_at": 0.0, "expires_at": 9e18},
    {"token": "t", "owner": "x", "acquired_at": 9e18, "expires_at": 9e18 + 1},  # future
    {"token": "", "owner": None, "acquired_at": 1.0, "expires_at": 2.0},
])
def test_garbage_lock_rows_never_block(registry, garbage):
    plate = registry.add(Asset(name="plate"))
    registry._db.run(lambda c: c.execute(locks_table.insert().values(
        resource_id=plate.id, fence=7, **garbage)))
    assert not registry.is_locked(plate)
    assert registry.update(plate, attributes={"ok": True}).attributes == {"ok": True}
    lease = registry.acquire_lock(plate)
    assert lease.fences[plate.id] == 8
    assert registry.release_lock(lease)


def test_text_in_sqlite_time_columns_never_blocks(session):
    # Only SQLite lets a hand edit put text into a REAL column (session: default SQLite).
    registry = session.registry
    assert registry.backend == "sqlite"
    plate = registry.add(Asset(name="plate"))
    registry._db.run(lambda c: c.exec_driver_sql(
        "INSERT INTO resource_locks (resource_id, token, owner, acquired_at, expires_at, fence) "
        f"VALUES ('{plate.id}', 'tok', 'hand edit', 'yesterday', 'never', 3)"))
    assert not registry.is_locked(plate)
    lease = registry.acquire_lock(plate)
    assert registry.lock_info(plate).owner == lease.owner
    assert registry.release_lock(lease)


# -- 21: fencing --------------------------------------------------------------------


def test_expired_holder_cannot_release_or_write_after_takeover(registry, home, registry_url):
    stock = registry.add(Consumable(name="stock", quantity=10))
    go, queue = SPAWN.Event(), SPAWN.Queue()
    a = SPAWN.Process(target=_workers.late_holder,
                      args=(str(home), registry_url, stock.id, 0.8, go, queue))
    a.start()
    assert queue.get(timeout=60) == ("ok", "acquired")
    # B waits for A's lease to run out, then takes the lock.
    b = registry.acquire_lock(stock, duration=30, wait=20, owner="process B")
    go.set()
    result = _results(queue, 1)[0]
    _join([a])
    assert result == {"released": "False", "write": "StaleLockError", "update": "StaleLockError"}
    # B still holds the lock, and its writes (with its token) go through.
    info = registry.lock_info(stock)
    assert info is not None and info.owner == "process B"
    assert registry.decrease_quantity(stock, 2, token=b.token).quantity == 8
    assert registry.release_lock(b)


def test_expired_lease_write_is_refused_even_without_a_successor(registry):
    from jupyter_resman.core.registry import Registry

    now = [1_000_000.0]
    clocked = Registry(registry.session, clock=lambda: now[0])
    try:
        stock = clocked.add(Consumable(name="stock", quantity=10))
        lease = clocked.acquire_lock(stock, duration=10)
        assert clocked.decrease_quantity(stock, 1, token=lease.token).quantity == 9
        now[0] += 11  # the lease has expired; nobody took the lock
        with pytest.raises(StaleLockError, match="expired"):
            clocked.decrease_quantity(stock, 1, token=lease.token)
        assert not clocked.release_lock(lease)
        assert clocked.get(stock).quantity == 9
    finally:
        clocked.close()


# -- 22: fork ------------------------------------------------------------------------


def test_forked_child_opens_its_own_connections(registry):
    stock = registry.add(Consumable(name="stock", quantity=100))
    parent_pool = id(registry._db.engine.pool)
    parent_pid = None
    if registry.backend == "postgresql":
        parent_pid = registry._db.run(
            lambda c: c.execute(sa.text("SELECT pg_backend_pid()")).scalar(), write=False)
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    # The parent holds an open pooled connection right now; the children inherit it.
    children = [fork.Process(target=_workers.use_inherited_registry,
                             args=(registry, stock.id, 20, queue)) for _ in range(2)]
    for child in children:
        child.start()
    infos = _results(queue, 2)
    _join(children)
    for info in infos:
        assert info["pool"] != parent_pool
        if parent_pid is not None:
            assert info["backend_pid"] != parent_pid
    # The parent's own connection was neither used nor closed by the children.
    assert registry.decrease_quantity(stock, 1).quantity == 100 - 40 - 1
    assert id(registry._db.engine.pool) == parent_pool
    if parent_pid is not None:
        assert registry._db.run(
            lambda c: c.execute(sa.text("SELECT pg_backend_pid()")).scalar(),
            write=False) == parent_pid
