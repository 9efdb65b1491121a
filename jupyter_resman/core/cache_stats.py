"""Cache statistics: counters kept in memory, flushed to the shared index.

Every process counts its own hits and misses and flushes them (at most once
a second, and on close) into per-minute rows of the ``stats`` table, so
``stats()`` in any process — the Jupyter server included — sums what every
kernel did, and ``history()`` gives the hit/miss time series per namespace.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

__all__ = ["CacheStats", "Counters", "NamespaceStats", "TierStats"]

#: Columns of a counters row, in the order of the ``stats`` table.
FIELDS = ("mem_hits", "disk_hits", "misses", "sets", "evictions", "evicted_bytes", "time_saved")
BUCKET_S = 60
RETENTION_S = 7 * 86400


@dataclasses.dataclass(frozen=True)
class TierStats:
    """Hits served by one tier, and what it holds."""

    hits: int
    entries: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class NamespaceStats:
    entries: int
    bytes: int
    hits: int
    misses: int
    time_saved_s: float

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """What :meth:`Cache.stats` returns: one set of figures across both tiers.

    ``memory`` describes this process's memory tier; everything else sums
    every process using the home.
    """

    hits: int
    misses: int
    sets: int
    evictions: int
    evicted_bytes: int
    entries: int
    bytes: int
    max_bytes: int
    time_saved_s: float
    memory: TierStats
    disk: TierStats
    namespaces: dict[str, NamespaceStats]

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (for the REST API, the CLI's ``--json``, widgets)."""
        out = dataclasses.asdict(self)
        out["hit_rate"] = self.hit_rate
        for name, ns in self.namespaces.items():
            out["namespaces"][name]["hit_rate"] = ns.hit_rate
        return out


class Counters:
    """Unflushed per-namespace counters of this process."""

    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}

    def row(self, namespace: str) -> list[float]:
        row = self.rows.get(namespace)
        if row is None:
            row = self.rows[namespace] = [0] * len(FIELDS)
        return row

    def take(self) -> dict[str, list[float]]:
        rows, self.rows = self.rows, {}
        return rows

    def flush(self, conn: sqlite3.Connection, now: float) -> None:
        """Add the counters to the current minute's rows (inside a write transaction)."""
        rows = self.take()
        if not rows:
            return
        bucket = int(now // BUCKET_S) * BUCKET_S
        assignments = ", ".join(f"{f} = {f} + excluded.{f}" for f in FIELDS)
        conn.executemany(
            f"INSERT INTO stats (namespace, bucket, {', '.join(FIELDS)}) "
            f"VALUES (?, ?, {', '.join('?' * len(FIELDS))}) "
            f"ON CONFLICT (namespace, bucket) DO UPDATE SET {assignments}",
            [(ns, bucket, *values) for ns, values in rows.items()],
        )
        conn.execute("DELETE FROM stats WHERE bucket < ?", (bucket - RETENTION_S,))

    def restore(self, rows: dict[str, list[float]]) -> None:
        """Put counters back after a failed flush, so nothing is lost."""
        for ns, values in rows.items():
            row = self.row(ns)
            for i, v in enumerate(values):
                row[i] += v
