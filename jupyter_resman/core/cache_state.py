"""Shared counters of a cache: 64 bytes of memory every process maps from one file.

Why not a table? Keeping an exact byte total in SQLite costs one more page
written on every ``set`` (about a quarter of its time). These counters are
changed only *inside* write transactions — which SQLite already serialises
across processes — so no update is ever lost. A writer that dies mid-change
leaves its pid in ``dirty``; the next writer sees it and recounts from the
index before trusting the totals.

Layout (little-endian int64 slots)::

    0 nonce    changes after every commit that changes values (memory tiers revalidate)
    1 bytes    total value bytes (inline blobs plus value files)
    2 entries  number of entries
    3 dirty    pid of a writer inside a change, 0 when the counters are exact
    4 magic    format marker; anything else means "recount"
    5 index    id of the index file the counters describe (a rebuilt index: recount)
"""

from __future__ import annotations

import mmap
import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .db import Database

__all__ = ["Change", "SharedState", "private_random"]


def _new_private_random() -> random.Random:
    return random.Random(os.urandom(16))


_my_pid = [os.getpid()]


def _pid() -> int:
    """This process's pid without a system call per write (updated after fork)."""
    return _my_pid[0]


#: Our own generator for stamps and nonces: drawing from the global ``random`` would
#: change the user's random numbers (and break their reproducibility).
private_random = _new_private_random()
if hasattr(os, "register_at_fork"):
    # A forked child must not repeat its parent's stamps.
    def _after_fork_in_child() -> None:
        private_random.seed(os.urandom(16))
        _my_pid[0] = os.getpid()

    os.register_at_fork(after_in_child=_after_fork_in_child)

_SIZE = 64
_NONCE, _BYTES, _COUNT, _DIRTY, _MAGIC, _INDEX = range(6)
_MAGIC_VALUE = 0x52534D5354415431  # "RSMSTAT1"

Recount = Callable[[sqlite3.Connection], "tuple[int, int]"]


class SharedState:
    """The mapped counters; see the module docstring."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)  # new bytes read as zero: magic missing → recount
            self._mm = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self.slots = memoryview(self._mm).cast("q")

    @property
    def trusted(self) -> bool:
        """Whether the totals are exact (no writer died mid-change, format known)."""
        return self.slots[_DIRTY] == 0 and self.slots[_MAGIC] == _MAGIC_VALUE

    @property
    def nonce(self) -> int:
        return self.slots[_NONCE]

    def totals(self) -> tuple[int, int]:
        """``(entries, bytes)``."""
        return self.slots[_COUNT], self.slots[_BYTES]

    def bind(self, index_id: int) -> None:
        """Counters describe the index ``index_id``; another index means recount."""
        if self.slots[_INDEX] != index_id:
            self.slots[_DIRTY] = -1
            self.slots[_INDEX] = index_id

    def invalidate(self) -> None:
        """Distrust the counters (the index was rebuilt): the next writer recounts."""
        self.slots[_DIRTY] = -1

    def close(self) -> None:
        self.slots.release()
        self._mm.close()


class Change:
    """A write transaction of the cache that keeps the shared counters exact.

    ``with Change(db, state, recount) as change:`` gives ``change.conn`` (inside
    ``BEGIN IMMEDIATE``); call ``change.add(entries, bytes)`` for every row
    added, replaced or removed. On commit the counters are marked exact and,
    if anything changed, the nonce moves so other memory tiers revalidate.
    """

    __slots__ = ("db", "state", "recount", "tx", "conn", "changed")

    def __init__(self, db: Database, state: SharedState, recount: Recount) -> None:
        self.db = db
        self.state = state
        self.recount = recount
        self.changed = False

    def __enter__(self) -> Change:
        self.tx = self.db.write()
        self.conn = self.tx.__enter__()
        slots = self.state.slots
        if slots[_DIRTY] != 0 or slots[_MAGIC] != _MAGIC_VALUE:
            try:
                count, nbytes = self.recount(self.conn)
            except BaseException as exc:
                self.tx.__exit__(type(exc), exc, exc.__traceback__)
                raise
            slots[_COUNT], slots[_BYTES], slots[_MAGIC] = count, nbytes, _MAGIC_VALUE
        slots[_DIRTY] = _pid()
        return self

    def add(self, entries: int, nbytes: int) -> None:
        slots = self.state.slots
        slots[_COUNT] += entries
        slots[_BYTES] += nbytes
        self.changed = True

    def set_totals(self, entries: int, nbytes: int) -> None:
        """Replace the counters by an exact count made inside this transaction."""
        slots = self.state.slots
        if (slots[_COUNT], slots[_BYTES]) != (entries, nbytes):
            slots[_COUNT], slots[_BYTES] = entries, nbytes

    def total_bytes(self) -> int:
        return self.state.slots[_BYTES]

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        # On any failure "dirty" stays set: the next writer recounts. (A failed COMMIT
        # never committed, but recounting is simpler than undoing partial deltas.)
        self.tx.__exit__(kind, exc, tb)
        if exc is None:
            slots = self.state.slots
            slots[_DIRTY] = 0
            if self.changed:
                slots[_NONCE] = private_random.getrandbits(63)
