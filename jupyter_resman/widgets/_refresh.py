"""One background thread that keeps widgets moving while a cell runs.

A notebook kernel runs one cell at a time on its main thread; a widget that
only redraws when Python code calls it would freeze exactly when it matters,
during a long cell. A :class:`Refresher` runs its tasks (a panel's
``refresh``) on a daemon thread, each at its own period, never more often
than :data:`MIN_PERIOD` (2 Hz): widget updates are comm messages that the
browser must lay out and plotly must redraw, so faster buys nothing but load.

A dashboard owns one refresher for all its panels (not one thread per
panel); notebook progress bars share one per process that stops by itself
once no bar is left to draw.

>>> ticked = threading.Event()
>>> r = Refresher(name="doc")
>>> r.add(ticked.set, period=0.5)
>>> _ = r.start()
>>> ticked.wait(10), r.running
(True, True)
>>> r.stop(); r.running
False
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.errors import ConfigError

__all__ = ["MIN_PERIOD", "Refresher"]

log = logging.getLogger("jupyter_resman.widgets")

#: The shortest period a task may have: at most two redraws a second.
MIN_PERIOD = 0.5


def checked_period(period: object, minimum: float = MIN_PERIOD, why: str = "") -> float:
    """A panel's refresh ``period`` in seconds, or :class:`ConfigError` saying what is wrong.

    >>> checked_period(5)
    5.0
    """
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not period >= minimum:
        raise ConfigError(f"period={period!r} must be at least {minimum} seconds{why}, e.g. 5")
    return float(period)


@dataclass(eq=False)
class _Task:
    fn: Callable[[], object]
    period: float
    due: float = 0.0
    failures: int = 0
    name: str = field(default="")


class Refresher:
    """Runs registered callables periodically on one daemon thread.

    ``stop_when_idle=True`` lets the thread end by itself once its last task
    is removed (a later :meth:`add` starts a new one). A task that raises is
    logged once and kept: a transient error (a busy database) must not stop
    a dashboard for good.
    """

    def __init__(self, name: str = "resman-widgets", *, stop_when_idle: bool = False) -> None:
        self.name = name
        self._stop_when_idle = stop_when_idle
        self._lock = threading.Lock()
        self._tasks: list[_Task] = []
        self._wake = threading.Event()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # -- tasks --------------------------------------------------------------------

    def add(self, fn: Callable[[], object], period: float = MIN_PERIOD, *,
            name: str | None = None) -> None:
        """Call ``fn()`` every ``period`` seconds (at least :data:`MIN_PERIOD`)."""
        if not isinstance(period, (int, float)) or math.isnan(period) or period <= 0:
            raise ConfigError(f"period={period!r} must be a positive number of seconds, e.g. 1.0")
        label = name or str(getattr(fn, "__qualname__", repr(fn)))
        task = _Task(fn, max(float(period), MIN_PERIOD), 0.0, 0, label)
        with self._lock:
            self._tasks.append(task)
            start = self._stop_when_idle and not self._alive()
        if start:
            self.start()
        self._wake.set()

    def remove(self, fn: Callable[[], object]) -> None:
        """Stop calling ``fn`` (unknown callables are ignored)."""
        with self._lock:
            self._tasks = [t for t in self._tasks if t.fn != fn]
        self._wake.set()

    def poke(self, fn: Callable[[], object] | None = None) -> None:
        """Run ``fn`` (or every task) at the next opportunity instead of waiting its period."""
        with self._lock:
            for task in self._tasks:
                if fn is None or task.fn == fn:
                    task.due = 0.0
        self._wake.set()

    @property
    def tasks(self) -> int:
        """How many tasks are registered."""
        with self._lock:
            return len(self._tasks)

    # -- the thread -----------------------------------------------------------------

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._stop is not None \
            and not self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether the thread is running."""
        with self._lock:
            return self._alive()

    def start(self) -> Refresher:
        """Start the thread; idempotent."""
        with self._lock:
            if self._alive():
                return self
            stop = self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(stop,), name=self.name,
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, *, join: bool = True) -> None:
        """Stop the thread (waiting for its current task unless ``join=False``); idempotent."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if stop is None or thread is None:
            return
        stop.set()
        self._wake.set()
        if join and thread is not threading.current_thread():
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            with self._lock:
                if not self._tasks and self._stop_when_idle:
                    if self._stop is stop:  # nothing left to draw: end quietly
                        self._thread = self._stop = None
                    return
                due = [t for t in self._tasks if t.due <= now]
                for task in due:
                    # Scheduled from now, not from the last due time: a slow
                    # refresh never makes the next ones run back to back.
                    task.due = now + task.period
                upcoming = min((t.due for t in self._tasks), default=now + MIN_PERIOD)
            for task in due:
                if stop.is_set():
                    return
                self._call(task)
            self._wake.clear()
            wait = max(upcoming - time.monotonic(), 0.0)
            # A poke wakes us early, but never faster than MIN_PERIOD / 5 apart
            # so a burst of pokes cannot spin the thread.
            if self._wake.wait(wait):
                stop.wait(MIN_PERIOD / 5)

    def _call(self, task: _Task) -> None:
        try:
            task.fn()
        except Exception:
            task.failures += 1
            if task.failures == 1:
                log.exception("widget refresh %s failed; it keeps being retried", task.name)
            else:
                log.debug("widget refresh %s failed again", task.name, exc_info=True)
        else:
            task.failures = 0

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Refresher {self.name!r} {state}, {self.tasks} task(s)>"
