"""A SQL database through SQLAlchemy: each resource is a ``Connection`` from the engine's pool.

>>> import tempfile, os
>>> provider = SQLProvider("sqlite:///" + os.path.join(tempfile.mkdtemp(), "lab.db"))
>>> conn = provider.acquire()
>>> conn.exec_driver_sql("SELECT 41 + 1").scalar()
42
>>> provider.reset(conn)        # back in our pool: any open transaction is rolled back
>>> provider.release(conn)      # disposed of: returned to SQLAlchemy's own pool
>>> provider.health_check().status
<HealthStatus.HEALTHY: 'healthy'>
>>> provider.close()
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ...errors import ProviderError
from ..protocol import BaseProvider, HealthReport

__all__ = ["SQLProvider"]


class SQLProvider(BaseProvider):
    """Connections of a SQLAlchemy engine, given as an ``Engine`` or a URL.

    Given a URL, the provider builds the engine (``engine_options`` go to
    ``create_engine``) and disposes of it on :meth:`close`; given an engine,
    it leaves it to its owner unless ``dispose_engine=True``.

    ``ping=True`` checks an idle connection with the dialect's own ping before
    handing it out again (like SQLAlchemy's ``pool_pre_ping``), so a database
    restart costs a reconnect rather than an error in the notebook.
    """

    kind = "sql"

    def __init__(self, engine: Engine | str, *, engine_options: Mapping[str, Any] | None = None,
                 ping: bool = True, dispose_engine: bool | None = None) -> None:
        if isinstance(engine, Engine):
            if engine_options:
                raise TypeError("engine_options apply only when SQLProvider builds the engine "
                                "from a URL; configure your Engine directly")
            self.engine = engine
            self._owns_engine = bool(dispose_engine)
        else:
            try:
                self.engine = sa.create_engine(engine, **dict(engine_options or {}))
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise ProviderError(f"cannot build a SQLAlchemy engine for {_safe(engine)}: {exc}. "
                                    "Check the URL, e.g. sqlite:///path/to/file.db or "
                                    "postgresql+psycopg://user@host/db") from exc
            self._owns_engine = True if dispose_engine is None else dispose_engine
        self.ping = ping
        # Never show a password in tables, logs or the live feed.
        self.target = self.engine.url.render_as_string(hide_password=True)

    def acquire(self) -> Connection:
        return self.engine.connect()

    def release(self, resource: Connection) -> None:
        resource.close()  # rolls back and returns the DBAPI connection to the engine's pool

    def reset(self, resource: Connection) -> None:
        # The next holder must not inherit a half-done transaction.
        if resource.in_transaction():
            resource.rollback()

    def validate(self, resource: Connection) -> bool:
        if resource.closed or resource.invalidated:
            return False
        if not self.ping:
            return True
        try:
            dbapi = resource.connection.dbapi_connection
            return dbapi is not None and bool(resource.dialect.do_ping(dbapi))
        except Exception:
            # The DBAPI connection is dead: make SQLAlchemy drop it from its pool too.
            resource.invalidate()
            return False

    def health_check(self) -> HealthReport:
        start = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                dbapi = conn.connection.dbapi_connection
                alive = dbapi is not None and conn.dialect.do_ping(dbapi)
                version = conn.dialect.server_version_info
        except Exception as exc:
            return HealthReport.failed(f"cannot reach {self.target}: {type(exc).__name__}: "
                                       f"{_first_line(exc)}", latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        if not alive:
            return HealthReport.failed(f"{self.target} did not answer a ping", latency_s=latency)
        shown = ".".join(str(part) for part in version) if version else "unknown"
        return HealthReport.ok(f"{self.engine.dialect.name} {shown} answered in "
                               f"{latency * 1000:.1f} ms", latency_s=latency,
                               dialect=self.engine.dialect.name, server_version=shown)

    def metrics(self) -> dict[str, Any]:
        pool = self.engine.pool
        out: dict[str, Any] = {"engine_pool": type(pool).__name__, "status": pool.status()}
        for field in ("size", "checkedout", "checkedin", "overflow"):
            method = getattr(pool, field, None)
            if callable(method):
                out[field] = method()
        return out

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def _safe(url: Any) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the given URL"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
