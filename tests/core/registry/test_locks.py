"""Locks in one process: atomicity, tokens, expiry, refresh, the context manager.

Expiry is driven by an injected clock (two Registry objects on one database
stand for two processes living at the same moment); the cross-process cases
are in test_faults.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_resman.core.errors import (
    LockError,
    LockTimeout,
    RegistryValueError,
    ResourceNotFoundError,
    StaleLockError,
)
from jupyter_resman.core.registry import Asset, Collection, Consumable, Grid, Registry, Stack


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pair(registry, clock):
    """Two registries (two "processes") on the same database, sharing one clock."""
    a = Registry(registry.session, clock=clock)
    b = Registry(registry.session, clock=clock)
    yield a, b
    a.close()
    b.close()


def test_acquire_release(registry):
    plate = registry.add(Asset(name="plate"))
    lease = registry.acquire_lock(plate, duration=30, owner="cell-7")
    assert registry.is_locked(plate)
    info = registry.lock_info(plate)
    assert (info.owner, info.fence) == ("cell-7", 1)
    assert 29 < lease.remaining() <= 30
    assert [i.resource_id for i in registry.locks()] == [plate.id]
    assert registry.release_lock(lease)
    assert not registry.is_locked(plate) and registry.locks() == []
    assert not registry.release_lock(lease)  # twice: nothing left to free
    assert registry.acquire_lock(plate).fences[plate.id] == 2  # fences never go back


def test_the_token_is_never_shown():
    from jupyter_resman.core.registry import Lease

    lease = Lease("0123456789abcdef" * 2, ("x",), "me", 0.0, 60.0)
    assert lease.token not in repr(lease)
    assert lease.token not in str(lease.to_dict())


def test_several_resources_all_or_none(pair):
    a, b = pair
    plate, reagent, tips = (a.add(Asset(name=n)) for n in ("plate", "reagent", "tips"))
    held = b.acquire_lock(reagent, owner="B")
    with pytest.raises(LockTimeout, match="by 'B'"):
        a.acquire_lock(plate, reagent, tips, owner="A")
    # None of the three was taken by A's failed attempt.
    assert not a.is_locked(plate) and not a.is_locked(tips)
    assert b.release_lock(held)
    lease = a.acquire_lock(plate, reagent, tips, owner="A")
    assert set(lease.resource_ids) == {plate.id, reagent.id, tips.id}
    assert all(a.lock_info(r).owner == "A" for r in (plate, reagent, tips))
    assert a.release_lock(lease)


def test_missing_or_removed_resources_cannot_be_locked(registry):
    gone = registry.add(Asset(name="gone"))
    registry.remove(gone)
    with pytest.raises(ResourceNotFoundError, match="removed"):
        registry.acquire_lock(gone)
    with pytest.raises(ResourceNotFoundError):
        registry.acquire_lock("01JAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(RegistryValueError, match="at least one"):
        registry.acquire_lock()


@pytest.mark.parametrize("duration", [0, -1, 86401, "2d", "soon"])
def test_lease_durations_are_bounded(registry, duration):
    plate = registry.add(Asset(name="plate"))
    with pytest.raises((RegistryValueError, ValueError)):
        registry.acquire_lock(plate, duration=duration)


def test_writes_to_a_locked_resource_need_the_token(pair):
    a, b = pair
    stock = a.add(Consumable(name="stock", quantity=10))
    lease = a.acquire_lock(stock, owner="A")
    with pytest.raises(LockError, match="locked by 'A'"):
        b.decrease_quantity(stock, 1)
    with pytest.raises(LockError, match="locked by 'A'"):
        b.update(stock, name="renamed")
    with pytest.raises(LockError):
        b.remove(stock)
    other = b.acquire_lock(b.add(Asset(name="unrelated")), owner="B")
    with pytest.raises(LockError, match="locked by 'A'"):  # a live token for something else
        b.decrease_quantity(stock, 1, token=other.token)
    assert b.decrease_quantity(stock, 1, token=lease.token).quantity == 9
    # A live token on an unlocked resource is simply not needed.
    free = a.add(Asset(name="free"))
    assert a.update(free, name="still free", token=lease.token).name == "still free"


def test_container_operations_are_fenced_too(pair):
    a, b = pair
    stack = a.add(Stack(name="stack"))
    plate = a.add(Grid(name="plate", rows=1, columns=1))
    lease = a.acquire_lock(stack, owner="A")
    with pytest.raises(LockError):
        b.push(stack, Asset(name="x"))
    child = a.push(stack, Asset(name="y"), token=lease.token)
    with pytest.raises(LockError):
        b.pop(stack)
    # Moving a child out of a locked container needs that container's token.
    with pytest.raises(LockError):
        b.set_child(plate, (0, 0), child, move=True)
    assert b.set_child(plate, (0, 0), child, move=True, token=lease.token).parent_id == plate.id
    assert a.children(stack) == []


def test_removing_from_or_restoring_into_a_locked_container(pair):
    a, b = pair
    box = a.add(Collection(name="box"))
    tube = a.set_child(box, "slot", Asset(name="tube"))
    lease = a.acquire_lock(box, owner="A")
    with pytest.raises(LockError, match="locked by 'A'"):
        b.remove(tube)  # it would change A's container
    a.remove(tube, token=lease.token)
    # With the holder's token it goes back into its place...
    assert a.restore_deleted(tube, token=lease.token).parent_id == box.id
    a.remove(tube, token=lease.token)
    # ...without it, it comes back at the top level, not into A's locked box.
    assert b.restore_deleted(tube).parent_id is None
    assert "no longer available" in b.history(tube)[-1].detail


def test_expiry_takeover_and_fencing(pair, clock):
    a, b = pair
    stock = a.add(Consumable(name="stock", quantity=10))
    old = a.acquire_lock(stock, duration=10, owner="A")
    with pytest.raises(LockTimeout):
        b.acquire_lock(stock, owner="B")
    clock.now += 10.5
    assert not b.is_locked(stock)
    new = b.acquire_lock(stock, duration=10, owner="B")
    assert new.fences[stock.id] == old.fences[stock.id] + 1
    # A's late release frees nothing; A's late writes are refused.
    assert not a.release_lock(old)
    assert b.lock_info(stock).owner == "B"
    with pytest.raises(StaleLockError, match="holds the lock now"):
        a.decrease_quantity(stock, 1, token=old.token)
    with pytest.raises(StaleLockError):
        a.update(stock, attributes={"late": True}, token=old.token)
    assert b.decrease_quantity(stock, 1, token=new.token).quantity == 9
    assert b.release_lock(new)


def test_refresh(pair, clock):
    a, _ = pair
    plate = a.add(Asset(name="plate"))
    lease = a.acquire_lock(plate, duration=10)
    clock.now += 8
    lease = a.refresh_lock(lease)
    assert lease.expires == clock.now + 10
    clock.now += 8
    assert a.is_locked(plate)  # would have expired without the refresh
    clock.now += 3
    with pytest.raises(StaleLockError, match="expired before it was refreshed"):
        a.refresh_lock(lease)


def test_release_by_token_string(registry):
    plate = registry.add(Asset(name="plate"))
    lease = registry.acquire_lock(plate)
    assert not registry.release_lock("not-the-token")
    assert registry.is_locked(plate)
    assert registry.release_lock(lease.token)
    assert not registry.is_locked(plate)


def test_wait_for_a_lock(registry):
    plate = registry.add(Asset(name="plate"))
    first = registry.acquire_lock(plate, duration=0.4, owner="first")
    lease = registry.acquire_lock(plate, duration=5, wait=5, owner="second")
    assert registry.lock_info(plate).owner == "second"
    assert not registry.release_lock(first) and registry.release_lock(lease)


def test_lock_context_manager(registry):
    stock = registry.add(Consumable(name="stock", quantity=10))
    stack = registry.add(Stack(name="stack"))
    with registry.lock(stock, stack, duration=30, owner="cell") as (s, st):
        assert registry.is_locked(stock) and registry.is_locked(stack)
        s.decrease_quantity(2)
        assert s.quantity == 8  # reads through to the latest snapshot
        st.push(Asset(name="plate"))
        assert [c.name for c in st.children()] == ["plate"]
        assert st.pop().name == "plate"
        s.update(attributes={"used_by": "cell"})
        with pytest.raises(LockError):
            registry.decrease_quantity(stock, 1)  # no token: someone else's lock
    assert not registry.is_locked(stock) and not registry.is_locked(stack)
    assert registry.get(stock).quantity == 8
    with registry.lock(stock) as single:
        assert single.id == stock.id and single.name == "stock"


def test_lock_context_releases_on_error(registry):
    plate = registry.add(Asset(name="plate"))
    with pytest.raises(ZeroDivisionError), registry.lock(plate, auto_refresh=True):
        raise ZeroDivisionError
    assert not registry.is_locked(plate)


def test_lost_lease_is_reported_on_exit(registry, clock):
    clocked = Registry(registry.session, clock=clock)
    try:
        plate = clocked.add(Asset(name="plate"))
        with pytest.raises(StaleLockError, match="was lost before the block ended"), \
                clocked.lock(plate, duration=10):
            clock.now += 11
    finally:
        clocked.close()


def test_auto_refresh_keeps_a_short_lease_alive_and_stops(registry):
    stock = registry.add(Consumable(name="stock", quantity=10))
    before = set(threading.enumerate())
    with registry.lock(stock, duration=0.6, auto_refresh=True) as held:
        refreshers = [t for t in threading.enumerate() if t not in before]
        assert [t.name.startswith("resman-lock-refresh") for t in refreshers] == [True]
        time.sleep(1.5)  # 2.5 lease lengths
        assert held.decrease_quantity(1).quantity == 9
    assert not any(t.is_alive() for t in refreshers)
    assert not registry.is_locked(stock)


def test_without_auto_refresh_a_short_lease_runs_out(registry):
    stock = registry.add(Consumable(name="stock", quantity=10))
    with pytest.raises(StaleLockError), registry.lock(stock, duration=0.3) as held:
        time.sleep(0.6)
        held.decrease_quantity(1)
    assert registry.get(stock).quantity == 10
