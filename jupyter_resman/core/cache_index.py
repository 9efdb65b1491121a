"""The cache index: SQL schema and the value-file folder layout.

One row per entry in ``entries`` (rowid = a 64-bit id of namespace + key).
Small values live inline in the row; larger ones in a file under
``values/<2 hex>/`` whose name is unique per write, so a row never points at
a file another write could change. Entry and byte totals live in shared memory
(:mod:`.cache_state`), not in a table: one page less to write per ``set``.
"""

from __future__ import annotations

import os
import sqlite3

import xxhash

__all__ = ["FORMAT_VERSION", "schema", "entry_id", "value_relpath", "POLICY_ORDER"]

FORMAT_VERSION = 2

#: Values up to this size are stored inline in the index (one write, no file).
INLINE_LIMIT = 16 * 1024

POLICY_ORDER = {
    "lru": "accessed ASC, created ASC",
    "lfu": "hits ASC, accessed ASC",
    "fifo": "created ASC",
}


_SCHEMA = (
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        key BLOB NOT NULL,
        stamp INTEGER NOT NULL,
        created REAL NOT NULL,
        ttl REAL,
        accessed REAL NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        compute_s REAL NOT NULL DEFAULT 0,
        tags TEXT,
        file TEXT,
        value BLOB
    )""",
    """CREATE TABLE stats (
        namespace TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        mem_hits INTEGER NOT NULL DEFAULT 0,
        disk_hits INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0,
        sets INTEGER NOT NULL DEFAULT 0,
        evictions INTEGER NOT NULL DEFAULT 0,
        evicted_bytes INTEGER NOT NULL DEFAULT 0,
        time_saved REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, bucket)
    ) WITHOUT ROWID""",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID",
)


def schema(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would commit the caller's transaction.
    for statement in _SCHEMA:
        conn.execute(statement)
    # A fresh id per index file: shared counters made for another file are not trusted.
    conn.execute("INSERT INTO meta (name, value) VALUES ('index_id', ?)",
                 (int.from_bytes(os.urandom(7), "little") + 1,))


def entry_id(namespace: str, encoded_key: bytes) -> int:
    """The signed 64-bit row id of a key (SQLite's INTEGER PRIMARY KEY range).

    Two keys sharing an id (odds ~1e-8 at a million entries) cannot return
    each other's value: the full key is stored and compared on every read; the
    later write simply replaces the earlier entry.
    """
    prefix = ID_PREFIXES.get(namespace)
    if prefix is None:
        prefix = ID_PREFIXES[namespace] = namespace.encode() + b"\0"
    return xxhash.xxh3_64_intdigest(prefix + encoded_key) - (1 << 63)


#: ``namespace + NUL`` as bytes, per namespace seen (the cache's read path inlines entry_id).
ID_PREFIXES: dict[str, bytes] = {}


def value_relpath(entry: int, stamp: int) -> str:
    """``values/ab/<id>-<stamp>.val``: unique per write, named only by numbers."""
    unsigned = entry + (1 << 63)
    return f"values/{unsigned & 0xFF:02x}/{unsigned:016x}-{stamp:016x}.val"
