"""Leases on resources: atomic for several at once, expiring, fenced.

``acquire_lock(a, b, duration=60)`` takes both or neither, in one statement
(``INSERT ... SELECT ... ON CONFLICT DO UPDATE WHERE <the old lease is
dead>``), and returns a :class:`Lease` whose ``token`` is the holder's proof.
Writes to a leased resource must carry that token (``token=``); the write
path checks it in the same transaction as the write, so a holder whose
lease expired, or was taken over after expiry, cannot slip a late write in
(fencing). ``release_lock`` frees only rows that still carry the token: an
old holder can never free its successor's lock.

A holder that dies (SIGKILL, a lost laptop) needs no cleanup: its lease
expires and the next ``acquire_lock`` simply takes the row over. A malformed
lock row (no token, times that are not numbers, a lease longer than a day)
counts as expired.

Expiry uses this machine's clock (``Registry(clock=...)`` for tests). Several
machines sharing a PostgreSQL registry should keep their clocks in sync (NTP)
and use leases much longer than their skew; fencing keeps writes safe
regardless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import getpass
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import LockTimeout, RegistryValueError, StaleLockError
from ..settings import parse_duration
from ._core import (
    MAX_LEASE,
    NOW,
    RegistryCore,
    TimeParam,
    lease_is_live,
    live_clause,
    rid,
)
from .resources import Resource, to_datetime
from .schema import locks as locks_table
from .schema import resources as resources_table

__all__ = ["Lease", "LockInfo", "LockOps", "LockedResource"]

log = logging.getLogger("jupyter_resman.registry")

DEFAULT_DURATION = 60.0


@dataclasses.dataclass(frozen=True)
class Lease:
    """Proof of holding locks: pass ``token`` to writes, give the lease to ``release_lock``."""

    token: str
    resource_ids: tuple[str, ...]
    owner: str
    acquired: float
    expires: float
    #: resource id -> fencing number (grows by one on every acquisition of that resource)
    fences: dict[str, int] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def expires_at(self) -> _dt.datetime:
        return to_datetime(self.expires)  # type: ignore[return-value]

    def remaining(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired), by this machine's clock."""
        return self.expires - (time.time() if now is None else now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_ids": list(self.resource_ids),
            "owner": self.owner,
            "acquired_at": to_datetime(self.acquired).isoformat(),  # type: ignore[union-attr]
            "expires_at": self.expires_at.isoformat(),
            "fences": dict(self.fences),
        }

    def __repr__(self) -> str:  # the token is a secret capability: never print it whole
        return (f"Lease(resource_ids={self.resource_ids!r}, owner={self.owner!r}, "
                f"expires_at={self.expires_at.isoformat()!r}, token='{self.token[:6]}...')")


@dataclasses.dataclass(frozen=True)
class LockInfo:
    """Who holds a resource's lock and until when (never the token)."""

    resource_id: str
    owner: str | None
    acquired: float
    expires: float
    fence: int

    @property
    def expires_at(self) -> _dt.datetime:
        return to_datetime(self.expires)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "owner": self.owner,
            "acquired_at": to_datetime(self.acquired).isoformat(),  # type: ignore[union-attr]
            "expires_at": self.expires_at.isoformat(),
            "fence": self.fence,
        }


class _Held(Exception):
    """Internal: some resource is leased to someone else (the transaction rolls back)."""

    def __init__(self, holders: list[Any]) -> None:
        super().__init__("held")
        self.holders = holders


