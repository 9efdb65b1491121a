"""The :class:`Registry`: datasets, artifacts and lab resources in one database.

It is assembled from one part per concept (CRUD, containers, queries and
hierarchy, history, templates, locks, datasets and files), all working
through the same engine and write path (:mod:`._core`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .containers import ContainerOps
from .crud import CrudOps
from .engine import RegistryDB
from .files import FileOps
from .history import HistoryOps
from .locks import LockOps
from .query import QueryOps
from .schema import HEAD
from .schema import resources as resources_table
from .templates import TemplateOps

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["Registry"]


class Registry(CrudOps, ContainerOps, QueryOps, HistoryOps, TemplateOps, LockOps, FileOps):
    """Resources, datasets, templates and locks of one session's registry database.

    Built by ``session.registry``: SQLite in the home by default,
    ``RESMAN_REGISTRY_URL`` (``postgresql+psycopg://...``) for a shared one.
    Opening runs any pending schema migration; the database is never
    deleted or rebuilt (a damaged file raises :class:`RegistryCorruptError`).

    ``busy_timeout`` bounds every wait for another process's lock (then
    :class:`LockTimeout`); ``clock`` (epoch seconds) is for tests of expiry.

    >>> import tempfile, jupyter_resman as rm
    >>> from jupyter_resman.core.registry import Consumable
    >>> with rm.Session(home=tempfile.mkdtemp()) as s:
    ...     buffer = s.registry.add(Consumable(name="PBS", quantity=500, capacity=1000, unit="mL"))
    ...     s.registry.decrease_quantity(buffer, 50).quantity
    450.0
    """

    def __init__(
        self,
        session: Session,
        *,
        url: str | None = None,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self._home = session.home
        url = url or session.settings.registry_url or f"sqlite:///{session.home.registry_db}"
        self._db = RegistryDB(url, busy_timeout=busy_timeout)
        self._clock = clock
        try:
            #: whether opening this registry ran a schema migration
            self.migrated = self._db.open()
        except BaseException:
            self._db.close()  # no half-open pool left behind by a failed open
            raise

    @property
    def url(self) -> str:
        """The database (file path or URL without its password)."""
        return self._db.where

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.backend

    def describe(self) -> dict[str, Any]:
        """Counts and settings as plain values, for ``%resman registry`` and the dashboard."""
        r = resources_table.c
        query = (sa.select(r.kind, sa.func.count()).where(r.removed_at.is_(None))
                 .group_by(r.kind).order_by(r.kind))
        counts = {kind: n for kind, n in self._read(lambda conn: conn.execute(query).all())}
        return {
            "url": self.url,
            "backend": self.backend,
            "schema": HEAD,
            "resources": sum(counts.values()),
            "by_kind": counts,
            "locks": len(self.locks()),
            "templates": len(self.list_templates()),  # type: ignore[arg-type]
        }

    def close(self) -> None:
        """Close this process's connections; idempotent."""
        self._db.close()

    def __enter__(self) -> Registry:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"
