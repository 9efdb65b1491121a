"""The memory tier: live objects in front of the disk tier, limited in bytes.

Sizes are the *serialized* sizes measured when a value was stored or read,
so the limit means the same thing in both tiers. Values are the very objects
handed out, not copies (a copy would cost as much as a disk read): treat
values you get from a cache as read-only.

Not thread-safe on its own; the cache calls it under its lock.

>>> tier = MemoryTier(max_bytes=100, policy="lru")
>>> tier.put("a", MemEntry("A", size=60, stamp=1, created=0.0, ttl=None, compute_s=0.0))
[]
>>> [k for k, _ in tier.put("b", MemEntry("B", size=60, stamp=2, created=0.0, ttl=None, compute_s=0.0))]
['a']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

__all__ = ["MemEntry", "MemoryTier"]


class MemEntry:
    """One value held in memory (slots keep the per-hit attribute access cheap)."""

    __slots__ = ("value", "size", "stamp", "created", "ttl", "compute_s", "hits", "epoch", "namespace",
                 "eid")

    def __init__(self, value: Any, *, size: int, stamp: int, created: float, ttl: float | None,
                 compute_s: float, epoch: int = 0, namespace: str = "default",
                 eid: int | None = None) -> None:
        self.value = value
        self.size = size
        self.stamp = stamp
        self.created = created
        self.ttl = ttl
        self.compute_s = compute_s
        self.hits = 0
        self.epoch = epoch  # the staleness epoch in which this copy was last known current
        self.namespace = namespace
        self.eid = eid  # the index row id, to record accesses and revalidate

    def expired(self, now: float) -> bool:
        """Past its TTL, or created "in the future" (the clock went back): never immortal."""
        ttl = self.ttl
        return ttl is not None and not (self.created <= now < self.created + ttl)


class MemoryTier:
    """A byte-limited map with lru, lfu or fifo eviction."""

    def __init__(self, max_bytes: int, policy: str = "lru") -> None:
        self.max_bytes = max_bytes
        self.policy = policy
        self.entries: OrderedDict[Hashable, MemEntry] = OrderedDict()
        self.bytes = 0

    def get(self, key: Hashable) -> MemEntry | None:
        entry = self.entries.get(key)
        if entry is not None:
            entry.hits += 1
            if self.policy == "lru":
                self.entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: MemEntry) -> list[tuple[Hashable, MemEntry]]:
        """Insert (or replace); returns what was evicted to make room.

        A value larger than the whole tier is simply not kept in memory (the
        disk tier still has it), so nothing is evicted for it.
        """
        self.discard(key)
        if entry.size > self.max_bytes:
            return []
        evicted = []
        while self.bytes + entry.size > self.max_bytes and self.entries:
            victim = self._victim()
            evicted.append((victim, self.entries[victim]))
            self.discard(victim)
        self.entries[key] = entry
        self.bytes += entry.size
        return evicted

    def _victim(self) -> Hashable:
        if self.policy == "lfu":
            # Fewest hits; ties go to the oldest (first in insertion order).
            return min(self.entries.items(), key=lambda kv: kv[1].hits)[0]
        return next(iter(self.entries))  # lru: least recently used first; fifo: oldest first

    def discard(self, key: Hashable) -> MemEntry | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size
        return entry

    def discard_where(self, predicate: Callable[[Hashable, MemEntry], bool]) -> int:
        doomed = [k for k, e in self.entries.items() if predicate(k, e)]
        for key in doomed:
            self.discard(key)
        return len(doomed)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.entries)