def default_owner() -> str:
    """``user@host:pid`` of this process, the owner shown to others waiting for a lock."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


_l = locks_table.c
# A lease's rows go back to "free" rather than being deleted: the fence number stays.
_RELEASE = (locks_table.update().where(_l.token == sa.bindparam("p_token"), live_clause())
            .values(token=None, owner=None, acquired_at=None, expires_at=None))
_REFRESH = (locks_table.update().where(_l.token == sa.bindparam("p_token"), live_clause())
            .values(expires_at=sa.bindparam("p_expires", type_=TimeParam)))
_ACQUIRE: dict[tuple[str, bool], Any] = {}


def _acquire_statement(dialect: str, *, returning: bool) -> Any:
    """``INSERT ... SELECT ... ON CONFLICT DO UPDATE WHERE <old lease dead>``, built once.

    FOR SHARE (PostgreSQL) makes the acquisition wait for any write in flight
    on these resources, and writes wait for it: a write checks the locks after
    locking its row, so it always sees a lease committed before it.
    """
    stmt = _ACQUIRE.get((dialect, returning))
    if stmt is not None:
        return stmt
    r = resources_table.c
    source = (
        sa.select(r.id, sa.bindparam("p_token", type_=sa.String),
                  sa.bindparam("p_owner", type_=sa.Text), NOW,
                  sa.bindparam("expires", type_=TimeParam), sa.literal_column("1"))
        .where(r.id.in_(sa.bindparam("ids", expanding=True)), r.removed_at.is_(None))
        .order_by(r.id)
        .with_for_update(read=True)
    )
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(locks_table).from_select(
        ["resource_id", "token", "owner", "acquired_at", "expires_at", "fence"], source)
    stmt = stmt.on_conflict_do_update(
        index_elements=[locks_table.c.resource_id],
        set_={
            "token": stmt.excluded.token,
            "owner": stmt.excluded.owner,
            "acquired_at": stmt.excluded.acquired_at,
            "expires_at": stmt.excluded.expires_at,
            "fence": locks_table.c.fence + 1,
        },
        # NULL-safe: a row whose liveness is unknown (NULL times) is not live.
        where=sa.not_(sa.func.coalesce(live_clause(), sa.false())),
    )
    if returning:
        stmt = stmt.returning(locks_table.c.resource_id, locks_table.c.fence)
    _ACQUIRE[(dialect, returning)] = stmt
    return stmt


class LockOps(RegistryCore):
    """Resource locks (mixed into Registry)."""

    def acquire_lock(
        self,
        *resources: Resource | str,
        duration: float | str = DEFAULT_DURATION,
        owner: str | None = None,
        wait: float | str = 0.0,
    ) -> Lease:
        """Lock all of ``resources`` or none of them; returns the :class:`Lease`.

        ``duration`` (seconds or ``"5min"``, at most a day) is how long the
        lease lasts unless refreshed or released; ``owner`` is shown to others
        (default ``user@host:pid``). If another holder has any of them, retry
        for up to ``wait`` seconds, then raise :class:`LockTimeout` naming the
        holder.
        """
        ids = tuple(sorted({rid(r) for r in resources}))
        if not ids:
            raise RegistryValueError("acquire_lock() needs at least one resource")
        seconds = _lease_duration(duration)
        patience = parse_duration(wait, name="wait")
        holder = owner or default_owner()
        token = secrets.token_hex(16)
        deadline = time.monotonic() + patience
        delay = 0.005
        while True:
            try:
                return self._write(
                    lambda conn: self._try_acquire(conn, ids, token, holder, seconds))
            except _Held as held:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockTimeout(_held_message(held.holders, self._now(), patience)) from None
            # Poll with capped exponential backoff: a lock row has no wake-up signal.
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.2)

    def _try_acquire(self, conn: sa.Connection, ids: tuple[str, ...], token: str, owner: str,
                     seconds: float) -> Lease:
        now = self._now()
        params = {"ids": list(ids), "p_token": token, "p_owner": owner, "now": now,
                  "expires": now + seconds}
        if conn.dialect.insert_returning:
            fences = {row[0]: row[1] for row in conn.execute(
                _acquire_statement(conn.dialect.name, returning=True), params)}
        else:  # SQLite before 3.35 has no RETURNING
            conn.execute(_acquire_statement(conn.dialect.name, returning=False), params)
            fences = {row.resource_id: row.fence for row in conn.execute(
                sa.select(locks_table.c.resource_id, locks_table.c.fence)
                .where(locks_table.c.resource_id.in_(ids), locks_table.c.token == token))}
        if len(fences) == len(ids):
            return Lease(token, ids, owner, now, now + seconds, fences)
        # Not all taken: raising rolls back the rows we did take (all or none).
        r = resources_table.c
        live = {row.id for row in conn.execute(
            sa.select(r.id).where(r.id.in_(ids), r.removed_at.is_(None)))}
        for resource_id in ids:
            if resource_id not in live:
                self._fetch(conn, resource_id)  # raises ResourceNotFoundError, says why
        l = locks_table.c
        holders = [row for row in conn.execute(
            sa.select(l.resource_id, l.owner, l.token, l.acquired_at, l.expires_at)
            .where(l.resource_id.in_(ids))) if lease_is_live(row, now) and row.token != token]
        raise _Held(holders)

    def release_lock(self, lease: Lease | str) -> bool:
        """Free the locks of ``lease`` (or of a token); returns whether it still held them all.

        Only rows that still carry the token are touched: after a lease
        expired and someone else took a resource, the old holder's release
        leaves the new holder's lock alone and returns ``False``.
        """
        params = {"p_token": lease.token if isinstance(lease, Lease) else str(lease),
                  "now": self._now()}
        released = self._write(lambda conn: conn.execute(_RELEASE, params).rowcount)
        if isinstance(lease, Lease):
            return released == len(lease.resource_ids)
        return released > 0

    def refresh_lock(self, lease: Lease, duration: float | str | None = None) -> Lease:
        """Extend a live lease by ``duration`` from now (default: its original length).

        Raises :class:`StaleLockError` if the lease has already expired or was
        released: extending it then could hide a takeover.
        """
        length = lease.expires - lease.acquired
        seconds = _lease_duration(duration if duration is not None else length)

        def apply(conn: sa.Connection) -> Lease:
            now = self._now()
            count = conn.execute(
                _REFRESH, {"p_token": lease.token, "now": now, "p_expires": now + seconds}
            ).rowcount
            if count != len(lease.resource_ids):
                raise StaleLockError(
                    f"the lease of {lease.owner!r} on {', '.join(lease.resource_ids)} expired "
                    "before it was refreshed; acquire the lock again"
                )
            return dataclasses.replace(lease, expires=now + seconds)

        return self._write(apply)

    def lock_info(self, resource: Resource | str) -> LockInfo | None:
        """Who holds the resource's lock, or ``None`` if it is free."""
        l = locks_table.c
        query = sa.select(locks_table).where(l.resource_id == rid(resource))
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None or not lease_is_live(row, self._now()):
            return None
        return LockInfo(row.resource_id, row.owner, float(row.acquired_at),
                        float(row.expires_at), int(row.fence))

    def is_locked(self, resource: Resource | str) -> bool:
        """Whether someone holds a live lease on the resource."""
        return self.lock_info(resource) is not None

    def locks(self) -> list[LockInfo]:
        """Every live lock, soonest expiry first (for dashboards)."""
        now = self._now()
        query = sa.select(locks_table).where(live_clause()).order_by(locks_table.c.expires_at)
        rows = self._read(lambda conn: conn.execute(query, {"now": now}).all())
        return [LockInfo(row.resource_id, row.owner, float(row.acquired_at),
                         float(row.expires_at), int(row.fence))
                for row in rows if lease_is_live(row, now)]

    @contextlib.contextmanager
    def lock(
        self,
        *resources: Resource | str,
        duration: float | str = DEFAULT_DURATION,
        owner: str | None = None,
        wait: float | str = 0.0,
        auto_refresh: bool = False,
    ) -> Iterator[Any]:
        """Hold locks for a block: ``with registry.lock(a, b) as (a, b): a.decrease_quantity(1)``.

        Yields a :class:`LockedResource` (one resource) or a tuple of them,
        in the order given; their methods pass the lease's token for you.
        ``auto_refresh=True`` renews the lease from a background thread every
        third of ``duration`` until the block ends (the thread always stops
        with the block). Leaving the block releases the locks; if the lease
        was lost meanwhile, :class:`StaleLockError` says so.
        """
        lease = self.acquire_lock(*resources, duration=duration, owner=owner, wait=wait)
        refresher = _Refresher(self, lease) if auto_refresh else None
        if refresher is not None:
            refresher.start()
        ok = False
        try:
            handles = tuple(LockedResource(self, rid(r), lease) for r in resources)
            yield handles[0] if len(handles) == 1 else handles
            ok = True
        finally:
            lost: BaseException | None = None
            if refresher is not None:
                refresher.stop()
                lost = refresher.error
            released = self.release_lock(refresher.lease if refresher is not None else lease)
            if ok and (lost is not None or not released):
                raise StaleLockError(
                    f"the lock on {', '.join(lease.resource_ids)} was lost before the block "
                    "ended (it expired); writes after that were refused. Use a longer duration "
                    "or auto_refresh=True."
                ) from lost


