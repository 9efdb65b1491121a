"""Code the fault tests run in other processes (importable, so ``spawn`` can start it).

Each worker opens its own Session on the same home and registry URL, as a
second kernel or the Jupyter server would, and reports through a queue.
"""

from __future__ import annotations

import os
import sqlite3
import time
import traceback
from typing import Any

import sqlalchemy as sa

import jupyter_resman as resman
from jupyter_resman.core.registry import Consumable


def _session(home: str, url: str | None, **kw: Any) -> resman.Session:
    return resman.Session(home=home, registry_url=url, **kw)


def _report(queue: Any, fn: Any) -> None:
    """Run ``fn`` and put ``("ok", result)`` or ``("error", type name, text)`` on ``queue``."""
    try:
        queue.put(("ok", fn()))
    except BaseException as exc:  # noqa: BLE001 - report everything: the parent asserts on it
        queue.put(("error", type(exc).__name__, f"{exc}\n{traceback.format_exc()}"))


def open_registry(home: str, url: str | None, start: Any, queue: Any) -> None:
    """Open the registry as soon as ``start`` fires (races the schema migration)."""

    def run() -> bool:
        start.wait(30)
        with _session(home, url) as s:
            migrated = s.registry.migrated
            s.registry.add(Consumable(name=f"from {os.getpid()}", quantity=1))
            return migrated

    _report(queue, run)


def decrement(home: str, url: str | None, resource_id: str, times: int, queue: Any) -> None:
    """``times`` × ``decrease_quantity(1)`` with no lock of ours: the registry must serialize."""

    def run() -> int:
        with _session(home, url) as s:
            for _ in range(times):
                s.registry.decrease_quantity(resource_id, 1)
        return times

    _report(queue, run)


def locked_increment(home: str, url: str | None, ids: list[str], times: int, queue: Any) -> None:
    """Read a counter, then write it + 1, under a lock on several resources.

    The read and the write are separate transactions, so only the lock keeps
    two processes from reading the same value (a lost update).
    """

    def run() -> int:
        with _session(home, url) as s:
            reg = s.registry
            for _ in range(times):
                with reg.lock(*ids, duration=30, wait=60) as handles:
                    first = handles[0]
                    value = first.refresh().attributes["counter"]
                    first.update(attributes={"counter": value + 1})
                    handles[1].increase_quantity(1)
        return times

    _report(queue, run)


def init_resource(home: str, url: str | None, start: Any, queue: Any) -> None:
    """Idempotent ``init`` of one definition, raced by several processes."""

    def run() -> str:
        start.wait(30)
        with _session(home, url) as s:
            return s.registry.init(Consumable(name="shared buffer", resource_class="buffer",
                                              quantity=5)).id

    _report(queue, run)


def hold_write_lock(home: str, url: str | None, resource_id: str, ready: Any, release: Any,
                    queue: Any) -> None:
    """Hold the database's write lock (SQLite) or the resource's row lock (PostgreSQL)."""

    def run() -> str:
        if url is None:
            conn = sqlite3.connect(os.path.join(home, "registry.sqlite"), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            ready.set()
            release.wait(60)
            conn.execute("ROLLBACK")
            conn.close()
            return "released"
        with _session(home, url) as s:
            db = s.registry._db
            with db.transaction() as conn:
                conn.execute(sa.text("SELECT id FROM resources WHERE id = :id FOR UPDATE"),
                             {"id": resource_id})
                ready.set()
                release.wait(60)
        return "released"

    _report(queue, run)


def hold_lease_forever(home: str, url: str | None, resource_id: str, duration: float,
                       queue: Any) -> None:
    """Take a lease, report it, then hang until killed (SIGKILL: no cleanup runs)."""
    s = _session(home, url)
    lease = s.registry.acquire_lock(resource_id, duration=duration, owner="doomed kernel")
    queue.put(("ok", lease.expires))
    while True:
        time.sleep(1)


def late_holder(home: str, url: str | None, resource_id: str, duration: float, go: Any,
                queue: Any) -> None:
    """Take a short lease, wait past its expiry until told, then try to release and write."""

    def run() -> dict[str, str]:
        with _session(home, url) as s:
            reg = s.registry
            lease = reg.acquire_lock(resource_id, duration=duration, owner="process A")
            queue.put(("ok", "acquired"))
            go.wait(60)
            out = {"released": str(reg.release_lock(lease))}
            try:
                reg.decrease_quantity(resource_id, 1, token=lease.token)
                out["write"] = "accepted"
            except Exception as exc:  # noqa: BLE001 - the test asserts which error it was
                out["write"] = type(exc).__name__
            try:
                reg.update(resource_id, token=lease.token, attributes={"by": "A"})
                out["update"] = "accepted"
            except Exception as exc:  # noqa: BLE001
                out["update"] = type(exc).__name__
            return out

    _report(queue, run)


def use_inherited_registry(registry: Any, resource_id: str, times: int, queue: Any) -> None:
    """Forked child: keep using the registry object the parent had open."""

    def run() -> dict[str, Any]:
        for _ in range(times):
            registry.decrease_quantity(resource_id, 1)
        info: dict[str, Any] = {"pool": id(registry._db.engine.pool)}
        if registry.backend == "postgresql":
            info["backend_pid"] = registry._db.run(
                lambda c: c.execute(sa.text("SELECT pg_backend_pid()")).scalar(), write=False)
        return info

    _report(queue, run)
