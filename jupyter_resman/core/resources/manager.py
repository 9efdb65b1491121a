"""``session.resources``: named providers, their pools, who holds what, and health.

>>> import tempfile
>>> from jupyter_resman.core import Session
>>> from jupyter_resman.core.resources import FileSystemProvider
>>> with Session(home=tempfile.mkdtemp()) as s:
...     _ = s.resources.register_provider("scratch", FileSystemProvider(tempfile.mkdtemp()))
...     with s.resources.use("scratch", owner="cell-7") as folder:
...         s.resources.owners("scratch")
...     s.resources.owners("scratch")
{'cell-7': 1}
{}

Each ``acquire`` hands out its own resource (two threads never share a
connection) and records a :class:`~.leases.Lease`; ``release`` gives it back
to the pool. A notebook hooks in three calls: :func:`set_default_owner`
before a cell, :meth:`ResourceManager.check_leaks` after it (one
:class:`~jupyter_resman.core.errors.LeakWarning` per resource the cell still
holds) and :meth:`ResourceManager.release_all` at shutdown.

The manager publishes what it holds to the home's live feed (at most every
few seconds, and after each registration, leak check and health check), so
``resman resources`` in a terminal and the Jupyter server can show the
resources of every kernel; :func:`published` reads them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError, LeakWarning, ProviderError, ResourceAcquisitionError
from ..settings import parse_duration
from .feed import Feed, published
from .leases import Lease, caller_location, current_owner, owner_scope, set_default_owner
from .metrics import ResourceMetrics
from .pool import Pool, PoolConfig, PoolTimeout
from .protocol import HealthReport, HealthStatus, ResourceProvider

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["ResourceManager", "published"]  # published: re-exported from .feed

log = logging.getLogger("jupyter_resman.resources")

_MISSING: Any = object()
_NAME_MAX = 100


class ResourceManager:
    """Providers registered by name, each behind a bounded pool, with owner tracking.

    ``ResourceManager(session)`` is what ``session.resources`` builds; a
    manager without a session works the same but publishes nothing.
    """

    def __init__(self, session: Session | None = None, *, publish: bool = True) -> None:
        self._lock = threading.RLock()
        self._pools: dict[str, Pool] = {}
        self._leases: dict[str, list[Lease]] = {}
        self._health: dict[str, HealthReport] = {}
        self._closed = False
        # Taken now, not on first publish: the session closes its parts in reverse
        # order of creation, so the feed must exist before us to outlive our close().
        self._feed = Feed(session.live) if session is not None and publish else None

    # -- registration ---------------------------------------------------------------

    def register_provider(self, name: str, provider: ResourceProvider[Any] | Callable[[], Any],
                          pool: PoolConfig | None = None, *, replace: bool = False) -> Any:
        """Make ``provider`` available as ``name``; returns the provider.

        A plain function is wrapped in a :class:`~.providers.FactoryProvider`.
        ``pool`` sets sizes and timeouts (default ``PoolConfig()``); ``min_size``
        resources are made right away, so a wrong address fails here, clearly.
        ``replace=True`` unregisters an existing provider of that name first.
        """
        _check_name(name)
        if not _looks_like_provider(provider):
            if not callable(provider):
                raise TypeError(
                    f"register_provider({name!r}, ...) needs a provider (acquire, release, "
                    f"validate, health_check, metrics, close) or a function that makes a "
                    f"resource, not {type(provider).__name__}")
            from .providers.factory import FactoryProvider

            provider = FactoryProvider(provider)
        made = cast("ResourceProvider[Any]", provider)
        config = pool if pool is not None else PoolConfig()
        if not isinstance(config, PoolConfig):
            raise TypeError(f"pool= takes a PoolConfig, not {type(config).__name__}")
        with self._lock:
            self._check_open()
            exists = name in self._pools
        if exists:
            if not replace:
                raise ProviderError(
                    f"a provider named {name!r} is already registered; unregister it first "
                    "or pass replace=True")
            self.unregister(name)
        new_pool = Pool(name, made, config)
        with self._lock:
            self._check_open()
            if name in self._pools:
                raise ProviderError(f"another thread registered {name!r} at the same time")
            self._pools[name] = new_pool
            self._leases[name] = []
        try:
            new_pool.fill()
        except Exception as exc:
            with self._lock:
                self._pools.pop(name, None)
                self._leases.pop(name, None)
            new_pool.close()
            raise ProviderError(
                f"could not make the first {config.min_size} resource(s) of {name!r} "
                f"(PoolConfig.min_size): {type(exc).__name__}: {exc}") from exc
        log.info("registered resource %r (%s %s; pool %d-%d)", name, _kind(provider),
                 getattr(provider, "target", ""), config.min_size, config.max_size)
        self.publish()
        return provider

    def unregister(self, name: str) -> None:
        """Release what owners still hold of ``name``, close its pool and its provider."""
        with self._lock:
            pool = self._pool(name)
            leases = self._leases.pop(name, [])
            del self._pools[name]
            self._health.pop(name, None)
        for lease in leases:
            pool.release(lease.resource, hold_s=lease.held_s())
        pool.close()
        _close_provider(name, pool.provider)
        if leases:
            log.info("unregistered %r while %d resource(s) were held by %s", name, len(leases),
                     ", ".join(sorted({lease.owner for lease in leases})))
        self.publish()

    @property
    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._pools)

    def provider(self, name: str) -> Any:
        """The provider registered as ``name``."""
        return self._pool(name).provider

    def pool_config(self, name: str) -> PoolConfig:
        return self._pool(name).config

    def __contains__(self, name: object) -> bool:
        return name in self._pools

    def __len__(self) -> int:
        return len(self._pools)

    # -- acquire and release ------------------------------------------------------------

    def acquire(self, name: str, owner: str | None = None, *,
                timeout: float | str | None = None) -> Any:
        """A resource of ``name`` charged to ``owner`` (default: :func:`current_owner`).

        Waits up to ``timeout`` (default: the pool's ``acquire_timeout``) when all
        are in use, then raises :class:`ResourceAcquisitionError` naming who holds
        them. Give the resource back with :meth:`release` or use :meth:`use`.
        """
        pool, owner, wait = self._before_acquire(name, owner, timeout)
        where = caller_location()
        try:
            resource = pool.acquire(wait)
        except PoolTimeout as exc:
            raise self._timeout_error(name, owner, exc.waited) from None
        return self._lease(pool, owner, resource, where)

    async def acquire_async(self, name: str, owner: str | None = None, *,
                            timeout: float | str | None = None) -> Any:
        """:meth:`acquire` for coroutines: waiting for a free resource never blocks the loop."""
        pool, owner, wait = self._before_acquire(name, owner, timeout)
        where = caller_location()
        try:
            resource = await pool.acquire_async(wait)
        except PoolTimeout as exc:
            raise self._timeout_error(name, owner, exc.waited) from None
        return self._lease(pool, owner, resource, where)

    def release(self, name: str, owner: str | None = None, *, resource: Any = _MISSING,
                discard: bool = False) -> None:
        """Give back a resource of ``name``.

        With ``resource=`` that very resource is released; otherwise the one
        ``owner`` (default: :func:`current_owner`) took last. ``discard=True``
        disposes of it instead of pooling it (it is broken, or holds state the
        next user must not see).
        """
        pool, lease = self._unlease(name, owner, resource)
        pool.release(lease.resource, hold_s=lease.held_s(), discard=discard)
        self._maybe_publish()

    async def release_async(self, name: str, owner: str | None = None, *,
                            resource: Any = _MISSING, discard: bool = False) -> None:
        """:meth:`release` for coroutines (the provider's ``reset`` runs off the loop)."""
        pool, lease = self._unlease(name, owner, resource)
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(pool.release, lease.resource, hold_s=lease.held_s(),
                                    discard=discard))
        self._maybe_publish()

    @contextlib.contextmanager
    def use(self, name: str, owner: str | None = None, *,
            timeout: float | str | None = None) -> Iterator[Any]:
        """``with resources.use("db") as conn:`` — acquired, and released whatever happens."""
        resource = self.acquire(name, owner, timeout=timeout)
        try:
            yield resource
        finally:
            self.release(name, resource=resource)

    @contextlib.asynccontextmanager
    async def use_async(self, name: str, owner: str | None = None, *,
                        timeout: float | str | None = None) -> AsyncIterator[Any]:
        """``async with resources.use_async("api") as client:``"""
        resource = await self.acquire_async(name, owner, timeout=timeout)
        try:
            yield resource
        finally:
            await self.release_async(name, resource=resource)

    def release_all(self, owner: str | None = None) -> int:
        """Release everything ``owner`` holds — or, with no owner, everything anyone holds.

        Returns how many resources were released. The notebook integration
        calls ``release_all()`` at kernel shutdown and ``%unload_ext``.
        """
        with self._lock:
            taken: list[tuple[Pool, Lease]] = []
            for name, leases in self._leases.items():
                keep = []
                for lease in leases:
                    if owner is None or lease.owner == owner:
                        taken.append((self._pools[name], lease))
                    else:
                        keep.append(lease)
                leases[:] = keep
        for pool, lease in taken:
            pool.release(lease.resource, hold_s=lease.held_s())
        if taken:
            log.info("released %d resource(s)%s", len(taken),
                     f" held by {owner}" if owner is not None else "")
            self.publish()
        return len(taken)

    # -- owners and leaks ---------------------------------------------------------------

    set_default_owner = staticmethod(set_default_owner)
    owner_scope = staticmethod(owner_scope)
    current_owner = staticmethod(current_owner)

    def owners(self, name: str) -> dict[str, int]:
        """``{owner: number of resources held}`` for ``name``."""
        with self._lock:
            self._pool(name)
            counts: dict[str, int] = {}
            for lease in self._leases[name]:
                counts[lease.owner] = counts.get(lease.owner, 0) + 1
        return counts

    def has_resource(self, name: str, owner: str | None = None) -> bool:
        """Whether ``owner`` (default: the current owner) holds a resource of ``name``."""
        owner = current_owner() if owner is None else str(owner)
        with self._lock:
            self._pool(name)
            return any(lease.owner == owner for lease in self._leases[name])

    def leases(self, name: str | None = None, owner: str | None = None) -> list[Lease]:
        """Resources held now, oldest first, optionally of one name and/or one owner."""
        with self._lock:
            if name is not None:
                self._pool(name)
            out = [lease for n, leases in self._leases.items() if name in (None, n)
                   for lease in leases if owner is None or lease.owner == owner]
        return sorted(out, key=lambda lease: lease.started)

    def leaks(self, owner: str | None = None) -> list[Lease]:
        """What ``owner`` (default: the current owner) still holds — leaks once it is done."""
        return self.leases(owner=current_owner() if owner is None else str(owner))

    def check_leaks(self, owner: str | None = None, *, stacklevel: int = 2) -> list[Lease]:
        """Warn once per resource ``owner`` still holds; returns the newly reported leases.

        Each leak is reported a single time (one :class:`LeakWarning`, one log
        line) and stays held: a notebook may keep a connection across cells on
        purpose. Release it, or everything at shutdown with :meth:`release_all`.
        """
        owner = current_owner() if owner is None else str(owner)
        with self._lock:
            fresh = [lease for lease in self.leases(owner=owner) if not lease.reported]
            for lease in fresh:
                lease.reported = True
        for lease in fresh:
            where = f" at {lease.where}" if lease.where else ""
            message = (
                f"{owner} finished but still holds resource {lease.name!r} (taken{where}, "
                f"held {lease.held_s():.1f} s). Release it with "
                f"session.resources.release({lease.name!r}, owner={owner!r}), or take it with "
                f"`with session.resources.use({lease.name!r}) as ...:` so it is given back.")
            log.warning("resource leak: %s", message)
            warnings.warn(message, LeakWarning, stacklevel=stacklevel)
        if fresh or (self._feed is not None and self._feed.dirty):
            self.publish()  # after each cell: the feed shows what the cell left behind
        return fresh

    # -- health and metrics -------------------------------------------------------------

    def health(self, name: str | None = None) -> dict[str, HealthReport]:
        """Run the health check of ``name`` (default: every provider), one report each.

        A check that raises is reported as unhealthy with the exception's text;
        it never escapes, so one broken service cannot hide the others.
        """
        names = [name] if name is not None else self.names
        reports: dict[str, HealthReport] = {}
        for each in names:
            provider = self._pool(each).provider
            start = time.perf_counter()
            try:
                report = provider.health_check()
                if not isinstance(report, HealthReport):
                    report = _coerce_report(report, time.perf_counter() - start)
            except Exception as exc:
                report = HealthReport.failed(f"health check raised {type(exc).__name__}: {exc}",
                                             latency_s=time.perf_counter() - start)
            if not report.healthy:
                log.warning("resource %r is %s: %s", each, report.status.value, report.message)
            reports[each] = report
        with self._lock:
            self._health.update({n: r for n, r in reports.items() if n in self._pools})
        self.publish()
        return reports

    def last_health(self, name: str) -> HealthReport | None:
        """The report of the last :meth:`health` run for ``name``, without checking again."""
        return self._health.get(name)

    def metrics(self, name: str | None = None) -> dict[str, ResourceMetrics]:
        """Acquisitions, failures, active, average hold and acquire times, per name."""
        names = [name] if name is not None else self.names
        out = {}
        for each in names:
            pool = self._pool(each)
            try:
                provider_metrics = pool.provider.metrics()
            except Exception as exc:
                provider_metrics = {"error": f"{type(exc).__name__}: {exc}"}
            out[each] = ResourceMetrics.from_pool(pool, provider_metrics)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything ``%resman resources`` shows, as JSON-able values."""
        metrics = self.metrics()
        with self._lock:
            providers = {}
            for name, pool in self._pools.items():
                health = self._health.get(name)
                providers[name] = {
                    "kind": _kind(pool.provider),
                    "target": str(getattr(pool.provider, "target", "")),
                    "pool": {"min_size": pool.config.min_size, "max_size": pool.config.max_size,
                             "max_idle_time": pool.config.max_idle_time,
                             "acquire_timeout": pool.config.acquire_timeout},
                    "health": health.to_dict() if health is not None else None,
                    "metrics": metrics[name].to_dict() if name in metrics else None,
                    "leases": [lease.to_dict() for lease in self._leases[name]],
                }
        return {"pid": os.getpid(), "updated": time.time(), "providers": providers}

    # -- publishing -------------------------------------------------------------------

    def publish(self) -> None:
        """Write :meth:`snapshot` to the live feed now (a no-op without a session).

        A failure to publish (disk full, locked feed) is logged, never raised:
        the resources themselves work without the feed.
        """
        feed = self._feed
        if feed is None or self._closed:
            return
        if not self._pools and not feed.published:
            return  # nothing to show, and nothing shown that needs clearing
        feed.write(self.snapshot())

    def _maybe_publish(self) -> None:
        # Acquire/release are hot: publish at most every PUBLISH_EVERY_S, and remember
        # that the feed is behind so the next leak check (end of cell) catches up.
        feed = self._feed
        if feed is not None:
            feed.dirty = True
            if feed.due():
                self.publish()

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Release everything, close every pool and provider; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = [(self._pools[name], lease) for name, leases in self._leases.items()
                    for lease in leases]
            pools = list(self._pools.items())
            self._pools.clear()
            self._leases.clear()
        for pool, lease in held:
            pool.release(lease.resource, hold_s=lease.held_s())
        if held:
            log.info("closing: released %d resource(s) still held by %s", len(held),
                     ", ".join(sorted({lease.owner for _pool, lease in held})))
        for name, pool in pools:
            pool.close()
            _close_provider(name, pool.provider)
        if self._feed is not None and self._feed.published:
            self._feed.write(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ResourceManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pools)} providers"
        return f"<ResourceManager {state}>"

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ProviderError("this resource manager is closed (its session was closed); "
                                "use a new session's .resources")

    def _pool(self, name: str) -> Pool:
        pool = self._pools.get(name)
        if pool is None:
            self._check_open()
            known = ", ".join(repr(n) for n in self._pools) or "none"
            raise ProviderError(
                f"no resource provider named {name!r} (registered: {known}); register one with "
                f"session.resources.register_provider({name!r}, provider)")
        return pool

    def _before_acquire(self, name: str, owner: str | None,
                        timeout: float | str | None) -> tuple[Pool, str, float | None]:
        pool = self._pool(name)
        owner = current_owner() if owner is None else str(owner)
        if timeout is None:
            default = pool.config.acquire_timeout
            wait = None if default is None else float(default)
        else:
            wait = parse_duration(timeout, name="timeout")
        return pool, owner, wait

    def _lease(self, pool: Pool, owner: str, resource: Any, where: str) -> Any:
        lease = Lease(pool.name, owner, resource, where)
        with self._lock:
            leases = self._leases.get(pool.name)
            if leases is None or self._pools.get(pool.name) is not pool:
                alive = False
            else:
                leases.append(lease)
                alive = True
        if not alive:  # closed or unregistered while we waited
            pool.release(resource, discard=True)
            raise ProviderError(f"resource {pool.name!r} was unregistered or closed while "
                                f"{owner} was acquiring it")
        self._maybe_publish()
        return resource

    def _unlease(self, name: str, owner: str | None, resource: Any) -> tuple[Pool, Lease]:
        owner = None if owner is None else str(owner)
        with self._lock:
            pool = self._pool(name)
            leases = self._leases[name]
            if resource is not _MISSING:
                for i, lease in enumerate(leases):
                    if lease.resource is resource and owner in (None, lease.owner):
                        return pool, leases.pop(i)
                raise ProviderError(
                    f"{_describe(resource)} is not a {name!r} resource held"
                    + (f" by {owner}" if owner is not None else "")
                    + f"; held now: {_holders(leases)}")
            who = current_owner() if owner is None else str(owner)
            for i in range(len(leases) - 1, -1, -1):
                if leases[i].owner == who:
                    return pool, leases.pop(i)
            hint = (f"; pass owner=, e.g. release({name!r}, owner={leases[0].owner!r})"
                    if leases else "")
            raise ProviderError(f"{who} holds no {name!r} resource (held now: "
                                f"{_holders(leases)}){hint}")

    def _timeout_error(self, name: str, owner: str, waited: float) -> ResourceAcquisitionError:
        pool = self._pools.get(name)
        with self._lock:
            leases = list(self._leases.get(name, []))
        size = pool.config.max_size if pool is not None else 0
        mine = sum(1 for lease in leases if lease.owner == owner)
        selfish = (f" ({owner} itself holds {mine}: release one before taking another)"
                   if mine else "")
        error = ResourceAcquisitionError(
            f"could not acquire {name!r} for {owner} within {waited:.1f} s: all {size} are in "
            f"use, held by {_holders(leases)}{selfish}. Release them (e.g. "
            f"session.resources.release_all(owner)), pass a longer timeout=, or allow more "
            f"with PoolConfig(max_size=...).")
        error.resource = name  # type: ignore[attr-defined]
        error.owners = sorted({lease.owner for lease in leases})  # type: ignore[attr-defined]
        log.warning("%s", error)
        return error


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or len(name) > _NAME_MAX \
            or not name.isprintable() or name != name.strip():
        raise ConfigError(
            f"resource name {name!r} cannot be used; use a short printable name without "
            f"leading or trailing spaces (at most {_NAME_MAX} characters), e.g. 'db'")


def _looks_like_provider(obj: object) -> bool:
    return callable(getattr(obj, "acquire", None)) and callable(getattr(obj, "release", None))


def _kind(provider: object) -> str:
    return str(getattr(provider, "kind", type(provider).__name__))


def _close_provider(name: str, provider: Any) -> None:
    close = getattr(provider, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:
        log.warning("closing the provider of %r failed: %s: %s", name, type(exc).__name__, exc)


def _holders(leases: list[Lease]) -> str:
    if not leases:
        return "nobody (resources are being made or disposed of)"
    now = time.monotonic()
    by_owner: dict[str, list[float]] = {}
    for lease in leases:
        by_owner.setdefault(lease.owner, []).append(lease.held_s(now))
    parts = [f"{owner} ({len(held)}, longest {max(held):.1f} s)"
             for owner, held in by_owner.items()]
    return ", ".join(parts)


def _describe(resource: Any) -> str:
    text = repr(resource)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce_report(value: Any, latency: float) -> HealthReport:
    # Providers written against a looser protocol may answer True/False or a status.
    if isinstance(value, HealthStatus):
        return HealthReport(value, latency_s=latency)
    if isinstance(value, bool):
        return (HealthReport.ok(latency_s=latency) if value
                else HealthReport.failed("health_check returned False", latency_s=latency))
    return HealthReport(HealthStatus.UNKNOWN, f"health_check returned {value!r}",
                        latency_s=latency)