class LockedResource:
    """A resource seen through a lease: its methods pass the token; fields read through.

    ``handle.quantity`` reads the snapshot taken at the last call (``refresh()``
    re-reads it).
    """

    def __init__(self, registry: Any, resource_id: str, lease: Lease) -> None:
        self._registry = registry
        self._lease = lease
        self.id = resource_id
        self.resource: Resource = registry.get(resource_id)

    @property
    def token(self) -> str:
        return self._lease.token

    @property
    def lease(self) -> Lease:
        return self._lease

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.resource, name)

    def refresh(self) -> Resource:
        self.resource = self._registry.get(self.id)
        return self.resource

    def update(self, **changes: Any) -> Resource:
        self.resource = self._registry.update(self.id, token=self.token, **changes)
        return self.resource

    def increase_quantity(self, amount: float) -> Resource:
        self.resource = self._registry.increase_quantity(self.id, amount, token=self.token)
        return self.resource

    def decrease_quantity(self, amount: float) -> Resource:
        self.resource = self._registry.decrease_quantity(self.id, amount, token=self.token)
        return self.resource

    def set_child(self, key: Any, child: Resource | str, *, move: bool = False) -> Resource:
        return self._registry.set_child(self.id, key, child, token=self.token, move=move)

    def push(self, child: Resource | str, *, move: bool = False) -> Resource:
        return self._registry.push(self.id, child, token=self.token, move=move)

    def pop(self) -> Resource:
        return self._registry.pop(self.id, token=self.token)

    def remove_child(self, key: Any = None) -> Resource:
        return self._registry.remove_child(self.id, key, token=self.token)

    def get_child(self, key: Any = None) -> Resource | None:
        return self._registry.get_child(self.id, key)

    def children(self) -> list[Resource]:
        return self._registry.children(self.id)

    def __repr__(self) -> str:
        return f"<locked {self.resource!r}>"


