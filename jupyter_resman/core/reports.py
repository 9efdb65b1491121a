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
    ResourceNotFoundError,
)
from .gpu import GpuReader
from .keys import check_namespace, encode_key
from .limits import DEFAULT_WARN_AT, LEVELS, level_for, ratio_of
from .settings import parse_duration
from .usage import ProcessTreeSampler, ProcessUsage, SystemSampler, SystemUsage

if TYPE_CHECKING:
    from pathlib import Path

    from .live import LiveStore
    from .registry import Registry, Resource
    from .session import Session

__all__ = [
    "REGISTRY_PARAMS",
    "KernelInfo",
    "MetricsSampler",
    "cache_report",
    "checkpoints_report",
    "clear_cache",
    "delete_checkpoint",
    "existing_registry",
    "metrics_report",
    "progress_report",
    "registry_item_report",
    "registry_report",
    "resource_id_of",
    "resources_report",
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


# -- registry ----------------------------------------------------------------------------

#: Query parameters of ``GET /resman/api/registry`` (``class`` is ``resource_class``).
REGISTRY_PARAMS = ("kind", "class", "name", "parent", "removed", "limit", "offset", "order")
#: Resources on one page of the registry list by default...
REGISTRY_PAGE = 50
#: ...and at most (a page is serialized whole, on every poll of the sidebar).
REGISTRY_MAX_PAGE = 500
#: Direct children listed with one resource (``children_total`` counts them all).
CHILDREN_LIMIT = 100
#: Newest history entries listed with one resource.
HISTORY_LIMIT = 20
_REGISTRY_ORDERS = ("created_at", "updated_at", "name", "kind", "resource_class", "id")
_REMOVED = {"false": False, "0": False, "no": False, "true": True, "1": True, "yes": True,
            "any": None, "all": None}


def existing_registry(session: Session) -> Registry | None:
    """The session's registry, or ``None`` while the home has none (see
    :meth:`Session.existing_registry`: looking never creates ``registry.sqlite``).

    >>> import tempfile
    >>> from jupyter_resman.core import Session
    >>> with Session(home=tempfile.mkdtemp()) as s:
    ...     existing_registry(s) is None, s.home.registry_db.exists()
    (True, False)
    """
    return session.existing_registry()


def registry_report(session: Session, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One page of registry resources matching ``params``, and how many match in all.

    ``params`` holds the query parameters of :data:`REGISTRY_PARAMS` as
    strings (absent or ``""``: no filter): ``kind`` (a kind or
    ``container``), ``class``, ``name`` (text the name contains, or a
    pattern of the whole name with ``*`` wildcards), ``parent`` (an id: its
    direct children), ``removed`` (``false``, ``true`` or ``any``),
    ``limit``, ``offset`` and ``order`` (a field, ``-`` first for newest or
    largest first; default ``-created_at``). A malformed one raises
    :class:`RequestError`. Without a registry in the home the page is empty
    and ``exists`` is false; nothing is created.

    >>> import tempfile
    >>> from jupyter_resman.core import Session
    >>> with Session(home=tempfile.mkdtemp()) as s:
    ...     report = registry_report(s, {"kind": "asset"})
    ...     report["exists"], report["resources"], report["total"]
    (False, [], 0)
    """
    from .registry.resources import KINDS  # SQLAlchemy: only when the registry is asked for

    params = {} if params is None else params
    filters: dict[str, Any] = {"removed": _removed(_param(params, "removed"))}
    kind = _param(params, "kind")
    if kind is not None:
        if kind.lower() not in KINDS and kind.lower() != "container":
            raise RequestError(f"kind={kind!r} is not a kind; use one of "
                               f"{', '.join(sorted(KINDS))} or container")
        filters["kind"] = kind.lower()
    resource_class = _param(params, "class")
    if resource_class is not None:
        filters["resource_class"] = resource_class
    name = _param(params, "name")
    if name is not None:
        filters["name"] = name if "*" in name else f"*{name}*"
    parent = _param(params, "parent")
    if parent is not None:
        filters["parent"] = resource_id_of(parent, "parent")
    limit = _whole(_param(params, "limit"), "limit", REGISTRY_PAGE, 1, REGISTRY_MAX_PAGE)
    offset = _whole(_param(params, "offset"), "offset", 0, 0, None)
    order = _param(params, "order") or "-created_at"
    if order.lstrip("-") not in _REGISTRY_ORDERS:
        raise RequestError(f"order={order!r}: use one of {', '.join(_REGISTRY_ORDERS)}, "
                           "with - first for the reverse order (e.g. -created_at)")
    registry = existing_registry(session)
    out: dict[str, Any] = {
        "exists": registry is not None,
        "location": registry.url if registry is not None else str(session.home.registry_db),
        "kinds": [*sorted(KINDS), "container"],
        "limit": limit, "offset": offset, "order": order,
    }
    if registry is None:
        return {**out, "resources": [], "total": 0}
    total = registry.count(**filters)
    rows: list[Resource] = registry.query(  # type: ignore[assignment]
        **filters, order_by=order, limit=limit, offset=offset)
    return {**out, "resources": [r.to_dict() for r in rows], "total": total}


def registry_item_report(session: Session, resource_id: Any) -> dict[str, Any]:
    """One resource (removed ones too), where it sits, what it holds, and its recent history.

    * ``resource``: ``Resource.to_dict()``;
    * ``hierarchy``: ``resource_id``, ``ancestor_ids`` (the parent first) and
      ``descendants`` (how many resources are inside it, at any depth);
      ``None`` for a removed resource;
    * ``ancestors``: those ancestors' ``to_dict()``, in the same order;
    * ``children``: the first :data:`CHILDREN_LIMIT` resources directly
      inside, oldest first; ``children_total`` counts them all;
    * ``history``: the newest :data:`HISTORY_LIMIT` changes, newest first
      (``HistoryEntry.to_dict()`` plus ``changes``: ``{field: [old, new]}``).

    A malformed id raises :class:`RequestError`, an unknown one
    :class:`~.errors.ResourceNotFoundError`.
    """
    wanted = resource_id_of(resource_id, "id")
    registry = existing_registry(session)
    if registry is None:
        raise ResourceNotFoundError(f"no resource with id {wanted!r}: there is no registry in "
                                    f"{session.home.root} yet")
    resource = registry.get(wanted, include_removed=True)
    history: list[Any] = registry.history(  # type: ignore[assignment]
        wanted, newest_first=True, limit=HISTORY_LIMIT)
    place: dict[str, Any] | None = None
    ancestors: list[Resource] = []
    children: list[Resource] = []
    children_total = 0
    if resource.removed is None:
        hierarchy = registry.hierarchy(wanted)
        ancestors = [registry.get(a, include_removed=True) for a in hierarchy.ancestor_ids]
        children_total = len(hierarchy.descendant_ids.get(wanted, ()))
        if children_total:
            children = registry.query(  # type: ignore[assignment]
                parent=wanted, order_by="created_at", limit=CHILDREN_LIMIT)
        # Not the descendant ids themselves: a freezer can hold 100,000 samples.
        place = {"resource_id": wanted, "ancestor_ids": list(hierarchy.ancestor_ids),
                 "descendants": sum(len(ids) for ids in hierarchy.descendant_ids.values())}
    return {
        "resource": resource.to_dict(),
        "hierarchy": place,
        "ancestors": [a.to_dict() for a in ancestors],
        "children": [c.to_dict() for c in children],
        "children_total": children_total,
        "history": [{**entry.to_dict(),
                     "changes": {k: list(v) for k, v in entry.changes().items()}}
                    for entry in history],
    }


def resource_id_of(value: Any, name: str) -> str:
    """A registry id (a ULID) in its canonical upper-case form, or :class:`RequestError`.

    >>> resource_id_of("01m8madfde0rqhz5476592cwcz", "id")
    '01M8MADFDE0RQHZ5476592CWCZ'
    """
    from ulid import ULID

    try:
        if not isinstance(value, str):
            raise TypeError
        return str(ULID.from_str(value.strip()))
    except (TypeError, ValueError):
        raise RequestError(f"{name}={str(value)[:60]!r} is not a registry id; ids are 26-letter "
                           "ULIDs such as 01J9ZQ3V5X7K2M4N6P8R0T2W4Y "
                           "(GET /resman/api/registry lists them)") from None


def _param(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text, not {type(value).__name__}")
    value = value.strip()
    return value or None


def _removed(value: str | None) -> bool | None:
    if value is None:
        return False
    try:
        return _REMOVED[value.lower()]
    except KeyError:
        raise RequestError(f"removed={value!r}: use false (live resources, the default), "
                           "true (removed ones) or any") from None


def _whole(value: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(f"{name}={value!r} must be a whole number {bounds}")
    return number


# -- resource providers -----------------------------------------------------------------------

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
    from .resources.feed import published

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
