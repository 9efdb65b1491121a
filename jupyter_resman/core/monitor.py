"""The resource monitor of a session: samples, history, peaks, limits, live feed.

``session.monitor`` samples this process *and its children* (a kernel's
multiprocessing or joblib workers count as the kernel's), the system with
container limits applied, the home's disk and the network, and NVIDIA GPUs
when a driver is present — all through the one sampling path of
:mod:`.usage`, the same one the Jupyter server uses.

>>> import tempfile
>>> from jupyter_resman.core import Session
>>> with Session(home=tempfile.mkdtemp()) as s:
...     sample = s.monitor.sample()
...     sample.rss > 0, "sys_mem_percent" in sample.to_dict()
(True, True)

``start(interval=1.0)`` runs one daemon thread that keeps a bounded history
(an hour at 1 Hz by default), tracks peaks, checks limits and publishes its
samples to the home's live feed every few seconds, where the Jupyter server
draws per-kernel graphs without asking the kernel.

Keys of :meth:`Sample.to_dict` (also the columns of :meth:`Monitor.history`):

========================================  ==============================================
``t``, ``pid``                            time (Unix seconds), process id
``rss``, ``rss_self``, ``uss``            bytes: process + children, process alone,
                                          unique memory (``uss`` only if asked for)
``rss_percent``                           ``rss`` as % of ``sys_mem_total``
``cpu_percent``                           process + children, % of one core (as top)
``cpu_capacity_percent``                  the same as % of ``cpu_count`` cores
``threads``, ``children``                 counts over the process tree
``mem_limit``                             the monitor's ``memory`` limit (bytes) or None
``sys_mem_total/used/available/percent``  memory we may use: the container's limit and
                                          working set when one is set, else the host's
``swap_total/used/percent``               swap
``cpu_count``, ``sys_cpu_percent``        effective cores; their use in %
``cpu<i>_percent``                        each host CPU
``load1/5/15``                            load average
``container_mem_limit/cpus``              cgroup limits, None when unlimited
``disk_total/used/free/percent``          the home's filesystem, bytes and %
``disk_read/write_rate``                  bytes/s of the home's block device
``net_sent/recv_rate``                    bytes/s, all interfaces
``gpu<i>_util/mem_used/mem_total/...``    only when an NVIDIA driver is present
========================================  ==============================================
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, LimitWarning, ResmanError, ResourceLimitExceeded
from .limits import KEEP, LIMIT_NAMES, Interrupt, LimitEvent, LimitSet
from .usage import ProcessTreeSampler, SystemSampler, SystemUsage

if TYPE_CHECKING:
    import pandas

    from .session import Session

__all__ = ["LimitEvent", "Monitor", "Sample"]

log = logging.getLogger("jupyter_resman.monitor")

#: Samples kept in memory: an hour at 1 Hz.
DEFAULT_HISTORY = 3600
#: Samples reach the live feed in batches this far apart (one SQLite write each).
PUBLISH_EVERY_S = 2.0
#: Unpublished samples kept while the live feed is failing (e.g. disk full).
MAX_PENDING = 300

# Keys whose peak is their minimum; keys with no meaningful peak.
_PEAK_MIN = {"disk_free", "sys_mem_available"}
_NO_PEAK = {"t", "pid", "mem_limit", "sys_mem_total", "swap_total", "cpu_count",
            "container_mem_limit", "container_cpus", "disk_total"}


@dataclasses.dataclass(frozen=True)
class Sample:
    """This process (with its children) and the system at one moment."""

    t: float
    pid: int
    rss: int
    rss_self: int
    cpu_percent: float
    threads: int
    children: int
    system: SystemUsage
    uss: int | None = None
    mem_limit: int | None = None

    @property
    def rss_percent(self) -> float:
        """``rss`` as a percentage of the memory we may use (container limit or RAM)."""
        total = self.system.mem_total
        return 100.0 * self.rss / total if total else 0.0

    @property
    def cpu_capacity_percent(self) -> float:
        """``cpu_percent`` as a percentage of the effective cores (100 = all busy)."""
        return self.cpu_percent / self.system.cpu_count if self.system.cpu_count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able keys (see the module docstring); the live feed stores these."""
        out: dict[str, Any] = {
            "t": self.t,
            "pid": self.pid,
            "rss": self.rss,
            "rss_self": self.rss_self,
            "rss_percent": self.rss_percent,
            "cpu_percent": self.cpu_percent,
            "cpu_capacity_percent": self.cpu_capacity_percent,
            "threads": self.threads,
            "children": self.children,
            "mem_limit": self.mem_limit,
        }
        if self.uss is not None:
            out["uss"] = self.uss
        out.update(self.system.to_dict())
        return out


