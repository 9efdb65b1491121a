"""Timing: a context manager and a decorator that log durations and keep a table.

Each timed block becomes one record on ``jupyter_resman.timing`` with the
fields ``operation``, ``duration_s`` and ``ok`` — at DEBUG, or at INFO once it
takes ``slow_s`` or longer, so the log file holds the slow ones by default —
and one row in :meth:`Timings.table`, the "slowest operations" table.

>>> timings = Timings()
>>> with Timer(timings, "load"):
...     pass
>>> timings.table()["operation"].tolist()
['load']
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from .handlers import log_context

__all__ = ["Timer", "Timings"]

log = logging.getLogger("jupyter_resman.timing")

F = TypeVar("F", bound=Callable[..., Any])
COLUMNS = ["operation", "calls", "failures", "total_s", "mean_s", "max_s", "last_s"]


class Timings:
    """Per-operation totals of this process: calls, failures, total, max and last seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[float]] = {}  # calls, failures, total, max, last

    def add(self, operation: str, seconds: float, ok: bool = True) -> None:
        with self._lock:
            row = self._rows.get(operation)
            if row is None:
                row = self._rows[operation] = [0, 0, 0.0, 0.0, 0.0]
            row[0] += 1
            row[1] += 0 if ok else 1
            row[2] += seconds
            row[3] = max(row[3], seconds)
            row[4] = seconds

    def table(self, n: int | None = None, *, by: str = "max_s") -> Any:
        """The slowest operations first (by ``max_s``, ``mean_s`` or ``total_s``), as a DataFrame."""
        import pandas as pd

        if by not in ("max_s", "mean_s", "total_s", "calls", "last_s"):
            raise ValueError(f"by={by!r}: sort by max_s, mean_s, total_s, calls or last_s")
        with self._lock:
            rows = [[op, int(c), int(f), t, t / c if c else 0.0, m, last]
                    for op, (c, f, t, m, last) in self._rows.items()]
        frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(by, ascending=False,
                                                                  kind="stable")
        return frame.head(n).reset_index(drop=True) if n is not None else \
            frame.reset_index(drop=True)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


class Timer:
    """``with Timer(timings, "fit"):`` — measures, logs and records one operation.

    Inside the block, records carry ``operation=<name>`` (and any ``fields``)
    as context. ``elapsed`` holds the seconds once the block is done. Works
    with ``async with`` too.
    """

    def __init__(self, timings: Timings | None, operation: str, *, slow_s: float = 1.0,
                 logger: logging.Logger | None = None, **fields: Any) -> None:
        self.timings = timings
        self.operation = str(operation)
        self.slow_s = slow_s
        self.fields = fields
        self.elapsed: float | None = None
        self._log = logger or log
        self._start = 0.0
        self._scope: Any = None

    def __enter__(self) -> Timer:
        self._scope = log_context(operation=self.operation, **self.fields)
        self._scope.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.elapsed = elapsed = time.perf_counter() - self._start
        self._scope.__exit__(kind, exc, tb)
        ok = exc is None
        if self.timings is not None:
            self.timings.add(self.operation, elapsed, ok)
        level = logging.INFO if elapsed >= self.slow_s else logging.DEBUG
        if not ok:
            level = max(level, logging.INFO)
        if self._log.isEnabledFor(level):
            outcome = "" if ok else f" and failed with {type(exc).__name__}"
            self._log.log(level, "%s took %.3f s%s", self.operation, elapsed, outcome,
                          extra={"operation": self.operation, "duration_s": round(elapsed, 6),
                                 "ok": ok, **self.fields})

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, exc, tb)


def timed_decorator(make_timer: Callable[[str], Timer], fn: F, name: str | None) -> F:
    """Wrap ``fn`` (plain or ``async``) so every call runs inside ``make_timer(name)``."""
    operation = name or getattr(fn, "__qualname__", None) or repr(fn)
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with make_timer(operation):
                return await fn(*args, **kwargs)
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with make_timer(operation):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
