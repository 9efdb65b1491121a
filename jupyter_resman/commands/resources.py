"""``resman resources [health|owners|metrics|release]``: providers, who holds what, how they do.

In a kernel (``%resman resources``) the session's own providers are checked
live; every other process that registered providers (other kernels) shows
what it last published to the home's live feed, so the command also works
from a terminal.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd

from ..core.errors import ResmanError
from ..core.resources import published
from .cache import Declined
from .output import Output


class NothingToRelease(ResmanError, ValueError):
    """``resources release`` without ``--owner`` or ``--all``: refuse rather than guess."""


def register(sub: Any) -> None:
    resources = sub.add_parser("resources", help="resource providers: health, owners, metrics")
    resources.add_argument("--no-check", action="store_true",
                           help="do not run health checks; show the last known health")
    resources.set_defaults(handler=resources_overview)
    actions = resources.add_subparsers(title="actions", metavar="ACTION",
                                       parser_class=type(resources))
    actions.add_parser("show", help="one row per provider (default)").set_defaults(
        handler=resources_overview)
    actions.add_parser("health", help="run every health check now").set_defaults(
        handler=resources_health)
    actions.add_parser("owners", help="every resource held now, by owner").set_defaults(
        handler=resources_owners)
    actions.add_parser("metrics", help="acquisitions, failures, times, provider figures") \
        .set_defaults(handler=resources_metrics)
    release = actions.add_parser("release", help="give back what an owner holds (this process)")
    release.add_argument("--owner", help="only what this owner holds, e.g. cell-7")
    release.add_argument("--all", action="store_true", help="everything this process holds")
    release.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    release.set_defaults(handler=resources_release)


def _snapshots(session: Any, *, check: bool) -> dict[int, dict[str, Any]]:
    """``{pid: snapshot}``: this process first (checked live when asked), then the others."""
    manager = session.resources
    if check and len(manager):
        manager.health()
    out: dict[int, dict[str, Any]] = {}
    if len(manager):
        mine = manager.snapshot()
        out[mine["pid"]] = mine
    out.update(published(session.live, include_self=False))
    return out


def _rows(snapshots: dict[int, dict[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(pid, name, info) for pid, snap in snapshots.items()
            for name, info in snap.get("providers", {}).items()]


def resources_overview(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    snapshots = _snapshots(session, check=not getattr(args, "no_check", False))
    rows = []
    for pid, name, info in _rows(snapshots):
        m = info.get("metrics") or {}
        rows.append({
            "resource": name, "pid": pid, "kind": info.get("kind", ""),
            "target": info.get("target", ""), "health": _health(info.get("health")),
            "in use": f"{m.get('active', 0)}/{m.get('max_size', '?')}",
            "idle": m.get("idle", 0), "waiting": m.get("waiting", 0),
            "owners": _owners(info.get("leases", [])),
            "acquired": m.get("acquisitions", 0), "failures": m.get("failures", 0),
            "timeouts": m.get("timeouts", 0),
            "avg wait": _seconds(m.get("avg_acquire_s", 0.0)),
            "avg hold": _seconds(m.get("avg_hold_s", 0.0)),
        })
    columns = ["resource", "pid", "kind", "target", "health", "in use", "idle", "waiting",
               "owners", "acquired", "failures", "timeouts", "avg wait", "avg hold"]
    message = None if rows else ("No resource providers. Register one with "
                                 "session.resources.register_provider(name, provider).")
    return Output(title=f"Resources of {len(snapshots)} process(es)",
                  table=pd.DataFrame(rows, columns=columns), message=message,
                  data={str(pid): snap for pid, snap in snapshots.items()})


def resources_health(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    snapshots = _snapshots(session, check=True)
    rows, data = [], []
    for pid, name, info in _rows(snapshots):
        health = info.get("health") or {}
        latency = health.get("latency_s")
        rows.append({"resource": name, "pid": pid, "status": health.get("status", "unknown"),
                     "latency": _seconds(latency) if latency is not None else "",
                     "checked": _when(health.get("checked_at")),
                     "message": health.get("message", "not checked")})
        data.append({"resource": name, "pid": pid, **health})
    columns = ["resource", "pid", "status", "latency", "checked", "message"]
    bad = [r["resource"] for r in rows if r["status"] != "healthy"]
    message = (f"Not healthy: {', '.join(bad)}." if bad else
               "All healthy." if rows else "No resource providers.")
    return Output(title="Resource health", table=pd.DataFrame(rows, columns=columns),
                  message=message, data=data)


def resources_owners(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    snapshots = _snapshots(session, check=False)
    rows = []
    for pid, name, info in _rows(snapshots):
        for lease in info.get("leases", []):
            rows.append({"resource": name, "pid": pid, "owner": lease.get("owner", ""),
                         "held for": _seconds(_held(lease, snapshots[pid])),
                         "thread": lease.get("thread", ""), "taken at": lease.get("where", "")})
    columns = ["resource", "pid", "owner", "held for", "thread", "taken at"]
    return Output(title=f"{len(rows)} resource(s) held", table=pd.DataFrame(rows, columns=columns),
                  data=rows)


def resources_metrics(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    snapshots = _snapshots(session, check=False)
    rows, data = [], []
    for pid, name, info in _rows(snapshots):
        m = info.get("metrics") or {}
        provider = m.get("provider") or {}
        rows.append({
            "resource": name, "pid": pid, "acquired": m.get("acquisitions", 0),
            "released": m.get("releases", 0), "failures": m.get("failures", 0),
            "timeouts": m.get("timeouts", 0), "created": m.get("created", 0),
            "destroyed": m.get("destroyed", 0), "replaced": m.get("invalidated", 0),
            "peak": m.get("peak_active", 0),
            "avg wait": _seconds(m.get("avg_acquire_s", 0.0)),
            "avg hold": _seconds(m.get("avg_hold_s", 0.0)),
            "max hold": _seconds(m.get("max_hold_s", 0.0)),
            "provider": ", ".join(f"{k}={v}" for k, v in provider.items()),
        })
        data.append({"resource": name, "pid": pid, **m})
    columns = ["resource", "pid", "acquired", "released", "failures", "timeouts", "created",
               "destroyed", "replaced", "peak", "avg wait", "avg hold", "max hold", "provider"]
    return Output(title="Resource metrics", table=pd.DataFrame(rows, columns=columns), data=data)


def resources_release(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    if not args.all and args.owner is None:
        raise NothingToRelease("say whose resources to release: --owner OWNER, or --all for "
                               "everything this process holds")
    manager = session.resources
    owner = None if args.all else args.owner
    held = manager.leases(owner=owner)
    if not held:
        return Output(message="Nothing to release: no resource is held"
                      + (f" by {owner}." if owner else "."), data={"released": 0})
    what = f"{len(held)} resource(s)" + (f" held by {owner}" if owner else "")
    if not args.yes and not ui.confirm(f"Release {what}? Code still using them will fail."):
        raise Declined("Nothing released.")
    released = manager.release_all(owner)
    return Output(message=f"Released {released} resource(s).", data={"released": released})


def _health(health: dict[str, Any] | None) -> str:
    return "not checked" if not health else str(health.get("status", "unknown"))


def _owners(leases: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for lease in leases:
        counts[lease.get("owner", "?")] = counts.get(lease.get("owner", "?"), 0) + 1
    return ", ".join(f"{o} ({n})" if n > 1 else o for o, n in counts.items()) or "-"


def _held(lease: dict[str, Any], snapshot: dict[str, Any]) -> float:
    # A published lease is as old as it was then, plus the time since it was published.
    return float(lease.get("held_s", 0.0)) + max(0.0, time.time() - snapshot.get("updated",
                                                                                 time.time()))


def _seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs" if s else "0"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def _when(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""