class _Refresher:
    """Renews a lease every third of its length until stopped (``auto_refresh=True``)."""

    def __init__(self, registry: LockOps, lease: Lease) -> None:
        self._registry = registry
        self.lease = lease
        self.error: BaseException | None = None
        self._length = lease.expires - lease.acquired
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"resman-lock-refresh-{lease.resource_ids[0]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._length / 3):
            try:
                self.lease = self._registry.refresh_lock(self.lease, self._length)
            except StaleLockError as exc:
                self.error = exc  # lost for good; the block learns it on exit
                return
            except Exception as exc:  # noqa: BLE001 - a busy or briefly unreachable database:
                # the lease is still valid for a while; try again next tick.
                log.debug("refreshing %s failed, retrying: %s", self.lease, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _lease_duration(duration: float | str) -> float:
    seconds = parse_duration(duration, name="duration")
    if not 0 < seconds <= MAX_LEASE:
        raise RegistryValueError(
            f"duration={duration!r}: a lease lasts more than 0 s and at most a day; for longer "
            "work use registry.lock(..., auto_refresh=True)"
        )
    return seconds


def _held_message(holders: list[Any], now: float, waited: float) -> str:
    parts = [
        f"{row.resource_id} by {row.owner!r} until "
        f"{_dt.datetime.fromtimestamp(float(row.expires_at)):%H:%M:%S} "
        f"({float(row.expires_at) - now:.0f}s left)"
        for row in holders
    ] or ["(the holder released it just now; try again)"]
    return (f"could not lock within {waited:g}s: locked {'; '.join(parts)}. Wait longer "
            "(wait=seconds), or let the lease expire")
