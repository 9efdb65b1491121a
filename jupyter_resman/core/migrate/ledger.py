"""The migration ledger: what was imported from where, one committed row per entry.

``<home>/migrations.sqlite`` remembers every legacy entry a migration
handled: the store and item it came from, a signature of the source as it
was then (size and modification time, or diskcache's store time), where it
went (cache namespace and key, or dataset id) and its status. It is what makes
a migration idempotent (a second run finds every entry done) and resumable
(a run killed half-way committed every entry it finished; the next run
imports only the rest).

Unlike the cache index this file is *not* disposable: losing it would make
the next run import everything again and, worse, forget which sources were
already moved. It is never rebuilt automatically (see :class:`~..db.Database`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..db import Database

__all__ = ["DONE", "Ledger", "LedgerRow"]

FORMAT_VERSION = 1

#: Statuses of an entry whose content is in the home (imported; moved = source deleted too).
DONE = ("imported", "moved")
STATUSES = ("imported", "moved", "failed", "conflict")


def _schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE entries ("
        " kind TEXT NOT NULL,"        # joblib | diskcache | npy | npz | csv
        " store TEXT NOT NULL,"       # the legacy store's folder (or the CSV's folder)
        " item TEXT NOT NULL,"        # the entry inside it (function/hash, key digest, file)
        " label TEXT NOT NULL,"       # the original key, readable
        " signature TEXT NOT NULL,"   # the source as it was when handled
        " status TEXT NOT NULL,"
        " namespace TEXT, cache_key BLOB,"  # where a cache entry went
        " dataset_id TEXT, target TEXT,"    # where a dataset went (file path)
        " fingerprint TEXT, bytes INTEGER NOT NULL DEFAULT 0, error TEXT,"
        " run TEXT NOT NULL, updated REAL NOT NULL,"
        " PRIMARY KEY (kind, store, item)) WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX entries_target ON entries (namespace, cache_key)")


@dataclasses.dataclass(frozen=True)
class LedgerRow:
    """One entry as the ledger last recorded it."""

    kind: str
    store: str
    item: str
    label: str
    signature: str
    status: str
    namespace: str | None = None
    cache_key: bytes | None = None
    dataset_id: str | None = None
    target: str | None = None
    fingerprint: str | None = None
    bytes: int = 0
    error: str | None = None
    run: str = ""
    updated: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in DONE


_COLUMNS = [f.name for f in dataclasses.fields(LedgerRow)]
_UPSERT = (
    f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (kind, store, item) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[3:])
)


class Ledger:
    """The ledger of one home; every :meth:`record` is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = Database(self.path, schema=_schema, version=FORMAT_VERSION, disposable=False,
                            label="migration ledger")

    @classmethod
    def existing(cls, path: Path) -> Ledger | None:
        """The ledger at ``path`` if one was ever written, else ``None`` (a dry run
        must not create files in the home)."""
        return cls(path) if Path(path).exists() else None

    def rows(self, kind: str, store: str) -> dict[str, LedgerRow]:
        """Every recorded entry of one store, by item."""
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE kind = ? AND store = ?",
                (kind, store)).fetchall()
        return {row[2]: LedgerRow(*row) for row in found}

    def claimant(self, namespace: str, cache_key: bytes, *, other_than: tuple[str, str, str]
                 ) -> LedgerRow | None:
        """A done entry of *another* source that already imported into this cache key."""
        kind, store, item = other_than
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE namespace = ? AND cache_key = ? "
                "AND status IN ('imported', 'moved') AND NOT (kind = ? AND store = ? AND item = ?) "
                "LIMIT 1", (namespace, cache_key, kind, store, item)).fetchone()
        return LedgerRow(*row) if row else None

    def dataset_ids(self) -> set[str]:
        """Dataset ids that migrations have given out (never reused for another file)."""
        with self._db.read() as conn:
            return {i for (i,) in conn.execute(
                "SELECT DISTINCT dataset_id FROM entries WHERE dataset_id IS NOT NULL")}

    def record(self, row: LedgerRow) -> LedgerRow:
        """Insert or replace the row of ``(kind, store, item)``; committed on return."""
        if row.status not in STATUSES:
            raise ValueError(f"unknown ledger status {row.status!r}")
        row = dataclasses.replace(row, updated=time.time())
        with self._db.write() as conn:
            conn.execute(_UPSERT, [getattr(row, c) for c in _COLUMNS])
        return row

    def all(self, *, runs: Iterable[str] | None = None) -> list[LedgerRow]:
        """Every row (of the given runs only, if any), oldest first."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM entries"
        params: list[Any] = []
        wanted = list(runs) if runs is not None else None
        if wanted is not None:
            sql += f" WHERE run IN ({', '.join('?' * len(wanted))})"
            params = wanted
        with self._db.read() as conn:
            return [LedgerRow(*row) for row in conn.execute(sql + " ORDER BY updated", params)]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