def _peak_kind(key: str) -> int:
    """1 if a key's peak is its maximum, -1 its minimum, 0 if it has none."""
    if key in _NO_PEAK or key.endswith("_mem_total"):
        return 0
    if key.startswith("cpu") and key[3:4].isdigit():  # per-CPU: noise, not a peak
        return 0
    return -1 if key in _PEAK_MIN else 1


Callback = Callable[[LimitEvent], Any]

_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


class Monitor:
    """Samples, history, peaks and limits of one session's process.

    Built by ``session.monitor``; ``close()`` (called by ``session.close()``)
    stops the thread. ``history_size`` bounds the in-memory history;
    ``publish_every`` is how often samples are written to the live feed;
    ``gpu=False`` skips NVML.
    """

    def __init__(
        self, session: Session, *, history_size: int = DEFAULT_HISTORY,
        publish_every: float = PUBLISH_EVERY_S, gpu: bool = True,
    ) -> None:
        if history_size < 1:
            raise ConfigError(f"history_size={history_size!r} must be at least 1, e.g. 3600")
        self.session = session
        # Touch the live feed now so the session creates it before us and
        # therefore closes it *after* us: our thread may still be publishing.
        self._live = session.live
        self._publish_every = float(publish_every)
        self._procs = ProcessTreeSampler()
        self._system = SystemSampler(session.home.root, gpu=gpu)
        self._history: collections.deque[Sample] = collections.deque(maxlen=history_size)
        self._limits = LimitSet()
        self._callbacks: dict[str, list[Callback]] = {"warning": [], "exceeded": []}
        self._interrupts: list[Interrupt] = []
        self._interval = 1.0
        self._publish = True
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._closed = False
        self._reset_state()
        _monitors.add(self)

    def _reset_state(self) -> None:
        # Locks and per-run counters; also called in a forked child, where a
        # lock held by the parent's (vanished) thread would never be released.
        self._lock = threading.RLock()  # limits, callbacks, history, peaks
        self._sample_lock = threading.Lock()  # the samplers keep rate state
        self._publish_lock = threading.Lock()
        self._thread = None
        self._stop = None
        self._last: Sample | None = None
        self._peaks: dict[str, float] = {}
        self._peak_kinds: dict[str, int] = {}
        self._pending: list[dict[str, Any]] = []
        self._last_publish = 0.0
        self._published = False
        self._publish_errors = 0
        self._loop_errors = 0
        self._thread_cpu = 0.0
        self._thread_samples = 0
        self._run_wall = 0.0
        self._run_started: float | None = None

    # -- sampling --------------------------------------------------------------

    def sample(self, *, uss: bool = False) -> Sample:
        """Measure now (never blocks); ``uss=True`` adds unique memory (costs ms).

        The sample updates peaks and limit levels (callbacks may fire) but is
        not added to :meth:`history`, which holds the thread's regular series.
        """
        sample = self._take(uss=uss)
        self._observe(sample)
        return sample

    def _take(self, *, uss: bool = False) -> Sample:
        pid = os.getpid()
        with self._sample_lock:
            system = self._system.sample()
            proc = self._procs.sample([pid], uss=uss).get(pid)
        if proc is None:  # cannot happen for ourselves short of /proc vanishing
            raise ResmanError(f"cannot read this process ({pid}) through psutil; is /proc mounted?")
        memory_limit = self._limits.values()["memory"]
        return Sample(
            t=system.t, pid=pid, rss=proc.rss, rss_self=proc.rss_self,
            cpu_percent=proc.cpu_percent, threads=proc.threads, children=proc.children,
            system=system, uss=proc.uss,
            mem_limit=None if memory_limit is None else int(memory_limit),
        )

    def _observe(
        self, sample: Sample, *, record: bool = False, warn: bool = True, in_thread: bool = False,
    ) -> dict[str, Any]:
        """Record ``sample``, update peaks and limits, fire callbacks; returns its dict.

        Without callbacks for an event, a ``LimitWarning`` is issued unless
        ``warn`` is false (``check_limits`` raises instead).
        """
        flat = sample.to_dict()
        with self._lock:
            self._last = sample
            if record:
                self._history.append(sample)
            self._update_peaks(flat)
            events = self._limits.observe(sample)
            for event in events:
                if event.level == "exceeded":
                    for scope in self._interrupts:
                        if event.name in scope.names:
                            scope.fire(event.message)
            handlers = {level: list(cbs) for level, cbs in self._callbacks.items()}
        # Callbacks run without our lock: they may call back into the monitor.
        for event in events:
            log.log(logging.ERROR if event.level == "exceeded" else logging.WARNING, event.message)
            callbacks = handlers[event.level]
            if not callbacks and warn:
                try:
                    warnings.warn(event.message, LimitWarning, stacklevel=3)
                except Warning:
                    if not in_thread:
                        raise  # the caller turned warnings into errors: honour it
                    # ...but never let that kill the monitor thread (already logged above).
            for callback in callbacks:
                try:
                    callback(event)
                except ResourceLimitExceeded:
                    raise  # a scoped interrupt landing here must reach its block
                except Exception:
                    log.exception("a %s callback of the monitor failed", event.level)
        return flat

    def _update_peaks(self, flat: dict[str, Any]) -> None:
        kinds = self._peak_kinds
        peaks = self._peaks
        for key, value in flat.items():
            kind = kinds.get(key)
            if kind is None:
                kind = kinds[key] = _peak_kind(key)
            if not kind or value is None or value != value:  # skip, None or NaN
                continue
            old = peaks.get(key)
            if old is None or (value > old if kind > 0 else value < old):
                peaks[key] = value

    # -- the thread ------------------------------------------------------------------

    def start(self, interval: float = 1.0, *, publish: bool = True) -> Monitor:
        """Sample every ``interval`` seconds in a daemon thread; idempotent.

        Calling it again while running changes the interval. ``publish=False``
        keeps samples out of the live feed (the Jupyter server will not see
        them).
        """
        interval = float(interval)
        if not interval > 0 or math.isinf(interval):
            raise ConfigError(
                f"interval={interval!r} must be a positive number of seconds, e.g. 1.0"
            )
        with self._lock:
            if self._closed:
                raise ResmanError("this monitor's session is closed; create a new Session")
            self._interval, self._publish = interval, publish
            if self._thread is not None and self._thread.is_alive():
                return self
            stop = self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name="resman-monitor", daemon=True
            )
            self._run_started = time.monotonic()
            self._thread.start()
        self._publish_state()
        return self

    def stop(self) -> None:
        """Stop the thread and flush unpublished samples; idempotent."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
            if self._run_started is not None:
                self._run_wall += time.monotonic() - self._run_started
                self._run_started = None
        if thread is None or stop is None:
            return
        stop.set()
        # Join outside the lock: the thread may need it to finish its iteration.
        if thread is not threading.current_thread():
            thread.join()
        self._flush()
        self._publish_state()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def interval(self) -> float:
        return self._interval

    def _run(self, stop: threading.Event) -> None:
        due = time.monotonic()
        while True:
            started = time.thread_time()
            try:
                flat = self._observe(self._take(), record=True, in_thread=True)
                if self._publish:
                    self._queue(flat)
            except Exception:
                # Never let a bad moment (a vanished /proc file, a callback's
                # warning turned into an error) kill the thread; say it once.
                self._loop_errors += 1
                if self._loop_errors == 1:
                    log.exception("the resource monitor failed to take a sample; it keeps trying")
            self._thread_cpu += time.thread_time() - started
            self._thread_samples += 1
            due += self._interval
            now = time.monotonic()
            if due < now:  # fell behind (a suspended laptop): do not catch up in a burst
                due = now
            if stop.wait(due - now):
                return

    # -- live feed --------------------------------------------------------------

    def _queue(self, flat: dict[str, Any]) -> None:
        with self._publish_lock:
            self._pending.append(flat)
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]
        if time.monotonic() - self._last_publish >= self._publish_every:
            self._flush()

    def _flush(self) -> None:
        with self._publish_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._last_publish = time.monotonic()
            try:
                self._live.publish_samples(batch)
                self._published = True
            except ResourceLimitExceeded:
                self._pending = (batch + self._pending)[-MAX_PENDING:]
                raise  # a scoped interrupt landed in the caller's thread: let it through
            except Exception as exc:  # disk full, a locked or damaged feed: the kernel goes on
                self._publish_errors += 1
                self._pending = (batch + self._pending)[-MAX_PENDING:]
                if self._publish_errors == 1:
                    log.warning("cannot publish monitor samples to %s: %s", self._live.db.path, exc)

    def _publish_state(self) -> None:
        """Tell other processes (the Jupyter server) our limits and whether we run."""
        with self._lock:
            values = self._limits.values()
            info = {
                "memory_limit": None if values["memory"] is None else int(values["memory"]),
                "limits": values,
                "warn_at": self._limits.warn_at,
                "monitoring": self.running,
                "interval": self._interval if self.running else None,
            }
        if not self._published and not self._limits and not self.running:
            return  # nothing to tell: do not create the feed for nothing
        try:
            self._live.publish_process(info)
            self._published = True
        except ResourceLimitExceeded:
            raise  # a scoped interrupt landed in the caller's thread: let it through
        except Exception as exc:
            log.warning("cannot publish monitor state to %s: %s", self._live.db.path, exc)

    # -- history and peaks ------------------------------------------------------------

    def history(self) -> pandas.DataFrame:
        """The thread's samples, oldest first, one row per sample (columns as ``to_dict``).

        The index is the sample time (``DatetimeIndex`` in UTC); ``t`` stays a column.
        """
        import pandas as pd

        with self._lock:
            rows = [s.to_dict() for s in self._history]
        if not rows:
            return pd.DataFrame(columns=["t", "pid", "rss", "cpu_percent", "threads"])
        frame = pd.DataFrame.from_records(rows)
        frame.index = pd.to_datetime(frame["t"], unit="s", utc=True)
        frame.index.name = "time"
        return frame

    def samples(self, since: float | None = None) -> list[Sample]:
        """The thread's samples taken after ``since`` (Unix seconds), oldest first.

        ``since=None`` returns the whole bounded history. A reader that passes
        the ``t`` of the last sample it got misses none, however fast the
        thread samples, as long as it calls again before ``history_size``
        newer samples have pushed the older ones out. Samples are frozen, so
        the list can be read while the thread goes on sampling.

        >>> import tempfile
        >>> from jupyter_resman.core import Session
        >>> with Session(home=tempfile.mkdtemp()) as s:
        ...     s.monitor.samples()
        []
        """
        if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float))):
            raise ConfigError(f"since={since!r} must be a time in Unix seconds (a sample's .t), "
                              "or None for the whole history")
        with self._lock:
            if since is None:
                return list(self._history)
            # Newest last: walk back from the end and stop at the first old sample, so
            # a reader polling for the few newest never copies an hour of history.
            newer = []
            for sample in reversed(self._history):
                if sample.t <= since:
                    break
                newer.append(sample)
        newer.reverse()
        return newer

    def peak(self) -> dict[str, float]:
        """The largest value of each measurement since creation or :meth:`reset_peak`.

        ``disk_free`` and ``sys_mem_available`` report their smallest value.
        Peaks cover every sample taken, not only the bounded history.
        """
        with self._lock:
            return dict(self._peaks)

    def reset_peak(self) -> None:
        with self._lock:
            self._peaks.clear()

    def last(self) -> Sample | None:
        """The most recent sample (from the thread or :meth:`sample`), if any."""
        return self._last

    def stats(self) -> dict[str, Any]:
        """What the monitor costs: samples taken, thread CPU seconds, its share of one core."""
        with self._lock:
            wall = self._run_wall + (
                time.monotonic() - self._run_started if self._run_started is not None else 0.0)
            return {
                "samples": self._thread_samples,
                "thread_cpu_s": self._thread_cpu,
                "wall_s": wall,
                "cpu_fraction": self._thread_cpu / wall if wall > 0 else 0.0,
                "history": len(self._history),
                "history_size": self._history.maxlen,
                "publish_errors": self._publish_errors,
                "sample_errors": self._loop_errors,
            }

    # -- limits -------------------------------------------------------------------------

    def set_limits(
        self, memory: Any = KEEP, memory_percent: Any = KEEP, cpu_percent: Any = KEEP,
        disk_free: Any = KEEP, *, warn_at: Any = None,
    ) -> None:
        """Set limits; an argument left out keeps its value, ``None`` removes it.

        ``memory``/``disk_free`` take bytes or sizes (``"8GB"``), the
        percentages a number in (0, 100]; ``warn_at`` is the fraction of a
        limit where warnings start (default 0.8). See :mod:`.limits` for what
        each limit measures. A bad value raises ``ConfigError`` and changes
        nothing.
        """
        with self._lock:
            self._limits.update(memory=memory, memory_percent=memory_percent,
                                cpu_percent=cpu_percent, disk_free=disk_free, warn_at=warn_at)
        self._publish_state()

    def clear_limits(self) -> None:
        """Remove every limit (the warning threshold stays)."""
        self.set_limits(None, None, None, None)

    def on_warning(self, callback: Callback) -> Callback:
        """Call ``callback(event)`` when a limit reaches its warning threshold.

        Usable as a decorator. Callbacks run in the monitor's thread (or the
        caller's, for :meth:`sample`/:meth:`check_limits`); an exception in one
        is logged, never raised. Without any callback, a ``LimitWarning`` is
        issued instead.
        """
        with self._lock:
            self._callbacks["warning"].append(callback)
        return callback

    def on_exceeded(self, callback: Callback) -> Callback:
        """Call ``callback(event)`` when a limit is exceeded (see :meth:`on_warning`)."""
        with self._lock:
            self._callbacks["exceeded"].append(callback)
        return callback

    def remove_callback(self, callback: Callback) -> None:
        """Unregister ``callback`` from both lists; unknown callbacks are ignored."""
        with self._lock:
            for callbacks in self._callbacks.values():
                while callback in callbacks:
                    callbacks.remove(callback)

    def check_limits(self) -> dict[str, Any]:
        """Sample now; raise ``ResourceLimitExceeded`` if any limit is exceeded.

        Otherwise return :meth:`limits_info` (status ``ok`` or ``warning``).
        """
        sample = self._take()
        self._observe(sample, warn=False)  # the exception below says it; no warning too
        with self._lock:
            problems = self._limits.exceeded(sample)
        if problems:
            raise ResourceLimitExceeded("; ".join(problems))
        return self.limits_info(sample)

    def limits_info(self, sample: Sample | None = None) -> dict[str, Any]:
        """Limits, threshold, the status (ok/warning/exceeded) and each check, as plain data."""
        if sample is None:
            sample = self._last if self._last is not None else self.sample()
        with self._lock:
            info = self._limits.info(sample)
        info["running"] = self.running
        info["interval"] = self._interval if self.running else None
        return info

    @contextlib.contextmanager
    def limits(
        self, memory: Any = KEEP, memory_percent: Any = KEEP, cpu_percent: Any = KEEP,
        disk_free: Any = KEEP, *, warn_at: Any = None, interrupt: bool = False,
        interval: float = 1.0,
    ) -> Iterator[Monitor]:
        """Limits for the duration of a ``with`` block, then the previous ones again.

        The monitor runs during the block (started at ``interval`` if it was
        not running, and stopped after). With ``interrupt=True``, exceeding
        one of *these* limits raises ``ResourceLimitExceeded`` inside the block
        — in the thread that entered it, at its next Python instruction, like
        Ctrl-C — so a runaway cell stops before the kernel is OOM-killed::

            with session.monitor.limits(memory="8GB", interrupt=True):
                model.fit(X)
        """
        given = {name for name, value in (("memory", memory), ("memory_percent", memory_percent),
                                          ("cpu_percent", cpu_percent), ("disk_free", disk_free))
                 if value is not KEEP and value is not None}
        with self._lock:
            saved = self._limits.snapshot()
            self._limits.update(memory=memory, memory_percent=memory_percent,
                                cpu_percent=cpu_percent, disk_free=disk_free, warn_at=warn_at)
            # interrupt=True without new limits guards the limits already set.
            scope = Interrupt(given or set(LIMIT_NAMES)) if interrupt else None
            if scope is not None:
                self._interrupts.append(scope)
        started = not self.running
        try:
            if started:
                self.start(interval)
            else:
                self._publish_state()
            yield self
        finally:
            landed: ResourceLimitExceeded | None = None
            while True:
                # The interrupt may land while we clean up (it was scheduled just
                # before we disarmed it): finish the clean-up, then raise it.
                try:
                    self._end_scope(scope, saved, started)
                    break
                except ResourceLimitExceeded as exc:
                    landed = exc
            if landed is not None:
                raise landed
        if scope is not None and scope.fired is not None and not scope.delivered:
            # Exceeded, but the block ended before the interrupt landed (e.g.
            # inside one long C call): report it rather than lose it.
            raise ResourceLimitExceeded(scope.fired)

    def _end_scope(self, scope: Interrupt | None, saved: Any, started: bool) -> None:
        # Idempotent, so it can be re-run if interrupted half-way; once the
        # scope is disarmed nothing can interrupt it any more.
        with self._lock:
            if scope is not None:
                if scope in self._interrupts:
                    self._interrupts.remove(scope)
                scope.disarm()
            self._limits.restore(saved)
        if started:
            self.stop()
        else:
            self._publish_state()

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread, publish that we stopped, release NVML; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop()
        self._system.close()

    def __repr__(self) -> str:
        state = f"running every {self._interval:g}s" if self.running else "stopped"
        return f"<Monitor {state}, {len(self._history)} samples>"


def _after_fork_in_child() -> None:
    # The parent's thread does not exist in the child; its locks may be held.
    for monitor in list(_monitors):
        monitor._reset_state()
        monitor._history.clear()  # the parent's samples, not ours
        monitor._procs = ProcessTreeSampler()
        monitor._system.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
