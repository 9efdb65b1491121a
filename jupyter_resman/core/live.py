"""The live feed: what running kernels publish for other processes to draw.

A kernel's monitor publishes its recent samples and its progress trees
publish their snapshots here (``<home>/live.sqlite``); the Jupyter server
reads them to draw per-kernel graphs and every kernel's progress bars without
asking the kernels. Everything here is short-lived and disposable: rows are
JSON, keyed by the publishing process's pid, and pruned by age and when the
process is gone.

>>> import tempfile, pathlib
>>> live = LiveStore(pathlib.Path(tempfile.mkdtemp()) / "live.sqlite")
>>> live.publish_samples([{"t": 1.0, "rss": 10}, {"t": 2.0, "rss": 12}], now=2.0)
>>> [s["rss"] for s in live.recent_samples()[os.getpid()]]
[10, 12]
>>> live.close()
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

from .db import Database

__all__ = ["LiveStore"]

FORMAT_VERSION = 1

#: Samples older than this are dropped when a process publishes new ones.
SAMPLE_RETENTION_S = 300.0
#: A finished progress tree stays visible this long, then is dropped.
FINISHED_RETENTION_S = 30.0


def _schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE processes (pid INTEGER PRIMARY KEY, create_time REAL NOT NULL, "
        "updated REAL NOT NULL, info TEXT NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE samples (pid INTEGER NOT NULL, t REAL NOT NULL, data TEXT NOT NULL, "
        "PRIMARY KEY (pid, t)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE progress (pid INTEGER NOT NULL, tree_id TEXT NOT NULL, updated REAL NOT NULL, "
        "finished REAL, data TEXT NOT NULL, PRIMARY KEY (pid, tree_id)) WITHOUT ROWID"
    )


def _process_create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


class LiveStore:
    """Rows published by running processes, read by any process."""

    def __init__(self, path: Path) -> None:
        self.db = Database(
            Path(path), schema=_schema, version=FORMAT_VERSION, disposable=True,
            busy_timeout=10.0, label="live feed",
        )
        self._pid = -1
        self._create_time = 0.0

    def _me(self) -> tuple[int, float]:
        pid = os.getpid()
        if pid != self._pid:  # after fork we are a different process
            self._pid, self._create_time = pid, _process_create_time(pid)
        return pid, self._create_time

    # -- processes ------------------------------------------------------------

    def publish_process(self, info: Mapping[str, Any], *, now: float | None = None) -> None:
        """Record (or refresh) facts about this process, e.g. its memory limit."""
        pid, created = self._me()
        now = time.time() if now is None else now
        with self.db.write() as conn:
            old = conn.execute("SELECT info FROM processes WHERE pid = ?", (pid,)).fetchone()
            merged = {**(json.loads(old[0]) if old else {}), **info}
            conn.execute(
                "INSERT OR REPLACE INTO processes (pid, create_time, updated, info) VALUES (?, ?, ?, ?)",
                (pid, created, now, json.dumps(merged, default=str)),
            )

    def processes(self) -> dict[int, dict[str, Any]]:
        """``{pid: info}`` of processes that published and are still alive."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT pid, create_time, info FROM processes").fetchall()
        return {pid: json.loads(info) for pid, created, info in rows if _alive(pid, created)}

    # -- monitor samples -----------------------------------------------------------

    def publish_samples(
        self, samples: Iterable[Mapping[str, Any]], *, now: float | None = None,
        retention: float = SAMPLE_RETENTION_S,
    ) -> None:
        """Append samples (each with a ``t`` key) and drop this process's old ones."""
        pid, created = self._me()
        now = time.time() if now is None else now
        rows = [(pid, float(s["t"]), json.dumps(s, default=_json_default)) for s in samples]
        with self.db.write() as conn:
            conn.executemany("INSERT OR REPLACE INTO samples (pid, t, data) VALUES (?, ?, ?)", rows)
            conn.execute("DELETE FROM samples WHERE pid = ? AND t < ?", (pid, now - retention))
            conn.execute(
                "INSERT INTO processes (pid, create_time, updated, info) VALUES (?, ?, ?, '{}') "
                "ON CONFLICT (pid) DO UPDATE SET updated = excluded.updated, "
                "create_time = excluded.create_time",
                (pid, created, now),
            )

    def recent_samples(
        self, pid: int | None = None, *, since: float | None = None
    ) -> dict[int, list[dict[str, Any]]]:
        """``{pid: [sample, ...]}`` oldest first, for live processes only."""
        query = "SELECT s.pid, s.data, p.create_time FROM samples s JOIN processes p USING (pid)"
        clauses, params = [], []
        if pid is not None:
            clauses.append("s.pid = ?")
            params.append(pid)
        if since is not None:
            clauses.append("s.t >= ?")
            params.append(since)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY s.pid, s.t"
        with self.db.read() as conn:
            rows = conn.execute(query, params).fetchall()
        out: dict[int, list[dict[str, Any]]] = {}
        alive: dict[int, bool] = {}
        for row_pid, data, created in rows:
            if row_pid not in alive:
                alive[row_pid] = _alive(row_pid, created)
            if alive[row_pid]:
                out.setdefault(row_pid, []).append(json.loads(data))
        return out

    # -- progress trees ------------------------------------------------------------

    def publish_progress(
        self, tree_id: str, snapshot: Mapping[str, Any], *, finished: bool = False,
        now: float | None = None,
    ) -> None:
        """Store the latest snapshot of one progress tree of this process."""
        pid, created = self._me()
        now = time.time() if now is None else now
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO progress (pid, tree_id, updated, finished, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (pid, tree_id, now, now if finished else None,
                 json.dumps(snapshot, default=_json_default)),
            )
            conn.execute(
                "DELETE FROM progress WHERE finished IS NOT NULL AND finished < ?",
                (now - FINISHED_RETENTION_S,),
            )
            conn.execute(
                "INSERT INTO processes (pid, create_time, updated, info) VALUES (?, ?, ?, '{}') "
                "ON CONFLICT (pid) DO UPDATE SET updated = excluded.updated",
                (pid, created, now),
            )

    def drop_progress(self, tree_id: str) -> None:
        pid, _ = self._me()
        with self.db.write() as conn:
            conn.execute("DELETE FROM progress WHERE pid = ? AND tree_id = ?", (pid, tree_id))

    def progress(
        self, *, now: float | None = None, keep_finished: float = FINISHED_RETENTION_S
    ) -> dict[int, list[dict[str, Any]]]:
        """``{pid: [snapshot, ...]}``: running trees and those finished recently."""
        now = time.time() if now is None else now
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT g.pid, g.data, p.create_time FROM progress g JOIN processes p USING (pid) "
                "WHERE g.finished IS NULL OR g.finished >= ? ORDER BY g.pid, g.updated",
                (now - keep_finished,),
            ).fetchall()
        out: dict[int, list[dict[str, Any]]] = {}
        for pid, data, created in rows:
            if _alive(pid, created):
                out.setdefault(pid, []).append(json.loads(data))
        return out

    # -- housekeeping ---------------------------------------------------------------

    def prune_dead(self) -> int:
        """Delete everything published by processes that have exited; returns how many."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT pid, create_time FROM processes").fetchall()
        dead = [pid for pid, created in rows if not _alive(pid, created)]
        if dead:
            with self.db.write() as conn:
                for table in ("samples", "progress", "processes"):
                    conn.executemany(f"DELETE FROM {table} WHERE pid = ?", [(p,) for p in dead])
        return len(dead)

    def close(self) -> None:
        self.db.close()


def _alive(pid: int, create_time: float) -> bool:
    """A pid is alive only if it exists *and* is the same process (pids are reused)."""
    try:
        actual = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return create_time == 0.0 or abs(actual - create_time) < 1.0


def _json_default(obj: Any) -> Any:
    # numpy scalars and the like: fall back to their Python value.
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
