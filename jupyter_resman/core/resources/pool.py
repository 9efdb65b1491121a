"""A bounded pool of one provider's resources, for threads and event loops alike.

The pool never holds more than ``max_size`` resources (idle, in use, or being
made). An acquire reuses the most recently returned idle resource — so the
others age out after ``max_idle_time`` — after asking the provider to
``validate`` it; an invalid one is disposed of and replaced. When every
resource is in use, the caller waits up to ``acquire_timeout``.

There is no reaper thread: idle resources past their time are closed on the
next acquire or release, which is when it matters, and a notebook never
pays for a thread it did not ask for.

Provider calls (make, validate, reset, dispose) run *outside* the pool's
lock: a slow connect must not stall threads returning resources.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, ProviderError
from ..settings import parse_duration
from .protocol import ResourceProvider

__all__ = ["Pool", "PoolConfig", "PoolTimeout"]

log = logging.getLogger("jupyter_resman.resources")


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """How many resources a provider may have, and how long to keep and wait for them.

    ``max_idle_time`` and ``acquire_timeout`` take seconds or strings such as
    ``"5min"``; ``None`` means forever.

    >>> PoolConfig(max_size=4, acquire_timeout="2s").acquire_timeout
    2.0
    >>> PoolConfig(min_size=5, max_size=2)
    Traceback (most recent call last):
    ...
    jupyter_resman.core.errors.ConfigError: PoolConfig(min_size=5, max_size=2): min_size cannot exceed max_size; lower min_size or raise max_size
    """

    min_size: int = 0
    max_size: int = 10
    max_idle_time: float | str | None = 300.0
    acquire_timeout: float | str | None = 30.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for field in ("min_size", "max_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"PoolConfig({field}={value!r}): use a whole number >= 0")
        if self.max_size < 1:
            raise ConfigError("PoolConfig(max_size=0): a pool needs room for at least one "
                              "resource; use max_size=1 or more")
        if self.min_size > self.max_size:
            raise ConfigError(
                f"PoolConfig(min_size={self.min_size}, max_size={self.max_size}): min_size "
                "cannot exceed max_size; lower min_size or raise max_size")
        for field in ("max_idle_time", "acquire_timeout"):
            value = getattr(self, field)
            if value is not None:
                set_(self, field, parse_duration(value, name=f"PoolConfig.{field}"))


class PoolTimeout(Exception):
    """Internal: the wait ran out (the manager turns it into ResourceAcquisitionError)."""

    def __init__(self, waited: float) -> None:
        super().__init__(waited)
        self.waited = waited


@dataclasses.dataclass
class PoolCounters:
    """Running totals, updated under the pool's lock."""

    acquisitions: int = 0
    releases: int = 0
    failures: int = 0
    timeouts: int = 0
    created: int = 0
    destroyed: int = 0
    invalidated: int = 0
    dispose_errors: int = 0
    peak_in_use: int = 0
    acquire_total_s: float = 0.0
    hold_total_s: float = 0.0
    hold_max_s: float = 0.0


_CREATE, _IDLE, _WAIT = "create", "idle", "wait"


