"""A provider from plain functions: whatever ``factory()`` returns is the resource.

>>> import io
>>> provider = FactoryProvider(io.StringIO)
>>> buffer = provider.acquire()
>>> provider.release(buffer)   # no dispose= given: the resource's close() is called
>>> buffer.closed
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..protocol import BaseProvider, HealthReport, HealthStatus

__all__ = ["FactoryProvider"]


class FactoryProvider(BaseProvider):
    """Resources made by ``factory()`` and disposed of by ``dispose(resource)``.

    Without ``dispose`` the resource's own ``close()`` is called when it has
    one. ``validate(resource) -> bool`` and ``reset(resource)`` default to
    "always valid" and "nothing to reset"; ``health() -> bool | HealthReport``
    defaults to making, validating and disposing of one resource.
    """

    kind = "factory"

    def __init__(self, factory: Callable[[], Any], *,
                 dispose: Callable[[Any], None] | None = None,
                 validate: Callable[[Any], bool] | None = None,
                 reset: Callable[[Any], None] | None = None,
                 health: Callable[[], bool | HealthReport] | None = None,
                 kind: str | None = None) -> None:
        if not callable(factory):
            raise TypeError(f"FactoryProvider needs a function, not {type(factory).__name__}")
        self._factory = factory
        self._dispose = dispose
        self._validate = validate
        self._reset = reset
        self._health = health
        if kind is not None:
            self.kind = kind
        self.target = getattr(factory, "__qualname__", None) or repr(factory)
        self._lock = threading.Lock()
        self._made = 0
        self._disposed = 0

    def acquire(self) -> Any:
        resource = self._factory()
        with self._lock:
            self._made += 1
        return resource

    def release(self, resource: Any) -> None:
        try:
            if self._dispose is not None:
                self._dispose(resource)
            else:
                close = getattr(resource, "close", None)
                if callable(close):
                    close()
        finally:
            with self._lock:
                self._disposed += 1

    def validate(self, resource: Any) -> bool:
        return True if self._validate is None else bool(self._validate(resource))

    def reset(self, resource: Any) -> None:
        if self._reset is not None:
            self._reset(resource)

    def health_check(self) -> HealthReport:
        if self._health is None:
            return super().health_check()
        start = time.perf_counter()
        answer = self._health()
        latency = time.perf_counter() - start
        if isinstance(answer, HealthReport):
            return answer
        if answer is True:
            return HealthReport.ok("health() returned True", latency_s=latency)
        if answer is False:
            return HealthReport.failed("health() returned False", latency_s=latency)
        return HealthReport(HealthStatus.UNKNOWN, f"health() returned {answer!r}",
                            latency_s=latency)

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            return {"made": self._made, "disposed": self._disposed}
