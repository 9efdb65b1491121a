"""Plain-data reports of a session: what the REST API (and any other front end) shows.

Each function takes a :class:`~.session.Session` and returns JSON-able dicts
and lists (``str``, ``int``, ``float``, ``bool``, ``None``), so the Jupyter
server's handlers only translate HTTP, and the sidebar, the widgets and the
CLI agree on every figure. The shapes are documented in ``docs/rest-api.md``.

What the core cannot know — which kernels the Jupyter server runs, their pids
and notebook paths — comes in as plain :class:`KernelInfo` records.

>>> import tempfile
>>> from jupyter_resman.core import Session
>>> with Session(home=tempfile.mkdtemp()) as s:
...     s.cache.set("k", 1, namespace="emb")
...     clear_cache(s, {"namespace": "emb"})
{'removed': 1}
>>> with Session(home=tempfile.mkdtemp()) as s:
...     clear_cache(s, {"colour": "red"})
Traceback (most recent call last):
...
jupyter_resman.core.errors.RequestError: unknown field(s) colour in the clear request; use all, keys, namespace, older_than, tags
>>> KernelInfo.coerce({"id": "k1", "pid": 42}).pid
42
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import (
    CacheKeyError,
    CheckpointNotFoundError,
    ConfigError,
    RequestError,
    ResmanError,
)
from .gpu import GpuReader
from .keys import check_namespace, encode_key
from .limits import DEFAULT_WARN_AT, LEVELS, level_for, ratio_of
from .settings import parse_duration
from .usage import ProcessTreeSampler, ProcessUsage, SystemSampler, SystemUsage

if TYPE_CHECKING:
    from pathlib import Path

    from .live import LiveStore
    from .session import Session

__all__ = [
    "KernelInfo",
    "MetricsSampler",
    "cache_report",
    "checkpoints_report",
    "clear_cache",
    "delete_checkpoint",
    "metrics_report",
    "progress_report",
]

#: Monitor samples of a kernel shown by default: the last five minutes...
SAMPLE_WINDOW_S = 300.0
#: ...in at most this many points per kernel (a sidebar sparkline needs no
#: more, and serializing thousands of points would dominate the request).
MAX_POINTS = 150
#: Entries of processes that exited are dropped from the live feed this often.
PRUNE_EVERY_S = 60.0
#: The cache's hit/miss history covers this much by default.
HISTORY_S = 86400.0
#: Fields a kernel's sample carries in the metrics report (the rest stays in the feed).
SAMPLE_FIELDS = ("t", "rss", "cpu_percent")

_CLEAR_FIELDS = ("all", "keys", "namespace", "older_than", "tags")

log = logging.getLogger("jupyter_resman.server")


# -- kernels -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelInfo:
    """What the Jupyter server knows about one kernel (``pid`` is ``None`` when remote)."""

    kernel_id: str
    name: str | None = None
    pid: int | None = None
    path: str | None = None
    execution_state: str | None = None

    @classmethod
    def coerce(cls, value: KernelInfo | Mapping[str, Any]) -> KernelInfo:
        """A :class:`KernelInfo` from itself or a mapping (``kernel_id`` or ``id``)."""
        if isinstance(value, KernelInfo):
            return value
        pid = value.get("pid")
        return cls(
            kernel_id=str(value.get("kernel_id", value.get("id"))),
            name=value.get("name"), pid=int(pid) if pid else None, path=value.get("path"),
            execution_state=value.get("execution_state"),
        )


# -- metrics -----------------------------------------------------------------------


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


# -- cache -------------------------------------------------------------------------


def cache_report(session: Session, since: float | str | None = None, *,
                 now: float | None = None) -> dict[str, Any]:
    """Cache totals, per-namespace figures and the per-minute hit/miss history.

    ``since`` (epoch seconds) starts the history; the default is the last day.
    """
    now = time.time() if now is None else now
    after = _since(since, "since")
    cache = session.cache
    stats = cache.stats().to_dict()
    namespaces = stats.pop("namespaces")
    frame = cache.history(since=now - HISTORY_S if after is None else after)
    seconds = frame["time"].map(lambda ts: ts.timestamp()).tolist() if len(frame) else []
    history = [
        {"time": t, "namespace": ns, "hits": int(hits), "misses": int(misses), "sets": int(sets),
         "evictions": int(evictions), "time_saved_s": float(saved)}
        for t, ns, hits, misses, sets, evictions, saved in zip(
            seconds, frame["namespace"], frame["hits"], frame["misses"], frame["sets"],
            frame["evictions"], frame["time_saved_s"])
    ]
    return {
        "stats": stats,
        "namespaces": [{"namespace": name, **figures} for name, figures in namespaces.items()],
        "history": history,
    }


def clear_cache(session: Session, body: Any) -> dict[str, int]:
    """Remove the entries a request names; returns ``{"removed": n}``.

    ``body`` is a decoded JSON object with any of ``namespace`` (str),
    ``tags`` (list of str: entries with any of them), ``older_than`` (seconds
    or a duration like ``"7d"``) and ``all`` (``true``); conditions combine
    like :meth:`Cache.clear` (all must hold). ``keys`` (a list of JSON
    scalars, arrays standing for tuples) deletes those keys, optionally in
    ``namespace``, and combines with nothing else. Anything else raises
    :class:`RequestError` before anything is removed.
    """
    if not isinstance(body, Mapping):
        raise RequestError(
            "the clear request must be a JSON object, e.g. {\"namespace\": \"emb\"}, "
            "{\"tags\": [\"exp1\"]}, {\"keys\": [\"k1\"]} or {\"all\": true}"
        )
    unknown = sorted(set(body) - set(_CLEAR_FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(str, unknown))} in the clear "
                           f"request; use {', '.join(_CLEAR_FIELDS)}")
    if not body:
        raise RequestError("nothing to clear: send {\"all\": true} to clear the whole cache, or "
                           "name a namespace, tags, keys or older_than")
    namespace = _namespace(body.get("namespace"))
    everything = body.get("all", False)
    if not isinstance(everything, bool):
        raise RequestError(f"all must be true or false, not {everything!r}")
    if "keys" in body:
        extra = sorted(set(body) - {"keys", "namespace"})
        if extra:
            raise RequestError(f"keys combines only with namespace, not with {', '.join(extra)}; "
                               "send two requests")
        keys = _keys(body["keys"])
        cache = session.cache
        return {"removed": sum(cache.delete(key, namespace=namespace) for key in keys)}
    tags = _tags(body["tags"]) if "tags" in body else None
    older_than = _older_than(body["older_than"]) if "older_than" in body else None
    if not everything and namespace is None and tags is None and older_than is None:
        raise RequestError("all=false with no other condition clears nothing; send "
                           "{\"all\": true} to clear the whole cache")
    return {"removed": session.cache.clear(namespace=namespace, tags=tags, older_than=older_than)}


def _namespace(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return check_namespace(value)
    except CacheKeyError as exc:  # a bad name is bad input here, not a missing entry
        raise RequestError(str(exc)) from None


def _tags(value: Any) -> list[str]:
    tags = [value] if isinstance(value, str) else value
    if (not isinstance(tags, list) or not tags
            or not all(isinstance(t, str) and t for t in tags)):
        raise RequestError(f"tags must be a non-empty list of non-empty strings, not {value!r}")
    return tags


def _older_than(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RequestError(f"older_than must be seconds or a duration like '7d', not {value!r}")
    try:
        return parse_duration(value, name="older_than")
    except ConfigError as exc:
        raise RequestError(str(exc)) from None


def _keys(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise RequestError(f"keys must be a non-empty list, not {value!r}")
    keys = [_key(k) for k in value]
    for key in keys:
        try:
            encode_key(key)
        except CacheKeyError as exc:
            raise RequestError(f"cannot use {key!r} as a cache key: {exc}") from None
    return keys


def _key(value: Any) -> Any:
    # JSON has no tuples: an array stands for the tuple key the kernel used.
    return tuple(_key(v) for v in value) if isinstance(value, list) else value


def _since(value: object, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]  # anything else is rejected below
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise RequestError(f"{name}={value!r} is not a time; use seconds since the epoch, "
                           f"e.g. {name}={int(time.time()) - 3600}")
    return number


# -- progress ------------------------------------------------------------------------


def progress_report(session: Session,
                    kernels: Iterable[KernelInfo | Mapping[str, Any]]) -> dict[str, Any]:
    """Progress trees of every publishing process, matched to kernels by pid.

    Kernels come first, ordered by notebook path; other processes (scripts,
    the CLI) follow with ``kernel_id`` ``None``.
    """
    by_pid = {k.pid: k for k in map(KernelInfo.coerce, kernels) if k.pid is not None}
    rows = []
    for pid, trees in session.live.progress().items():
        kernel = by_pid.get(pid)
        rows.append({
            "pid": pid,
            "kernel_id": kernel.kernel_id if kernel else None,
            "path": kernel.path if kernel else None,
            "trees": trees,
        })
    rows.sort(key=lambda r: (r["kernel_id"] is None, r["path"] or "", r["pid"]))
    return {"kernels": rows}


# -- checkpoints -----------------------------------------------------------------------


def checkpoints_report(session: Session) -> dict[str, Any]:
    """One row per checkpoint name: versions, the newest one's time and description,
    and the bytes all versions take (what deleting it frees)."""
    checkpoints = session.checkpoints
    rows = []
    for name in checkpoints.names():
        versions = checkpoints.versions(name)
        if not versions:
            continue  # deleted by another process since names() listed it
        latest = versions[-1]
        rows.append({
            "name": name, "versions": len(versions), "latest_version": latest.version,
            "time": latest.time, "bytes": sum(v.bytes for v in versions),
            "description": latest.description, "complete": latest.complete,
        })
    return {"checkpoints": rows}


def delete_checkpoint(session: Session, name: Any) -> dict[str, Any]:
    """Delete every version of ``name``; :class:`CheckpointNotFoundError` if it has none.

    The name is validated by the checkpoint store (a bad one raises
    :class:`~.errors.CheckpointNameError`); it maps to a hashed folder, so no
    name reaches outside the home.
    """
    if not isinstance(name, str):
        raise RequestError(f"a checkpoint name must be a string, not {type(name).__name__}")
    removed = session.checkpoints.delete(name)
    if not removed:
        raise CheckpointNotFoundError(f"no checkpoint named {name!r}; "
                                      "GET /resman/api/checkpoints lists them")
    return {"deleted": name, "versions": removed}
