"""Migrating a CSV file: register it as a dataset; with ``move``, adopt it into its workspace.

Registration describes the file with the registry's own
:func:`~jupyter_resman.core.registry.files.describe_csv` (rows, features,
target, task) and points ``file_path`` at the original. A move copies the
file into ``<home>/datasets/<id>/``, compares checksums (xxh3-128) of the two
files, re-registers the dataset with the new ``file_path`` and only then
deletes the original. A run killed in between finds the dataset registered
and finishes the move on its next run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .ledger import LedgerRow
from .stores import CsvStore, Entry

if TYPE_CHECKING:
    from .run import StoreResult, _Runner

__all__ = ["import_csv"]

log = logging.getLogger("jupyter_resman.migrate")


def import_csv(runner: _Runner, store: CsvStore, entry: Entry, row: LedgerRow | None,
               result: StoreResult) -> str:
    """Register (and with ``runner.move``, adopt) one CSV; returns the entry's status."""
    from ..registry.files import describe_csv

    registry = runner.session.registry
    dataset_id = entry.key
    if runner.status.is_done(store, entry, row):  # type: ignore[union-attr]
        result.skipped += 1
        return _adopt(runner, store, entry, row, result) if runner.move else "skipped"
    if dataset_id in runner.status.datasets():  # type: ignore[union-attr]
        known = registry.get_dataset(dataset_id)
        if known.file_path == str(entry.ref):
            # Registered for this very file already (by hand, or by a run killed before
            # it recorded it): keep the user's metadata, just record it.
            row = runner._record(store, entry, "imported", target=str(entry.ref))
            result.skipped += 1
            return _adopt(runner, store, entry, row, result) if runner.move else "skipped"
    try:
        meta = describe_csv(entry.ref, dataset_id=dataset_id)
    except Exception as exc:  # pandas' ParserError / EmptyDataError, unreadable file
        return runner._fail(store, entry, result, f"cannot be read as CSV ({type(exc).__name__}: "
                                                  f"{exc})")
    meta.tags = sorted({*meta.tags, "migrated"})
    meta.extra = {**meta.extra, "migrated_from": str(entry.ref)}
    meta.description = meta.description or f"migrated from {entry.ref}"
    registry.register_dataset(meta)
    runner.status.datasets().add(dataset_id)  # type: ignore[union-attr]
    row = runner._record(store, entry, "imported", target=str(entry.ref))
    result.imported += 1
    result.bytes += entry.nbytes
    log.info("registered %s as dataset %r", entry.ref, dataset_id)
    if runner.move:
        return _adopt(runner, store, entry, row, result)
    return "imported"


def _adopt(runner: _Runner, store: CsvStore, entry: Entry, row: LedgerRow | None,
           result: StoreResult) -> str:
    """Copy the CSV into its dataset's workspace, verify, repoint the dataset, delete it."""
    from .run import copy_verified

    registry = runner.session.registry
    source: Path = entry.ref
    dest = registry.workspace(entry.key) / source.name
    try:
        same = copy_verified(source, dest)
    except OSError as exc:
        return runner._keep(store, entry, row, result, f"copying into {dest.parent} failed ({exc})")
    if not same:
        dest.unlink(missing_ok=True)
        return runner._keep(store, entry, row, result,
                            f"the copy {dest} does not match the original (checksums)")
    meta = registry.get_dataset(entry.key)
    meta.file_path = str(dest)
    registry.register_dataset(meta)
    return runner.remove_source(store, entry, row, result, target=str(dest))
