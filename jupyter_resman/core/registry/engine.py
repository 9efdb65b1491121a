"""The registry's database: one SQLAlchemy engine per process, short transactions.

SQLite (the default, ``<home>/registry.sqlite``) and PostgreSQL
(``RESMAN_REGISTRY_URL=postgresql+psycopg://...``) run the same statements;
what differs is set up here, once:

* **SQLite**: WAL, ``synchronous=NORMAL``, foreign keys, a ``busy_timeout``,
  and every read-then-write in a ``BEGIN IMMEDIATE`` transaction. pysqlite
  would otherwise start a *deferred* transaction, whose upgrade to a writer
  fails at once with "database is locked" instead of waiting; SQLAlchemy's
  documented recipe (``isolation_level = None`` plus our own ``BEGIN`` in
  the ``begin`` event) hands that control to us.
* **PostgreSQL**: ``lock_timeout`` bounds every wait for a row lock; a
  deadlock or serialization failure is retried (it rolled the whole
  transaction back, so re-running it is safe).
* **Both**: a wait that runs out becomes :class:`LockTimeout`, never an
  instant "database is locked"; a damaged file becomes
  :class:`RegistryCorruptError` naming it. The registry is never deleted,
  moved or rebuilt automatically: it may be the only record of a lab's samples.
* **fork**: the child must not touch the parent's connections (a PostgreSQL
  socket or SQLite file lock shared by two processes corrupts both). The pid
  is checked on every use; a child drops the inherited pool without closing
  it and opens its own connections.
* **Schema**: Alembic migrations run on open, under the write lock (SQLite)
  or an advisory lock (PostgreSQL), so two processes opening a new registry
  at once do not both create it. An up-to-date database costs one query.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from ..db import is_corruption, is_disk_full
from ..errors import ConfigError, LockTimeout, RegistryCorruptError, RegistryError, StoreError
from .schema import HEAD, VERSION_TABLE

#: Back-off jitter from our own generator: never disturb the user's global random state.
_jitter = random.Random()

__all__ = ["RegistryDB"]

log = logging.getLogger("jupyter_resman.registry")

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant works; it names the advisory lock that serializes migrations on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x7265736D616E  # "resman"
_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_TIMEOUT_SQLSTATES = {"55P03", "57014"}  # lock_not_available, query_canceled
_CORRUPT_SQLSTATES = {"XX001", "XX002"}  # data_corrupted, index_corrupted
_FULL_SQLSTATES = {"53100", "53200"}  # disk_full, out_of_memory
_MAX_RETRIES = 8


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class _Retry(Exception):
    """Internal: the transaction was rolled back by the server and may be re-run."""


class _Reconnect(Exception):
    """Internal: the connection was dead before anything was committed; run it again."""


class RegistryDB:
    """The engine, transactions and schema of one registry database.

    ``url`` is any SQLAlchemy URL for SQLite or PostgreSQL;
    ``busy_timeout`` (seconds) bounds every wait for a lock held by another
    connection before :class:`LockTimeout` is raised.
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(
                f"RESMAN_REGISTRY_URL={url!r} is not a database URL; use e.g. "
                "sqlite:////path/registry.sqlite or postgresql+psycopg://user@host/dbname"
            ) from exc
        self.backend = self.url.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"RESMAN_REGISTRY_URL uses {self.backend!r}; the registry supports sqlite and "
                "postgresql (postgresql+psycopg://user@host/dbname)"
            )
        if self.backend == "postgresql" and self.url.drivername == "postgresql":
            # psycopg 3 is what the test extras install; psycopg2 need not exist.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.busy_timeout = float(busy_timeout)
        self.path: Path | None = None
        if self.backend == "sqlite":
            if not self.url.database or self.url.database == ":memory:":
                raise ConfigError(
                    "the registry must live in a file shared by every process; use "
                    "sqlite:////absolute/path/registry.sqlite, not an in-memory database"
                )
            self.path = Path(self.url.database).absolute()
        self._engine: sa.Engine | None = None
        self._pid = -1
        self._lock = threading.Lock()
        self._orphans: list[Any] = []  # pools inherited through fork: kept, never closed

    # -- engine -----------------------------------------------------------------

    @property
    def where(self) -> str:
        """The file or the URL without its password, for messages."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> sa.Engine:
        """This process's engine, created on first use and replaced after fork."""
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            elif self._pid != os.getpid():
                # Keep the parent's pool referenced so its connections are never
                # garbage-collected (= closed) in the child, then start a fresh one.
                self._orphans.append(self._engine.pool)
                self._engine.dispose(close=False)
            self._pid = os.getpid()
            return self._engine

    def _create_engine(self) -> sa.Engine:
        if self.backend == "sqlite":
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": self.busy_timeout, "check_same_thread": False},
                pool_size=5, max_overflow=10, pool_timeout=self.busy_timeout,
                # Keys stored as written (not \u-escaped): SQLite's JSON paths match the
                # stored text, so an escaped "µL" key could never be found by its name.
                json_serializer=_json_dumps,
            )
            event.listen(engine, "connect", self._on_sqlite_connect)
            event.listen(engine, "begin", self._on_sqlite_begin)
        else:
            # No pool_pre_ping (a round trip per transaction): a connection the server
            # dropped fails on first use before anything is committed, and run() retries.
            engine = sa.create_engine(
                self.url, pool_size=5, max_overflow=10,
                pool_timeout=self.busy_timeout, json_serializer=_json_dumps,
            )
            event.listen(engine, "connect", self._on_pg_connect)
        return engine

    def _on_sqlite_connect(self, dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # We emit BEGIN ourselves (see _on_sqlite_begin); pysqlite must not.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)

    @staticmethod
    def _on_sqlite_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("resman_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    def _on_pg_connect(self, dbapi_conn: Any, _record: Any) -> None:
        previous = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('lock_timeout', %s, false)",
                    (f"{int(self.busy_timeout * 1000)}ms",),
                )
        finally:
            dbapi_conn.autocommit = previous

    # -- transactions ----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sa.Connection]:
        """One transaction, committed on success and rolled back on any error.

        ``write=True`` takes SQLite's write lock up front (``BEGIN IMMEDIATE``);
        on PostgreSQL writers lock the rows they change (``SELECT ... FOR
        UPDATE``), and reads run without a transaction (under READ COMMITTED
        every statement has its own snapshot anyway; BEGIN and COMMIT would
        only add two round trips). Database errors come out as registry errors.
        """
        committing = False
        try:
            with self.engine.connect() as conn:
                if self.backend == "sqlite":
                    if write:
                        conn.execution_options(resman_write=True)
                elif not write:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                trans = conn.begin()
                try:
                    yield conn
                except BaseException:
                    if trans.is_active:
                        trans.rollback()
                    raise
                committing = True
                trans.commit()
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated and not committing:
                # A pooled connection the server had closed (restart, idle timeout):
                # nothing was committed, so the caller may simply run it again.
                raise _Reconnect(str(exc.orig).strip()) from exc
            if exc.connection_invalidated:
                raise RegistryError(
                    f"lost the connection to the registry {self.where} while committing; the "
                    "change may or may not have been saved (check registry.history())"
                ) from exc
            raise self.translate(exc) from exc

    def run(self, fn: Callable[[sa.Connection], T], *, write: bool = True) -> T:
        """Run ``fn(conn)`` in a transaction, re-running it after a deadlock or a
        connection the server had dropped (both rolled everything back)."""
        reconnected = False
        for attempt in range(_MAX_RETRIES):
            try:
                with self.transaction(write=write) as conn:
                    return fn(conn)
            except _Reconnect as exc:
                if reconnected:
                    raise RegistryError(
                        f"cannot reach the registry database {self.where}: {exc}. Check "
                        "RESMAN_REGISTRY_URL and that the server is running."
                    ) from exc
                reconnected = True
            except _Retry as exc:
                if attempt == _MAX_RETRIES - 1:
                    raise LockTimeout(
                        f"the registry {self.where} kept aborting this transaction "
                        f"({exc}); retry later"
                    ) from exc
                # Back off with jitter so the processes that collided do not collide again.
                time.sleep(_jitter.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    def translate(self, exc: sa.exc.DBAPIError) -> Exception:
        """Turn a driver error into the registry error that says what to do."""
        orig = exc.orig
        if isinstance(orig, sqlite3.Error):
            return self._translate_sqlite(orig)
        state = getattr(orig, "sqlstate", None)
        if state in _RETRY_SQLSTATES:
            return _Retry(str(orig).strip())
        if state in _TIMEOUT_SQLSTATES:
            return LockTimeout(
                f"a row of the registry {self.where} stayed locked by another connection for "
                f"more than {self.busy_timeout:g}s; retry, or look for a stuck session "
                "(pg_stat_activity) holding a long transaction"
            )
        if state in _CORRUPT_SQLSTATES:
            return RegistryCorruptError(
                f"the registry database {self.where} reports damaged data ({orig}). Nothing "
                "was changed; restore it from a backup (pg_dump/pg_restore) or ask its admin."
            )
        if state in _FULL_SQLSTATES:
            return StoreError(f"the registry database {self.where} is out of space: {orig}")
        if isinstance(exc, sa.exc.OperationalError) and state is None:
            return RegistryError(
                f"cannot reach the registry database {self.where}: {str(orig).strip()}. "
                "Check RESMAN_REGISTRY_URL and that the server is running."
            )
        return exc

    def _translate_sqlite(self, orig: sqlite3.Error) -> Exception:
        text = str(orig)
        if is_corruption(orig):
            return RegistryCorruptError(
                f"the registry {self.path} is damaged ({text}). It was left untouched: the "
                "registry is never deleted or rebuilt automatically. Restore it from a "
                f"backup, try `sqlite3 {self.path} .recover`, or move it away (e.g. to "
                f"{self.path}.broken) to start an empty registry."
            )
        if is_disk_full(orig):
            return StoreError(
                f"no space left to write the registry {self.path} ({text}); the change was "
                "rolled back. Free some space and retry."
            )
        if isinstance(orig, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return LockTimeout(
                f"the registry {self.path} stayed locked by another process for more than "
                f"{self.busy_timeout:g}s; retry, or look for a process holding a long "
                "transaction"
            )
        if isinstance(orig, sqlite3.OperationalError) and "unable to open" in text:
            return RegistryError(
                f"cannot open the registry {self.path} ({text}); check that its folder exists "
                "and is writable"
            )
        return orig

    # -- schema ------------------------------------------------------------------------

    def open(self) -> bool:
        """Bring the schema to :data:`HEAD`; returns whether a migration ran.

        An up-to-date database costs one query (no inspector, no Alembic).
        """
        if self.run(self._quick_revision, write=False) == HEAD:
            return False
        return self.run(self._migrate, write=True)

    @staticmethod
    def _quick_revision(conn: sa.Connection) -> str | None:
        # Reads only: SQLite's read transaction and PostgreSQL's autocommit both survive
        # the "no such table" of a new database, which just means "migrate".
        try:
            return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            if "resman_registry_version" not in str(exc.orig):
                raise
            return None

    def _revision(self, conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()

    def _migrate(self, conn: sa.Connection) -> bool:
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        if self.backend == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": _MIGRATION_LOCK_KEY})
        current = self._revision(conn)  # again, now that we hold the lock
        if current == HEAD:
            return False
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        if current is not None and current not in known:
            raise RegistryError(
                f"the registry {self.where} has schema revision {current!r}, newer than this "
                f"jupyter_resman knows (up to {HEAD!r}); upgrade jupyter_resman to use it"
            )
        if current is None:
            existing = set(sa.inspect(conn).get_table_names()) & {"resources", "datasets"}
            if existing:
                raise RegistryError(
                    f"{self.where} already has tables {sorted(existing)} that jupyter_resman did "
                    "not create; point RESMAN_REGISTRY_URL at a database of its own"
                )
        log.info("migrating the registry %s from %s to %s", self.where, current, HEAD)
        command.upgrade(config, "head")
        return True

    def close(self) -> None:
        """Close this process's connections; idempotent. A later use reopens."""
        with self._lock:
            engine, self._engine = self._engine, None
            if engine is not None and self._pid == os.getpid():
                engine.dispose()
