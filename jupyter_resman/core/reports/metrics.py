"""The metrics report: the system and every kernel (memory, CPU, limits, samples)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    ResmanError,
)
from ..gpu import GpuReader
from ..limits import DEFAULT_WARN_AT, LEVELS, level_for, ratio_of
from ..usage import ProcessTreeSampler, ProcessUsage, SystemSampler, SystemUsage

if TYPE_CHECKING:
    from pathlib import Path

    from ..live import LiveStore
    from ..session import Session

from ._common import (
    MAX_POINTS,
    PRUNE_EVERY_S,
    SAMPLE_FIELDS,
    SAMPLE_WINDOW_S,
    KernelInfo,
    _since,
    log,
)


class MetricsSampler:
    """The state that makes repeated metrics reports cheap: keep one per server.

    * a :class:`~.usage.ProcessTreeSampler`, so a kernel's CPU % is the rate
      since the previous report and no call ever sleeps;
    * a :class:`~.usage.SystemSampler` (container limits, GPUs);
    * the monitor samples already read from the live feed, so each report
      decodes only what kernels published since the previous one.

    Thread-safe: a server may build reports from several worker threads.
    """

    def __init__(
        self, path: str | Path | None = None, *, gpu: bool = True,
        gpu_reader: GpuReader | None = None, window: float = SAMPLE_WINDOW_S,
        max_points: int = MAX_POINTS,
    ) -> None:
        self._gpu = gpu_reader if gpu_reader is not None else (GpuReader() if gpu else None)
        self.system = SystemSampler(path, gpu=self._gpu is not None, gpu_reader=self._gpu)
        self.processes = ProcessTreeSampler()
        self.window = float(window)
        self.max_points = int(max_points)
        self._lock = threading.Lock()
        self._feed: LiveStore | None = None
        self._samples: dict[int, list[dict[str, Any]]] = {}  # trimmed, oldest first
        self._pruned = 0.0

    def usage(self, pids: Iterable[int]) -> tuple[SystemUsage, dict[int, ProcessUsage]]:
        """The system and each live process tree now (rates since the previous call)."""
        system = self.system.sample()
        with self._lock:  # ProcessTreeSampler keeps per-pid state and is not thread-safe
            trees = self.processes.sample(pids)
        return system, trees

    def gpu_memory(self) -> dict[int, int]:
        """GPU memory per pid (``{}`` without an NVIDIA driver)."""
        return self._gpu.process_memory() if self._gpu is not None else {}

    def samples(
        self, live: LiveStore, pids: Iterable[int], *, now: float, since: float | None = None,
        publishing: Collection[int] | None = None,
    ) -> dict[int, list[dict[str, Any]]]:
        """Monitor samples published by each of ``pids``, oldest first, thinned.

        The last :attr:`window` seconds, or those newer than ``since``; at most
        :attr:`max_points` per pid (see :func:`thin`). ``publishing``, the pids
        known to have published anything (``live.processes()``), spares a query
        for each kernel that never ran a monitor.
        """
        wanted = set(pids)
        with self._lock:
            if live is not self._feed:  # another session (home): start over
                self._feed, self._samples = live, {}
            if now - self._pruned > PRUNE_EVERY_S:
                self._pruned = now
                try:
                    live.prune_dead()  # drop what exited kernels left, so reads stay small
                except ResmanError as exc:  # housekeeping: never worth failing a report
                    log.warning("could not prune the live feed %s: %s", live.db.path, exc)
            self._refresh(live, wanted, now, publishing)
            start = now - self.window if since is None else max(since, now - self.window)
            out = {}
            for pid in wanted:
                rows = self._samples.get(pid, [])
                first = _first_after(rows, start, strict=since is not None)
                out[pid] = thin(rows[first:], self.max_points)
            return out

    def _refresh(self, live: LiveStore, wanted: set[int], now: float,
                 publishing: Collection[int] | None) -> None:
        """Append what each pid published since the newest sample we hold of it.

        One monitor publishes its samples in time order, so reading each pid
        from its own newest time on is exact (a batch published late still
        comes after what we hold) and decodes only new rows.
        """
        horizon = now - self.window
        for pid in list(self._samples):
            if pid not in wanted:  # the kernel is gone (or its pid was reused: read afresh)
                del self._samples[pid]
        for pid in wanted:
            rows = self._samples.setdefault(pid, [])
            if publishing is not None and pid not in publishing:
                rows.clear()  # never published (or gone from the feed): nothing to read
                continue
            last = rows[-1]["t"] if rows else -math.inf
            found = live.recent_samples(pid, since=max(last, horizon)).get(pid, ())
            rows.extend(s for s in map(_trim, found) if s["t"] > last)
            cut = _first_after(rows, horizon, strict=False)
            if cut:
                del rows[:cut]

    def close(self) -> None:
        """Release NVML; idempotent."""
        self.system.close()


def metrics_report(
    session: Session, kernels: Iterable[KernelInfo | Mapping[str, Any]], sampler: MetricsSampler,
    *, since: float | str | None = None, warning_threshold: float = DEFAULT_WARN_AT,
    now: float | None = None,
) -> dict[str, Any]:
    """System and per-kernel usage, limits and recent monitor samples.

    ``since`` (epoch seconds) returns only samples newer than it, for clients
    that poll incrementally. Kernels whose pid is unknown or gone are listed
    with ``rss``/``cpu_percent`` ``None`` and status ``"unknown"``.
    """
    now = time.time() if now is None else now
    after = _since(since, "since")
    infos = [KernelInfo.coerce(k) for k in kernels]
    pids = [k.pid for k in infos if k.pid is not None]
    system, trees = sampler.usage(pids)
    published = session.live.processes()
    samples = sampler.samples(session.live, pids, now=now, since=after, publishing=published)
    gpu_memory = sampler.gpu_memory() if system.gpus else {}
    rows = []
    for kernel in infos:
        tree = trees.get(kernel.pid) if kernel.pid is not None else None
        info = published.get(kernel.pid, {}) if kernel.pid is not None else {}
        memory_limit = info.get("memory_limit")
        if not isinstance(memory_limit, (int, float)) or memory_limit <= 0:
            memory_limit = None  # none set (or a garbled record: not worth a 500)
        rows.append({
            "kernel_id": kernel.kernel_id, "name": kernel.name, "path": kernel.path,
            "execution_state": kernel.execution_state, "pid": kernel.pid,
            "rss": None if tree is None else tree.rss,
            "cpu_percent": None if tree is None else round(tree.cpu_percent, 1),
            "children": None if tree is None else tree.children,
            "memory_limit": None if memory_limit is None else int(memory_limit),
            "status": _status(tree, system, info),
            "monitoring": bool(info.get("monitoring")),
            "gpu_memory": gpu_memory.get(kernel.pid) if kernel.pid is not None else None,
            "samples": samples.get(kernel.pid, []) if kernel.pid is not None else [],
        })
    return {
        "time": now,
        "warning_threshold": warning_threshold,
        "system": _system(system),
        "kernels": rows,
    }


def _system(system: SystemUsage) -> dict[str, Any]:
    return {
        "memory": {
            "used": system.mem_used, "available": system.mem_available,
            "total": system.mem_total, "percent": round(system.mem_percent, 1),
            "limit": system.container_mem_limit,
        },
        "cpu": {
            "percent": round(system.cpu_percent, 1), "cores": system.cpu_count,
            "limit_cores": system.container_cpus,
        },
        "disk": None if system.disk_total is None else {
            "total": system.disk_total, "used": system.disk_used, "free": system.disk_free,
            "percent": system.disk_percent,
        },
        "gpus": [
            {"index": g.index, "name": g.name, "utilization": g.util_percent,
             "memory_used": g.mem_used, "memory_total": g.mem_total,
             "temperature": g.temperature, "power_w": g.power_w}
            for g in system.gpus
        ],
    }


def _status(tree: ProcessUsage | None, system: SystemUsage, info: Mapping[str, Any]) -> str:
    """The worst level of the limits the kernel published (no hysteresis: a snapshot)."""
    if tree is None:
        return "unknown"
    limits = dict(info.get("limits") or {})
    if not limits and info.get("memory_limit"):
        limits["memory"] = info["memory_limit"]
    try:
        warn_at = float(info.get("warn_at") or DEFAULT_WARN_AT)
    except (TypeError, ValueError):
        warn_at = DEFAULT_WARN_AT
    measured = {
        "memory": float(tree.rss),
        "memory_percent": 100.0 * tree.rss / system.mem_total if system.mem_total else None,
        "cpu_percent": tree.cpu_percent / system.cpu_count if system.cpu_count else None,
        "disk_free": None if system.disk_free is None else float(system.disk_free),
    }
    worst = 0
    for name, limit in limits.items():
        usage = measured.get(name)
        if usage is None or not isinstance(limit, (int, float)) or limit <= 0:
            continue  # a limit we cannot judge from here (or a garbled record)
        worst = max(worst, level_for(ratio_of(name, usage, float(limit)), warn_at=warn_at))
    return LEVELS[worst]


def _trim(sample: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {field: sample.get(field) for field in SAMPLE_FIELDS}
    out["t"] = round(float(sample["t"]), 3)  # every published sample has a time
    if isinstance(out["cpu_percent"], float):
        out["cpu_percent"] = round(out["cpu_percent"], 1)
    return out


def _first_after(rows: list[dict[str, Any]], start: float, *, strict: bool) -> int:
    """Index of the first row with ``t >= start`` (``> start`` when ``strict``)."""
    lo, hi = 0, len(rows)
    while lo < hi:
        mid = (lo + hi) // 2
        t = rows[mid]["t"]
        if t > start or (not strict and t == start):
            hi = mid
        else:
            lo = mid + 1
    return lo


def thin(rows: list[dict[str, Any]], max_points: int) -> list[dict[str, Any]]:
    """At most ``max_points`` rows: consecutive rows merged, keeping peaks.

    Each merged point has the time of its last sample and the maximum of
    every other field, so a memory spike between two points stays visible.

    >>> rows = [{"t": float(i), "rss": i % 3} for i in range(6)]
    >>> thin(rows, 3)
    [{'t': 1.0, 'rss': 1}, {'t': 3.0, 'rss': 2}, {'t': 5.0, 'rss': 2}]
    """
    if len(rows) <= max_points:
        return list(rows)
    size = math.ceil(len(rows) / max_points)
    # Buckets are aligned to the newest sample, so the latest point is always exact.
    bounds = [(max(0, end - size), end) for end in range(len(rows), 0, -size)][::-1]
    merged: list[dict[str, Any]] = [{"t": rows[end - 1]["t"]} for _, end in bounds]
    for key in [k for k in rows[-1] if k != "t"]:
        column: list[Any] = [r.get(key) for r in rows]
        if None in column:  # a field some samples lack: the maximum of those that have it
            for point, (start, end) in zip(merged, bounds):
                values = [v for v in column[start:end] if v is not None]
                point[key] = max(values) if values else None
        else:
            for point, (start, end) in zip(merged, bounds):
                point[key] = max(column[start:end])
    return merged
