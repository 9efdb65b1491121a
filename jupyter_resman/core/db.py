"""SQLite databases shared by every process that opens the same home.

The rules (SQLite's own guarantees, python-diskcache's practice):

* WAL mode, so readers never block the one writer and a crash mid-transaction
  rolls back; ``synchronous=NORMAL`` (durable across process crashes, which is
  what a cache and a progress feed need).
* Every read-then-write runs in a short ``BEGIN IMMEDIATE`` transaction: a
  deferred transaction that upgrades to a writer gets ``SQLITE_BUSY`` without
  waiting for the busy handler.
* One connection per process, reopened after ``fork`` (the pid is checked), and
  guarded by a lock so threads of one process share it safely.
* A format version in ``PRAGMA user_version``: an older disposable database is
  rebuilt, a newer one is refused with a clear message.
* A corrupt *disposable* database is moved aside and rebuilt with a warning; a
  non-disposable one raises and is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CacheIntegrityWarning, LockTimeout, StoreCorruptError, StoreError

__all__ = ["Database", "forget_after_fork", "is_disk_full", "is_corruption"]

log = logging.getLogger("jupyter_resman.store")

Schema = Callable[[sqlite3.Connection], None]

_FULL_CODES = {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC",
               "SQLITE_IOERR_TRUNCATE", "SQLITE_IOERR_SHMSIZE"}
_CORRUPT_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means "no space left" (ENOSPC, EFBIG, SQLITE_FULL, SQLITE_IOERR)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        if name in _FULL_CODES:
            return True
        text = str(exc).lower()
        return "disk is full" in text or "disk i/o error" in text
    return False


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` means the database file itself is damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "")
    if name in _CORRUPT_CODES:
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


_fork_aware: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_after_fork(obj: Any) -> None:
    """Call ``obj._after_fork()`` in a forked child, before it runs any code of ours.

    A child must never use (or close) its parent's SQLite connection, cursors or
    locks held by threads that do not exist in the child.
    """
    _fork_aware.add(obj)


def _reset_in_child() -> None:
    for obj in list(_fork_aware):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


class Database:
    """One SQLite file, one connection per process, short write transactions.

    ``schema(conn)`` creates the tables of format ``version`` inside a write
    transaction; it runs once per file (``PRAGMA user_version`` remembers).
    """

    def __init__(
        self,
        path: Path,
        *,
        schema: Schema,
        version: int,
        disposable: bool,
        busy_timeout: float = 30.0,
        label: str = "database",
        lock: threading.RLock | None = None,
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.version = version
        self.disposable = disposable
        self.busy_timeout = busy_timeout
        self.label = label
        # Callers with their own state (the cache's memory tier) pass their lock,
        # so state and connection are always locked together, in one order.
        self._owns_lock = lock is None
        self.lock = lock if lock is not None else threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._ino = -1
        forget_after_fork(self)

    def _after_fork(self) -> None:
        self._conn = None  # the parent's: never used nor closed here
        self._pid = -1
        if self._owns_lock:
            self.lock = threading.RLock()

    # -- connection ---------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This process's connection, opened (or reopened after fork) on demand."""
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            return conn
        with self.lock:
            if self._conn is not None and self._pid == os.getpid():
                return self._conn
            # After fork the parent's connection must not be used *or closed*
            # by the child (closing would release the parent's locks).
            self._conn = None
            self._conn = self._open()
            self._pid = os.getpid()
            return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_once()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc) or not self.disposable:
                raise self._error(exc) from exc
            self._recover(exc)
            return self._open_once()

    def _open_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            os.chmod(self.path, 0o600)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Memory-mapped reads skip a read() copy per page: ~1 µs off every lookup.
            conn.execute("PRAGMA mmap_size = 67108864")
            conn.execute("PRAGMA cache_size = -8192")
            # Keep the WAL from growing without bound after a burst of writes.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self._ensure_schema(conn)
            self._ino = os.stat(self.path).st_ino
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found == self.version:
            return
        if found > self.version:
            raise StoreError(
                f"{self.path} has format {found}, newer than this jupyter_resman understands "
                f"({self.version}); upgrade jupyter_resman"
                + (" or delete the file (it is a disposable cache)." if self.disposable else ".")
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found != self.version:
                has_tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
                if has_tables:
                    if not self.disposable:
                        raise StoreError(
                            f"{self.path} holds tables of an unknown format {found}; it was left "
                            "untouched. Move it away (or restore a backup) and retry.")
                    log.warning("%s: format %s is older than %s; rebuilding", self.path, found,
                                self.version)
                    _drop_all(conn)
                self.schema(conn)
                conn.execute(f"PRAGMA user_version = {int(self.version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _recover(self, exc: BaseException) -> None:
        """Move a corrupt disposable database aside (under a lock) and start empty."""
        lock_path = self.path.with_name(self.path.name + ".recover-lock")
        with open(lock_path, "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            # Another process may have recovered already: only move a file that
            # is still corrupt, never a fresh database somebody just built.
            if _still_corrupt(self.path):
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(self.path) + suffix)
                    if src.exists():
                        os.replace(src, Path(str(aside) + suffix))
                warnings.warn(
                    f"the {self.label} {self.path} was corrupt ({exc}); it was moved to {aside} "
                    "and a new empty one was created. Cached values will be recomputed.",
                    CacheIntegrityWarning,
                    stacklevel=4,
                )

    # -- transactions -------------------------------------------------------

    def write(self) -> _Transaction:
        """``with db.write() as conn:`` — a ``BEGIN IMMEDIATE`` transaction, committed on
        success, rolled back on error. (A class, not a generator: it is on the hot path.)"""
        return _Transaction(self)

    def read(self) -> _Reading:
        """``with db.read() as conn:`` — the connection under the process lock."""
        return _Reading(self)

    def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """One row of one query, with the least overhead (the cache's read path)."""
        with self.lock:
            try:
                return self.connection().execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> Exception:
        """Translate a sqlite3 error into one of ours (or return it unchanged)."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            return LockTimeout(
                f"the {self.label} {self.path} stayed locked by another process for more than "
                f"{self.busy_timeout:g}s; retry, or look for a stuck process holding it"
            )
        if is_corruption(exc):
            if self.disposable:
                # Drop our connection: the next call reopens and recovers.
                self.close()
            return StoreCorruptError(
                f"the {self.label} {self.path} is damaged ({text})"
                + ("; it will be rebuilt on next use" if self.disposable else
                   "; it was left untouched. Restore it from a backup or move it away.")
            )
        return exc

    def recover(self) -> None:
        """Move a corrupt disposable database aside now; the next use starts empty."""
        if not self.disposable:
            raise StoreError(f"refusing to rebuild {self.path}: it is not disposable")
        with self.lock:
            self.close()
            self._recover(StoreCorruptError(f"{self.path} is damaged"))

    def reset_if_replaced(self) -> bool:
        """Reopen when another process moved a corrupt file aside (inode changed)."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = -1
        if ino != self._ino:
            self.close()
            return True
        return False

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None


def _drop_all(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for kind, name in rows:
        conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')


def _still_corrupt(path: Path) -> bool:
    try:
        conn = sqlite3.connect(path, timeout=1.0)
    except sqlite3.DatabaseError:
        return True
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()
        return result is None or result[0] != "ok"
    except sqlite3.DatabaseError as exc:
        # "locked" means a healthy database in use: never move that one aside.
        return is_corruption(exc)
    finally:
        conn.close()


class _Transaction:
    __slots__ = ("db", "conn")

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.lock.acquire()
        try:
            self.conn = conn = self.db.connection()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self.db.lock.release()
            if isinstance(exc, sqlite3.Error):
                raise self.db._error(exc) from exc
            raise
        return conn

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self.conn
        try:
            if exc is None:
                try:
                    conn.execute("COMMIT")
                    return
                except sqlite3.Error as commit_exc:
                    exc = commit_exc
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    _reraise(self.db, commit_exc)
                    raise
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # rollback after an I/O error may fail too
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                _reraise(self.db, exc)
        finally:
            self.db.lock.release()


class _Reading:
    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.lock.acquire()
        try:
            return self.db.connection()
        except BaseException as exc:
            self.db.lock.release()
            if isinstance(exc, sqlite3.Error):
                raise self.db._error(exc) from exc
            raise

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.db.lock.release()
        if isinstance(exc, sqlite3.Error):
            _reraise(self.db, exc)


def _reraise(db: Database, exc: sqlite3.Error) -> None:
    """Raise our translation of ``exc``; return (letting it propagate) if there is none."""
    translated = db._error(exc)
    if translated is not exc:
        raise translated from exc