class Pool:
    """The resources of one provider: at most ``config.max_size`` of them."""

    def __init__(self, name: str, provider: ResourceProvider[Any], config: PoolConfig,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.provider = provider
        self.config = config
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[tuple[Any, float]] = []  # a stack: newest last, oldest first
        self._size = 0  # idle + in use + being made
        self._in_use = 0
        self._waiting = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self.counters = PoolCounters()

    # -- gauges ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return self._waiting + len(self._async_waiters)

    @property
    def closed(self) -> bool:
        return self._closed

    def snapshot(self) -> tuple[PoolCounters, int, int, int]:
        """``(counters, in_use, idle, waiting)``, read together under the lock."""
        with self._cond:
            return (dataclasses.replace(self.counters), self._in_use, len(self._idle),
                    self._waiting + len(self._async_waiters))

    # -- filling --------------------------------------------------------------------

    def fill(self) -> None:
        """Make resources until ``min_size`` exist (called when the pool is registered)."""
        while True:
            with self._cond:
                if self._closed or self._size >= self.config.min_size:
                    return
                self._size += 1
            try:
                resource = self.provider.acquire()
            except BaseException:
                with self._cond:
                    self._size -= 1
                    self.counters.failures += 1
                raise
            with self._cond:
                self.counters.created += 1
                self._idle.append((resource, self._clock()))
                self._cond.notify()

    # -- acquiring ------------------------------------------------------------------

    def _take(self, expired: list[Any]) -> tuple[str, Any]:
        """Under the lock: reuse an idle resource, claim a slot to make one, or wait.

        Idle resources past ``max_idle_time`` are moved to ``expired`` (the caller
        disposes of them outside the lock), but never below ``min_size``.
        """
        if self._closed:
            raise ProviderError(f"resource {self.name!r} is closed (its provider was "
                                "unregistered or the session closed)")
        max_idle = self.config.max_idle_time
        if max_idle is not None and self._idle:
            cutoff = self._clock() - float(max_idle)  # a number once PoolConfig is built
            while (self._idle and self._idle[0][1] < cutoff
                   and self._size > self.config.min_size):
                expired.append(self._idle.pop(0)[0])
                self._size -= 1
        if self._idle:
            self._in_use += 1
            return _IDLE, self._idle.pop()[0]
        if self._size < self.config.max_size:
            self._size += 1
            self._in_use += 1
            return _CREATE, None
        return _WAIT, None

    def _note_taken(self) -> None:
        counters = self.counters
        counters.peak_in_use = max(counters.peak_in_use, self._in_use)

    def acquire(self, timeout: float | None) -> Any:
        """A resource, made or reused; waits at most ``timeout`` seconds (None: forever).

        Raises :class:`PoolTimeout` when the wait runs out and
        :class:`ProviderError` when the provider fails to make one.
        """
        start = self._clock()
        deadline = _deadline(start, timeout)
        while True:
            expired: list[Any] = []
            timed_out = False
            try:
                with self._cond:
                    while True:
                        action, resource = self._take(expired)
                        if action != _WAIT:
                            self._note_taken()
                            break
                        remaining = None if deadline is None else deadline - self._clock()
                        if remaining is not None and remaining <= 0:
                            self.counters.timeouts += 1
                            timed_out = True
                            break
                        self._waiting += 1
                        try:
                            self._cond.wait(remaining)
                        finally:
                            self._waiting -= 1
            finally:
                self._dispose_all(expired)  # outside the lock, whatever happened
            if timed_out:
                raise PoolTimeout(self._clock() - start)
            ready, resource = self._prepare(action, resource)
            if ready:
                self._record_acquired(start)
                return resource

    async def acquire_async(self, timeout: float | None) -> Any:
        """Like :meth:`acquire`, but waits on the event loop instead of blocking it.

        A provider with an ``acquire_async`` coroutine makes resources with it;
        otherwise making (and validating) one runs in the loop's default executor.
        """
        loop = asyncio.get_running_loop()
        start = self._clock()
        deadline = _deadline(start, timeout)
        while True:
            expired: list[Any] = []
            future: asyncio.Future[None] | None = None
            with self._cond:
                action, resource = self._take(expired)
                if action == _WAIT:
                    # Registered under the same lock hold that saw the pool full, so a
                    # release cannot slip in between and leave this waiter asleep.
                    future = loop.create_future()
                    self._async_waiters.append((loop, future))
                else:
                    self._note_taken()
            if expired:
                # Not awaited: a cancellation here must not strand the slot just taken.
                loop.run_in_executor(None, self._dispose_all, expired)
            if future is not None:
                remaining = None if deadline is None else deadline - self._clock()
                try:
                    if remaining is not None and remaining <= 0:
                        raise asyncio.TimeoutError
                    await asyncio.wait_for(future, remaining)
                except asyncio.TimeoutError:
                    with self._cond:
                        self._forget_waiter(future)
                        self.counters.timeouts += 1
                    raise PoolTimeout(self._clock() - start) from None
                except BaseException:
                    with self._cond:
                        self._forget_waiter(future)
                    raise
                continue
            if action == _CREATE and _has_coroutine(self.provider, "acquire_async"):
                try:
                    resource = await self.provider.acquire_async()  # type: ignore[attr-defined]
                except Exception as exc:
                    raise self._create_failed(exc) from exc
                except BaseException:
                    self._give_back_slot()
                    raise
                with self._cond:
                    self.counters.created += 1
                ready = True
            else:
                work = loop.run_in_executor(None, self._prepare, action, resource)
                try:
                    ready, resource = await asyncio.shield(work)
                except asyncio.CancelledError:
                    # The thread goes on making (or validating) the resource: when it is
                    # done, give it back to the pool rather than lose it and its slot.
                    work.add_done_callback(self._return_orphan)
                    raise
            if ready:
                self._record_acquired(start)
                return resource

    def _prepare(self, action: str, resource: Any) -> tuple[bool, Any]:
        """Outside the lock: make a resource for a claimed slot, or validate an idle one.

        Returns ``(False, None)`` when the idle resource was invalid (it has been
        disposed of and its slot freed; the caller tries again).
        """
        if action == _CREATE:
            try:
                resource = self.provider.acquire()
            except Exception as exc:
                raise self._create_failed(exc) from exc
            except BaseException:
                self._give_back_slot()
                raise
            with self._cond:
                self.counters.created += 1
            return True, resource
        try:
            valid = bool(self.provider.validate(resource))
        except Exception as exc:
            log.info("resource %r: validate raised %r; replacing it", self.name, exc)
            valid = False
        except BaseException:
            # Interrupted (Ctrl-C in a notebook): put it back as it was, then stop.
            with self._cond:
                self._in_use -= 1
                self._idle.append((resource, self._clock()))
                self._wake()
            raise
        if valid:
            return True, resource
        self._dispose(resource)
        with self._cond:
            self.counters.invalidated += 1
            self._size -= 1
            self._in_use -= 1
            self._wake()
        return False, None

    def _return_orphan(self, work: asyncio.Future[tuple[bool, Any]]) -> None:
        if work.cancelled() or work.exception() is not None:
            return  # a failed make already gave its slot back
        ready, resource = work.result()
        if ready:
            self.release(resource)

    def _create_failed(self, exc: Exception) -> ProviderError:
        self._give_back_slot(failed=True)
        return ProviderError(
            f"the provider of {self.name!r} could not make a resource: "
            f"{type(exc).__name__}: {exc}")

    def _give_back_slot(self, *, failed: bool = False) -> None:
        with self._cond:
            self._size -= 1
            self._in_use -= 1
            if failed:
                self.counters.failures += 1
            self._wake()

    def _record_acquired(self, start: float) -> None:
        with self._cond:
            self.counters.acquisitions += 1
            self.counters.acquire_total_s += self._clock() - start

    # -- releasing ------------------------------------------------------------------

    def release(self, resource: Any, *, hold_s: float = 0.0, discard: bool = False) -> None:
        """Return ``resource`` to the pool (``discard=True``: dispose of it instead).

        The provider's ``reset`` runs first; if it fails, the resource is not
        trusted with a next holder and is disposed of.
        """
        if not discard:
            reset = getattr(self.provider, "reset", None)
            if reset is not None:
                try:
                    reset(resource)
                except Exception as exc:
                    log.warning("resource %r: reset failed (%s: %s); disposing of it",
                                self.name, type(exc).__name__, exc)
                    discard = True
        expired: list[Any] = []
        with self._cond:
            self._in_use -= 1
            counters = self.counters
            counters.releases += 1
            counters.hold_total_s += hold_s
            counters.hold_max_s = max(counters.hold_max_s, hold_s)
            if discard or self._closed:
                self._size -= 1
                expired.append(resource)
            else:
                self._idle.append((resource, self._clock()))
            self._wake()
        self._dispose_all(expired)

    def _wake(self) -> None:
        """Under the lock: a slot or resource is free; wake one thread and every coroutine.

        All coroutine waiters are woken because one of them may have timed out
        already (its loop then ignores the wake-up); the losers wait again.
        """
        self._cond.notify()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                continue  # that loop is closed: its waiter is gone too

    def _forget_waiter(self, future: asyncio.Future[None]) -> None:
        self._async_waiters = [w for w in self._async_waiters if w[1] is not future]
        if future.done() and not future.cancelled():
            # Woken and timed out at once: pass the wake-up on rather than lose it.
            self._wake()

    # -- disposing ------------------------------------------------------------------

    def _dispose(self, resource: Any) -> None:
        try:
            self.provider.release(resource)
        except Exception as exc:
            log.warning("resource %r: the provider failed to dispose of a resource (%s: %s)",
                        self.name, type(exc).__name__, exc)
            with self._cond:
                self.counters.dispose_errors += 1
        with self._cond:
            self.counters.destroyed += 1

    def _dispose_all(self, resources: list[Any]) -> None:
        for resource in resources:
            self._dispose(resource)

    def close(self) -> None:
        """Dispose of idle resources now and of the others when they come back; idempotent.

        Threads and coroutines waiting for a resource get a :class:`ProviderError`.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle = [resource for resource, _since in self._idle]
            self._idle.clear()
            self._size -= len(idle)
            self._cond.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                continue
        self._dispose_all(idle)


def _deadline(start: float, timeout: float | None) -> float | None:
    # An infinite timeout is "no deadline": Condition.wait(inf) would overflow.
    return None if timeout is None or math.isinf(timeout) else start + max(timeout, 0.0)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _has_coroutine(obj: Any, name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(obj, name, None))
