"""The plan: every legacy store found, its entries, and which of them still need importing.

Planning reads and never writes: no ledger, registry or cache entry is
created, no source file is touched. That is all a dry run does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MigrationError
from ..keys import check_namespace, encode_key
from ..settings import format_size
from .discover import discover, resolve_sources
from .ledger import Ledger, LedgerRow
from .stores import CsvStore, Entry, LegacyStore, available

if TYPE_CHECKING:
    import pandas

    from ..session import Session

__all__ = ["MigrationPlan", "PlannedStore", "plan_migration"]

log = logging.getLogger("jupyter_resman.migrate")

LEDGER_FILE = "migrations.sqlite"


@dataclasses.dataclass
class PlannedStore:
    """One legacy store, its entries and what a migration would do with them.

    ``pending`` entries are new, changed since they were imported, or were
    imported before but are no longer in the cache; the rest are ``done``.
    ``problem`` says why the store cannot be read (then it has no entries).
    """

    store: LegacyStore
    entries: list[Entry]
    pending: list[Entry]
    problem: str | None = None

    @property
    def kind(self) -> str:
        return self.store.kind

    @property
    def bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    @property
    def pending_bytes(self) -> int:
        return sum(e.nbytes for e in self.pending)

    @property
    def done(self) -> int:
        return len(self.entries) - len(self.pending)


@dataclasses.dataclass
class MigrationPlan:
    """What :func:`plan_migration` found: run it with :func:`~.run.migrate`."""

    sources: list[Path]
    origin: str  # "--source", or the environment variables the folders came from
    stores: list[PlannedStore]
    notes: list[str]
    namespace: str | None = None

    @property
    def entries(self) -> int:
        return sum(len(s.entries) for s in self.stores)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.stores)

    @property
    def pending(self) -> int:
        return sum(len(s.pending) for s in self.stores)

    @property
    def pending_bytes(self) -> int:
        return sum(s.pending_bytes for s in self.stores)

    def missing_modules(self) -> list[str]:
        """Packages needed to read the stores found that are not installed."""
        return sorted({s.store.module for s in self.stores
                       if s.store.module and not available(s.store.module)})

    def table(self) -> pandas.DataFrame:
        """One row per store: kind, location, entries, to import, sizes, notes."""
        import pandas as pd

        rows = [{
            "kind": s.kind,
            "location": str(s.store.path),
            "what": s.store.name,
            "entries": len(s.entries),
            "to import": len(s.pending),
            "size to import": format_size(s.pending_bytes),
            "imported before": s.done,
            "note": s.problem or "",
        } for s in self.stores]
        return pd.DataFrame(rows, columns=["kind", "location", "what", "entries", "to import",
                                           "size to import", "imported before", "note"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": [str(s) for s in self.sources], "origin": self.origin,
            "entries": self.entries, "bytes": self.bytes, "pending": self.pending,
            "pending_bytes": self.pending_bytes, "notes": list(self.notes),
            "stores": self.table().to_dict(orient="records"),
        }


def plan_migration(
    session: Session, sources: Sequence[str | os.PathLike[str]] | None = None, *,
    namespace: str | None = None, environ: Mapping[str, str] | None = None,
) -> MigrationPlan:
    """Find the legacy stores under ``sources`` (or the legacy locations set in the
    environment) and work out which entries a migration would import.

    Changes nothing. Raises :class:`MigrationError` when no folder is given
    or set, or a given folder does not exist.
    """
    if namespace is not None:
        check_namespace(namespace)
    folders, origin, notes = resolve_sources(sources, home=session.home.root, environ=environ)
    stores = discover(folders, exclude=[session.home.root, session.home.cache_dir])
    ledger = Ledger.existing(session.home.root / LEDGER_FILE)
    try:
        state = Status(session, ledger, registry=_registry_if_present(session))
        state.assign_dataset_ids([s for s in stores if isinstance(s, CsvStore)])
        planned = []
        for store in stores:
            try:
                entries = store.scan(namespace)
            except MigrationError as exc:  # a reader's package is missing
                planned.append(PlannedStore(store, [], [], problem=str(exc)))
                continue
            except Exception as exc:  # a damaged store: say so, plan the others
                log.warning("cannot read %s: %s", store.path, exc)
                planned.append(PlannedStore(store, [], [], problem=f"unreadable: {exc}"))
                continue
            finally:
                store.close()
            rows = state.rows(store)
            pending = [e for e in entries if not state.is_done(store, e, rows.get(e.item))]
            planned.append(PlannedStore(store, entries, pending))
    finally:
        if ledger is not None:
            ledger.close()
    if any(getattr(p.store, "expired", 0) for p in planned):
        skipped = sum(getattr(p.store, "expired", 0) for p in planned)
        notes.append(f"{skipped} expired diskcache entr{'y' if skipped == 1 else 'ies'} "
                     "will not be imported")
    for module in sorted({p.store.module for p in planned if p.store.module}):
        if not available(module):
            notes.append(f"some folders need the {module} package: pip install {module}")
    return MigrationPlan(folders, origin, planned, notes, namespace)


def _registry_if_present(session: Session) -> Any:
    # A dry run must not create the registry database just to learn it is empty.
    return session.existing_registry()


class Status:
    """Decides, entry by entry, whether it is already in the home."""

    def __init__(self, session: Session, ledger: Ledger | None, registry: Any) -> None:
        self.session = session
        self.ledger = ledger
        self.registry = registry
        self._present: dict[str, set[bytes]] = {}
        self._datasets: set[str] | None = None

    def rows(self, store: LegacyStore) -> dict[str, LedgerRow]:
        return self.ledger.rows(store.kind, store.ledger_id) if self.ledger is not None else {}

    def present(self, namespace: str) -> set[bytes]:
        """Encoded keys in one cache namespace (read once, then kept up to date by the run)."""
        keys = self._present.get(namespace)
        if keys is None:
            keys = self._present[namespace] = {encode_key(k) for k in
                                               self.session.cache.keys(namespace)}
        return keys

    def datasets(self) -> set[str]:
        if self._datasets is None:
            self._datasets = ({m.id for m in self.registry.list_datasets()}
                              if self.registry is not None else set())
        return self._datasets

    def is_done(self, store: LegacyStore, entry: Entry, row: LedgerRow | None) -> bool:
        """Imported before, from this very source content, and still there."""
        if row is None or not row.done or row.signature != entry.signature:
            return False
        if store.kind == "csv":
            return row.dataset_id == entry.key and entry.key in self.datasets()
        return (row.namespace == entry.namespace and row.cache_key == encode_key(entry.key)
                and row.cache_key in self.present(entry.namespace))  # type: ignore[arg-type]

    def assign_dataset_ids(self, stores: list[CsvStore]) -> None:
        """Give every CSV its dataset id: the one it was migrated under before, the id
        already registered for that file, or a new unused id from its file name."""
        from ..registry.files import dataset_id_for

        registered = self.registry.list_datasets() if self.registry is not None else []
        by_file = {m.file_path: m.id for m in registered if m.file_path}
        taken = {m.id for m in registered}
        if self.ledger is not None:
            taken |= self.ledger.dataset_ids()
        for store in stores:
            row = self.rows(store).get(store.path.name)
            chosen = (row.dataset_id if row is not None and row.dataset_id else None) \
                or by_file.get(str(store.path))
            if chosen is None:
                chosen = dataset_id_for(store.path, taken)
            taken.add(chosen)
            store.dataset_id = chosen
