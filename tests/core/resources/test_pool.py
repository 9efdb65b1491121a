"""Pools: limits and timeouts under 8 threads and 8 coroutines, reuse, expiry, replacement."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from jupyter_resman.core.errors import ConfigError, ProviderError, ResourceAcquisitionError
from jupyter_resman.core.resources import BaseProvider, FactoryProvider, PoolConfig
from jupyter_resman.core.resources.pool import Pool, PoolTimeout


class Tracked(BaseProvider):
    """Numbered resources; records what was made, disposed of and reset."""

    kind = "tracked"

    def __init__(self, fail_first=0):
        self.lock = threading.Lock()
        self.made = []
        self.disposed = []
        self.reset_calls = 0
        self.invalid = set()
        self.fail_first = fail_first

    def acquire(self):
        with self.lock:
            if self.fail_first:
                self.fail_first -= 1
                raise ConnectionRefusedError("service not up yet")
            self.made.append(len(self.made) + 1)
            return self.made[-1]

    def release(self, resource):
        with self.lock:
            self.disposed.append(resource)

    def validate(self, resource):
        return resource not in self.invalid

    def reset(self, resource):
        with self.lock:
            self.reset_calls += 1


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_pool_config_checks_its_values(manager):
    assert PoolConfig(max_idle_time="5min", acquire_timeout=None).max_idle_time == 300.0
    for bad in ({"max_size": 0}, {"min_size": -1}, {"min_size": 3, "max_size": 2},
                {"max_size": 2.5}, {"acquire_timeout": "soon"}):
        with pytest.raises(ConfigError):
            PoolConfig(**bad)
    with pytest.raises(TypeError, match="PoolConfig"):
        manager.register_provider("x", Tracked(), pool={"max_size": 2})


def test_eight_threads_never_hold_more_than_max_size(manager):
    provider = Tracked()
    manager.register_provider("r", provider, PoolConfig(max_size=3, acquire_timeout=30))
    lock = threading.Lock()
    holding, peak, seen = 0, 0, []
    errors = []

    def worker(i):
        nonlocal holding, peak
        try:
            for _ in range(25):
                with manager.use("r", owner=f"worker-{i}") as resource:
                    with lock:
                        holding += 1
                        peak = max(peak, holding)
                        seen.append(resource)
                    time.sleep(0.001)
                    with lock:
                        holding -= 1
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 200 and peak <= 3
    assert set(seen) <= {1, 2, 3} and len(provider.made) <= 3  # reused, never more than 3
    m = manager.metrics("r")["r"]
    assert (m.acquisitions, m.releases, m.active, m.timeouts) == (200, 200, 0, 0)
    assert m.peak_active == peak and m.created == len(provider.made)
    assert provider.reset_calls == 200
    assert manager.owners("r") == {}


def test_timeouts_under_contention_name_the_owners_holding_it(manager):
    manager.register_provider("gpu", Tracked(), PoolConfig(max_size=2, acquire_timeout=0.2))
    manager.acquire("gpu", owner="cell-3")
    manager.acquire("gpu", owner="cell-5")
    failures = []

    def waiter(i):
        try:
            manager.acquire("gpu", owner=f"thread-{i}")
        except ResourceAcquisitionError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 6
    text = str(failures[0])
    assert "'gpu'" in text and "cell-3" in text and "cell-5" in text and "max_size" in text
    assert failures[0].owners == ["cell-3", "cell-5"] and failures[0].resource == "gpu"
    assert isinstance(failures[0], TimeoutError)
    assert manager.metrics("gpu")["gpu"].timeouts == 6
    # The requester's own holdings are pointed out: a cell waiting on itself never succeeds.
    with pytest.raises(ResourceAcquisitionError, match="cell-3 itself holds 1"):
        manager.acquire("gpu", owner="cell-3", timeout=0.05)
    manager.release("gpu", owner="cell-3")
    assert manager.acquire("gpu", owner="thread-0") == 1


def test_a_waiting_thread_gets_the_resource_another_releases(manager):
    manager.register_provider("one", Tracked(), PoolConfig(max_size=1, acquire_timeout=10))
    first = manager.acquire("one", owner="a")
    got = []
    waiter = threading.Thread(target=lambda: got.append(manager.acquire("one", owner="b")))
    waiter.start()
    deadline = time.monotonic() + 5
    while manager.metrics("one")["one"].waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert manager.metrics("one")["one"].waiting == 1
    manager.release("one", owner="a")
    waiter.join()
    assert got == [first] and manager.owners("one") == {"b": 1}


def test_idle_resources_are_reused_newest_first_and_expire():
    provider, clock = Tracked(), FakeClock()
    pool = Pool("r", provider, PoolConfig(min_size=0, max_size=5, max_idle_time=10), clock=clock)
    a, b = pool.acquire(1), pool.acquire(1)
    pool.release(a)
    clock.now += 5
    pool.release(b)
    assert pool.acquire(1) == b  # the newest idle one: the others may age out
    pool.release(b)
    clock.now += 6  # a idle for 11 s, b for 6 s
    assert pool.acquire(1) == b
    assert provider.disposed == [a] and pool.size == 1
    pool.release(b)
    pool.close()
    assert provider.disposed == [a, b]


def test_expiry_keeps_min_size_and_min_size_is_made_up_front(manager):
    provider, clock = Tracked(), FakeClock()
    pool = Pool("r", provider, PoolConfig(min_size=2, max_size=4, max_idle_time=1), clock=clock)
    pool.fill()
    assert provider.made == [1, 2] and pool.idle == 2
    clock.now += 100
    resource = pool.acquire(1)
    assert provider.disposed == [] and resource in (1, 2)  # never below min_size
    pool.release(resource)
    pool.close()

    failing = Tracked(fail_first=1)
    with pytest.raises(ProviderError, match="min_size.*service not up yet"):
        manager.register_provider("svc", failing, PoolConfig(min_size=1))
    assert "svc" not in manager


def test_invalid_idle_resources_are_replaced_on_acquire(manager):
    provider = Tracked()
    manager.register_provider("r", provider, PoolConfig(max_size=1))
    first = manager.acquire("r", owner="a")
    manager.release("r", owner="a")
    provider.invalid.add(first)
    second = manager.acquire("r", owner="a")
    assert second != first and provider.disposed == [first]
    assert manager.metrics("r")["r"].invalidated == 1

    class Exploding(Tracked):
        def validate(self, resource):
            raise OSError("socket gone")

    manager.register_provider("x", Exploding(), PoolConfig(max_size=1))
    one = manager.acquire("x", owner="a")
    manager.release("x", owner="a")
    assert manager.acquire("x", owner="a") != one  # a validate that raises means invalid


def test_a_failed_make_frees_its_slot(manager):
    provider = Tracked(fail_first=1)
    manager.register_provider("svc", provider, PoolConfig(max_size=1, acquire_timeout=0.2))
    with pytest.raises(ProviderError, match="'svc'.*ConnectionRefusedError: service not up yet"):
        manager.acquire("svc", owner="a")
    assert manager.acquire("svc", owner="a") == 1  # the slot was given back
    m = manager.metrics("svc")["svc"]
    assert (m.failures, m.acquisitions, m.active) == (1, 1, 1)


def test_a_failed_reset_disposes_instead_of_pooling(manager):
    class BadReset(Tracked):
        def reset(self, resource):
            raise RuntimeError("cannot roll back")

    provider = BadReset()
    manager.register_provider("r", provider, PoolConfig(max_size=1))
    manager.release("r", resource=manager.acquire("r", owner="a"))
    assert provider.disposed == [1]
    assert manager.acquire("r", owner="a") == 2


def test_discard_disposes_and_close_wakes_waiters(manager):
    provider = Tracked()
    manager.register_provider("r", provider, PoolConfig(max_size=1, acquire_timeout=30))
    manager.release("r", resource=manager.acquire("r", owner="a"), discard=True)
    assert provider.disposed == [1]
    manager.acquire("r", owner="holder")
    outcome = []

    def waiter():
        try:
            manager.acquire("r", owner="waiter")
        except ProviderError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    while manager.metrics("r")["r"].waiting == 0:
        time.sleep(0.005)
    manager.unregister("r")
    thread.join(timeout=10)
    assert len(outcome) == 1 and "closed" in str(outcome[0])
    assert sorted(provider.disposed) == [1, 2]  # the held one was released and disposed


def test_infinite_and_zero_timeouts():
    pool = Pool("r", Tracked(), PoolConfig(max_size=1))
    held = pool.acquire(float("inf"))
    with pytest.raises(PoolTimeout):
        pool.acquire(0)
    pool.release(held)
    assert pool.acquire(0) == held
    pool.close()


# -- async -----------------------------------------------------------------------------


def test_async_acquire_waits_without_blocking_the_loop(manager):
    manager.register_provider("r", Tracked(), PoolConfig(max_size=1, acquire_timeout=10))
    first = manager.acquire("r", owner="sync-holder")
    ticks = []

    async def ticker(stop):
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main():
        stop = asyncio.Event()
        tick_task = asyncio.create_task(ticker(stop))
        releaser = threading.Timer(0.3, manager.release, args=("r",),
                                   kwargs={"owner": "sync-holder"})
        releaser.start()
        try:
            got = await manager.acquire_async("r", owner="task")
        finally:
            releaser.join()
            stop.set()
            await tick_task
        await manager.release_async("r", owner="task")
        return got

    assert asyncio.run(main()) == first
    assert len(ticks) >= 5  # the loop kept running while the coroutine waited


def test_eight_coroutines_share_two_resources_and_time_out_cleanly(manager):
    manager.register_provider("r", Tracked(), PoolConfig(max_size=2, acquire_timeout=10))
    holding, peak = 0, 0

    async def job(i):
        nonlocal holding, peak
        async with manager.use_async("r", owner=f"task-{i}"):
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0.01)
            holding -= 1

    async def main():
        await asyncio.gather(*(job(i) for i in range(8)))
        held = [await manager.acquire_async("r", owner="hog") for _ in range(2)]
        with pytest.raises(ResourceAcquisitionError, match="hog"):
            await manager.acquire_async("r", owner="late", timeout=0.1)
        for resource in held:
            await manager.release_async("r", resource=resource)

    asyncio.run(main())
    m = manager.metrics("r")["r"]
    assert peak == 2 and m.acquisitions == 10 and m.timeouts == 1 and m.active == 0
    assert m.waiting == 0  # the timed-out waiter left no trace


def test_async_providers_make_resources_with_their_coroutine(manager):
    class AsyncMade(Tracked):
        async def acquire_async(self):
            await asyncio.sleep(0)
            return "made-async"

    manager.register_provider("r", AsyncMade())

    async def main():
        async with manager.use_async("r", owner="t") as resource:
            return resource

    assert asyncio.run(main()) == "made-async"


def test_plain_functions_become_factory_providers(manager):
    made = manager.register_provider("buffers", bytearray)
    assert isinstance(made, FactoryProvider)
    with manager.use("buffers", owner="x") as buffer:
        assert buffer == bytearray()
    assert manager.metrics("buffers")["buffers"].provider == {"made": 1, "disposed": 0}


def test_cancelled_coroutines_leave_no_slot_behind(manager):
    class SlowToMake(Tracked):
        def acquire(self):
            threading.Event().wait(0.3)
            return super().acquire()

    manager.register_provider("r", SlowToMake(), PoolConfig(max_size=1, acquire_timeout=10))

    async def main():
        making = asyncio.create_task(manager.acquire_async("r", owner="impatient"))
        await asyncio.sleep(0.05)
        making.cancel()  # while its resource is being made in a thread
        with pytest.raises(asyncio.CancelledError):
            await making
        holder = await manager.acquire_async("r", owner="next")  # the slot came back
        waiting = asyncio.create_task(manager.acquire_async("r", owner="waiter"))
        await asyncio.sleep(0.05)
        waiting.cancel()  # while waiting for a free resource
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await manager.release_async("r", resource=holder)
        return holder

    assert asyncio.run(main()) == 1
    m = manager.metrics("r")["r"]
    assert (m.created, m.active, m.idle, m.waiting) == (1, 0, 1, 0)
    assert manager.owners("r") == {}
