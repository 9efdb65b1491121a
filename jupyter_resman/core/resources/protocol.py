"""What a resource provider is: the protocol, health reports and a base class.

A *provider* makes and disposes of one kind of resource — a database
connection, a working folder, an HTTP client. The :class:`~.manager.ResourceManager`
pools what a provider makes, tracks who holds it and measures how it is used;
the provider itself only needs six methods:

==========================  ===================================================
``acquire()``               make a new resource (the pool calls it when no idle
                            one can be reused)
``release(resource)``       dispose of a resource for good (close it, delete
                            its temporary files)
``validate(resource)``      whether an idle resource still works; a ``False``
                            (or an exception) has it replaced on acquire
``health_check()``          a :class:`HealthReport` on the service behind it
``metrics()``               provider-specific numbers, a JSON-able ``dict``
``close()``                 free whatever the provider itself holds (an engine,
                            a client); idempotent
==========================  ===================================================

Two optional hooks refine pooling: ``reset(resource)`` is called when a
resource goes back to the pool for reuse (roll back a transaction, remove
temp files), and ``async def acquire_async()`` makes a resource without
blocking an event loop. A ``kind`` and ``target`` attribute say what the
provider is, for ``%resman resources``.

>>> class Numbers(BaseProvider):
...     kind = "counter"
...     def __init__(self):
...         self.made = 0
...     def acquire(self):
...         self.made += 1
...         return self.made
...     def release(self, resource):
...         pass
>>> isinstance(Numbers(), ResourceProvider)
True
>>> Numbers().health_check().status
<HealthStatus.HEALTHY: 'healthy'>
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["BaseProvider", "HealthReport", "HealthStatus", "ResourceProvider"]

R = TypeVar("R")


class HealthStatus(str, enum.Enum):
    """How a provider's service is doing; a ``str`` so it serializes as itself."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class HealthReport:
    """The result of one health check: a status, why, and how long the check took."""

    status: HealthStatus
    message: str = ""
    latency_s: float | None = None
    checked_at: float = dataclasses.field(default_factory=time.time)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY

    @classmethod
    def ok(cls, message: str = "", *, latency_s: float | None = None, **details: Any) -> HealthReport:
        return cls(HealthStatus.HEALTHY, message, latency_s, details=details)

    @classmethod
    def failed(cls, message: str, *, latency_s: float | None = None, **details: Any) -> HealthReport:
        return cls(HealthStatus.UNHEALTHY, message, latency_s, details=details)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the live feed and ``--json`` output use these)."""
        return {"status": self.status.value, "message": self.message,
                "latency_s": self.latency_s, "checked_at": self.checked_at,
                "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthReport:
        return cls(HealthStatus(data.get("status", "unknown")), data.get("message", ""),
                   data.get("latency_s"), data.get("checked_at", 0.0),
                   dict(data.get("details") or {}))


@runtime_checkable
class ResourceProvider(Protocol[R]):
    """The six methods the manager calls (see the module docstring)."""

    def acquire(self) -> R: ...

    def release(self, resource: R) -> None: ...

    def validate(self, resource: R) -> bool: ...

    def health_check(self) -> HealthReport: ...

    def metrics(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class BaseProvider:
    """Sensible defaults: subclasses write ``acquire`` and ``release``, and usually
    a cheaper ``validate`` and a more telling ``health_check``.

    The default health check makes a resource, validates it and disposes of
    it, which proves the service answers but costs a full connect.
    """

    #: A short word for tables: "sql", "filesystem", "http", "factory"...
    kind: str = "custom"
    #: What the provider points at (a URL without credentials, a folder).
    target: str = ""

    def acquire(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement acquire()")

    def release(self, resource: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement release(resource)")

    def validate(self, resource: Any) -> bool:
        return True

    def reset(self, resource: Any) -> None:
        """Prepare ``resource`` for its next holder; the default does nothing."""

    def health_check(self) -> HealthReport:
        start = time.perf_counter()
        try:
            resource = self.acquire()
        except Exception as exc:
            return HealthReport.failed(f"cannot acquire: {type(exc).__name__}: {exc}",
                                       latency_s=time.perf_counter() - start)
        try:
            valid = self.validate(resource)
        except Exception as exc:
            valid, why = False, f"validate raised {type(exc).__name__}: {exc}"
        else:
            why = "validate returned False"
        finally:
            self.release(resource)
        latency = time.perf_counter() - start
        if not valid:
            return HealthReport.failed(f"a new resource is not valid ({why})", latency_s=latency)
        return HealthReport.ok("a new resource was made and validated", latency_s=latency)

    def metrics(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Free what the provider itself holds; the default holds nothing."""

    def __repr__(self) -> str:
        target = f" {self.target}" if self.target else ""
        return f"<{type(self).__name__} {self.kind}{target}>"
