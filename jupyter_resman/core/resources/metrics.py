"""Usage figures of one resource: a frozen snapshot, built from its pool's counters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .pool import Pool

__all__ = ["ResourceMetrics"]


@dataclasses.dataclass(frozen=True)
class ResourceMetrics:
    """How a resource has been used since it was registered.

    ``acquisitions`` counts resources handed out; ``failures`` the times the
    provider could not make one; ``timeouts`` the acquires that gave up
    waiting. ``active`` are in use now, ``idle`` wait in the pool, ``waiting``
    callers are queued. Times are seconds: ``avg_acquire_s`` includes waiting
    for a free resource, ``avg_hold_s`` is from acquire to release.
    """

    name: str
    kind: str
    target: str
    acquisitions: int
    releases: int
    failures: int
    timeouts: int
    active: int
    idle: int
    waiting: int
    max_size: int
    created: int
    destroyed: int
    invalidated: int
    peak_active: int
    avg_acquire_s: float
    avg_hold_s: float
    max_hold_s: float
    provider: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_pool(cls, pool: Pool, provider_metrics: Mapping[str, Any]) -> ResourceMetrics:
        c, active, idle, waiting = pool.snapshot()
        provider = pool.provider
        return cls(
            name=pool.name, kind=str(getattr(provider, "kind", type(provider).__name__)),
            target=str(getattr(provider, "target", "")),
            acquisitions=c.acquisitions, releases=c.releases, failures=c.failures,
            timeouts=c.timeouts, active=active, idle=idle, waiting=waiting,
            max_size=pool.config.max_size, created=c.created, destroyed=c.destroyed,
            invalidated=c.invalidated, peak_active=c.peak_in_use,
            avg_acquire_s=c.acquire_total_s / c.acquisitions if c.acquisitions else 0.0,
            avg_hold_s=c.hold_total_s / c.releases if c.releases else 0.0,
            max_hold_s=c.hold_max_s, provider=dict(provider_metrics),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceMetrics:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
