"""Resource providers as kernels publish them (health, pools, owners, metrics)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    from ..session import Session

from ._common import KernelInfo

_HEALTH = ("healthy", "degraded", "unhealthy", "unknown")
_COUNTERS = ("acquisitions", "releases", "failures", "timeouts", "created", "destroyed",
             "invalidated")
_TIMES = ("avg_acquire_s", "avg_hold_s", "max_hold_s")


def resources_report(session: Session, kernels: Iterable[KernelInfo | Mapping[str, Any]], *,
                     now: float | None = None) -> dict[str, Any]:
    """The resource providers each process published, matched to kernels by pid.

    Each kernel's :class:`~.resources.ResourceManager` publishes a snapshot
    to the live feed (after registrations, cells and health checks, and at
    most every few seconds while resources come and go), so the server never
    asks a kernel. Per provider: ``health`` (``None`` until a check ran),
    ``pool`` (in use, idle, waiting, sizes), ``owners`` (who holds what, for
    how long now) and ``metrics``. Rows are ordered like
    :func:`progress_report`; providers by name.
    """
    from ..resources.feed import published

    now = time.time() if now is None else now
    by_pid = {k.pid: k for k in map(KernelInfo.coerce, kernels) if k.pid is not None}
    rows = []
    for pid, snapshot in published(session.live).items():
        if not isinstance(snapshot, Mapping) or not isinstance(snapshot.get("providers"), Mapping):
            continue  # a garbled record (another version, a bug): not worth a 500
        updated = _number(snapshot.get("updated"), now)
        age = max(0.0, now - updated)  # a lease is as old as published, plus this
        providers = [_provider(str(name), info, age)
                     for name, info in sorted(snapshot["providers"].items())]
        kernel = by_pid.get(pid)
        rows.append({
            "pid": pid,
            "kernel_id": kernel.kernel_id if kernel else None,
            "path": kernel.path if kernel else None,
            "updated": updated,
            "providers": providers,
        })
    rows.sort(key=lambda r: (r["kernel_id"] is None, r["path"] or "", r["pid"]))
    return {"time": now, "kernels": rows}


def _provider(name: str, info: Any, age: float) -> dict[str, Any]:
    info = info if isinstance(info, Mapping) else {}
    metrics = info.get("metrics") if isinstance(info.get("metrics"), Mapping) else {}
    pool = info.get("pool") if isinstance(info.get("pool"), Mapping) else {}
    owners: dict[str, dict[str, Any]] = {}
    for lease in info.get("leases") or ():
        if not isinstance(lease, Mapping):
            continue
        held = _number(lease.get("held_s"), 0.0) + age
        owner = str(lease.get("owner", "?"))
        row = owners.setdefault(owner, {"owner": owner, "count": 0, "held_s": 0.0, "leases": []})
        row["count"] += 1
        row["held_s"] = max(row["held_s"], held)
        row["leases"].append({
            "id": lease.get("id"), "held_s": held,
            "acquired_at": _number(lease.get("acquired_at"), None),
            "where": str(lease.get("where") or ""), "thread": str(lease.get("thread") or ""),
        })
    health = info.get("health") if isinstance(info.get("health"), Mapping) else None
    return {
        "name": name,
        "kind": str(info.get("kind") or metrics.get("kind") or ""),
        "target": str(info.get("target") or ""),
        "health": None if health is None else {
            "status": health.get("status") if health.get("status") in _HEALTH else "unknown",
            "message": str(health.get("message") or ""),
            "latency_s": _number(health.get("latency_s"), None),
            "checked_at": _number(health.get("checked_at"), None),
        },
        "pool": {
            "in_use": int(_number(metrics.get("active"), 0)),
            "idle": int(_number(metrics.get("idle"), 0)),
            "waiting": int(_number(metrics.get("waiting"), 0)),
            "peak": int(_number(metrics.get("peak_active"), 0)),
            "min_size": int(_number(pool.get("min_size"), 0)),
            "max_size": int(_number(pool.get("max_size", metrics.get("max_size")), 0)),
        },
        # Longest held first: the owner most likely to have forgotten a release.
        "owners": sorted(owners.values(), key=lambda o: (-o["held_s"], o["owner"])),
        "metrics": {
            **{k: int(_number(metrics.get(k), 0)) for k in _COUNTERS},
            **{k: _number(metrics.get(k), 0.0) for k in _TIMES},
            "provider": _scalars(metrics.get("provider")),
        },
    }


def _number(value: Any, default: Any) -> Any:
    """A finite number from a published record, else ``default`` (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return value


def _scalars(value: Any) -> dict[str, Any]:
    """A provider's own figures, as JSON scalars (anything else as its text)."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or isinstance(item, (str, bool, int)):
            out[str(key)] = item
        elif isinstance(item, float):
            out[str(key)] = item if math.isfinite(item) else None
        else:
            out[str(key)] = str(item)
    return out
