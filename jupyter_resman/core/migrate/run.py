"""Running a migration: import each pending entry, record it, and (``move``) delete its source.

For each entry, in this order:

1. load the legacy value and fingerprint it;
2. if its cache key already holds a value that this entry did not put there
   (a run killed before recording, another source, the user's own), compare
   fingerprints: the same value counts as imported, a different one is a
   *conflict* and is left alone;
3. ``cache.set`` it (or register the CSV as a dataset);
4. commit its ledger row: a kill before this point re-imports only this entry
   on the next run (and step 2 finds it already there);
5. with ``move`` only: read the value back from disk (``memory=False``),
   compare fingerprints — or copy the CSV into its dataset's workspace and
   compare checksums — and only when they match delete the source and mark
   the row ``moved``. A failed check keeps the source and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from ..errors import CacheFullError, FingerprintError, MigrationError
from ..fingerprints import fingerprint
from ..keys import encode_key
from ..progress import progress
from ..settings import format_size
from .ledger import Ledger, LedgerRow
from .plan import LEDGER_FILE, MigrationPlan, PlannedStore, Status, plan_migration
from .stores import CsvStore, Entry, LegacyStore

if TYPE_CHECKING:
    import pandas

    from ..session import Session

__all__ = ["MigrationReport", "StoreResult", "migrate"]

log = logging.getLogger("jupyter_resman.migrate")

Callback = Callable[[LegacyStore, Entry, str], Any]
_MISSING = object()
_MAX_ERRORS = 20  # per store, in the report (every one is logged)


@dataclasses.dataclass
class StoreResult:
    """What happened to one store's entries (for a dry run: what would)."""

    kind: str
    location: str
    name: str
    entries: int = 0
    imported: int = 0   # written to the cache / registered in this run
    skipped: int = 0    # imported before, unchanged
    failed: int = 0     # unreadable or not storable; the source is kept
    conflicts: int = 0  # the cache key holds a different value; the source is kept
    moved: int = 0      # source deleted after a verified copy
    kept: int = 0       # with move: the verification failed, the source is kept
    bytes: int = 0      # source bytes imported
    errors: list[str] = dataclasses.field(default_factory=list)

    def note(self, message: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)


@dataclasses.dataclass
class MigrationReport:
    """The outcome of :func:`migrate`, per store and in total."""

    run_id: str
    dry_run: bool
    move: bool
    origin: str
    stores: list[StoreResult]
    notes: list[str]

    def total(self, field: str) -> int:
        return sum(getattr(s, field) for s in self.stores)

    @property
    def imported(self) -> int:
        return self.total("imported")

    @property
    def problems(self) -> int:
        """Entries left behind: failed, conflicting, or (with move) not verified."""
        return self.total("failed") + self.total("conflicts") + self.total("kept")

    def table(self) -> pandas.DataFrame:
        import pandas as pd

        columns = ["kind", "location", "what", "entries", "imported", "skipped", "failed",
                   "conflicts", "size"] + (["moved", "kept"] if self.move else [])
        rows = [{"kind": s.kind, "location": s.location, "what": s.name, "entries": s.entries,
                 "imported": s.imported, "skipped": s.skipped, "failed": s.failed,
                 "conflicts": s.conflicts, "size": format_size(s.bytes), "moved": s.moved,
                 "kept": s.kept} for s in self.stores]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "move": self.move,
                "origin": self.origin, "notes": list(self.notes),
                "stores": [dataclasses.asdict(s) for s in self.stores]}


def migrate(
    session: Session, plan: MigrationPlan | None = None, *,
    sources: list[str | os.PathLike[str]] | None = None, move: bool = False,
    dry_run: bool = False, namespace: str | None = None, renderer: Any = None,
    callback: Callback | None = None,
) -> MigrationReport:
    """Import legacy caches and datasets into ``session``'s home.

    ``plan`` comes from :func:`~.plan.plan_migration` (made here from
    ``sources``/``namespace`` when not given). ``dry_run`` returns what would
    happen and changes nothing. ``move`` deletes each source entry once its
    copy is verified. ``callback(store, entry, status)`` runs after each
    entry. Idempotent and resumable through the ledger
    (``<home>/migrations.sqlite``); two migrations of one home never run at once.
    """
    if plan is None:
        plan = plan_migration(session, sources, namespace=namespace)
    if dry_run:
        return _dry_report(plan, move)
    missing = plan.missing_modules()
    if missing:
        raise MigrationError(
            f"the folders to migrate include caches that need {', '.join(missing)}, which is "
            f"not installed: pip install {' '.join(missing)} (or leave those folders out of "
            "--source); nothing was imported")
    cached = [p for p in plan.stores if p.kind != "csv"]
    if cached and not session.cache.enabled:
        raise MigrationError("caching is disabled (RESMAN_ENABLE_CACHING=false), so imported "
                             "entries would be dropped; enable it and run the migration again")
    wanted = sum(p.pending_bytes for p in cached)
    if wanted > session.cache.max_bytes:
        raise MigrationError(
            f"the legacy caches hold {format_size(wanted)} to import, more than the cache's limit "
            f"of {format_size(session.cache.max_bytes)}: imported entries would evict each other. "
            "Raise RESMAN_MAX_CACHE or migrate fewer folders at a time (--source)")
    with _exclusive(session.home.root / "migrations.lock"), \
            Ledger(session.home.root / LEDGER_FILE) as ledger:
        runner = _Runner(session, ledger, move=move, callback=callback)
        return runner.run(plan, renderer)


def _dry_report(plan: MigrationPlan, move: bool) -> MigrationReport:
    results = []
    for p in plan.stores:
        result = StoreResult(p.kind, str(p.store.path), p.store.name, entries=len(p.entries),
                             imported=len(p.pending), skipped=p.done, bytes=p.pending_bytes)
        if move:
            result.moved = len(p.entries)
        if p.problem:
            result.note(p.problem)
        results.append(result)
    return MigrationReport("dry-run", True, move, plan.origin, results, list(plan.notes))


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Any:
    """One migration per home at a time (two would race to delete the same sources)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MigrationError(f"another migration is running in this home ({lock_file} is "
                                 "locked); wait for it to finish, then run again") from None
        yield
    finally:
        os.close(fd)  # releases the lock; a killed process releases it too


class _Runner:
    def __init__(self, session: Session, ledger: Ledger, *, move: bool,
                 callback: Callback | None) -> None:
        self.session = session
        self.cache = session.cache
        self.ledger = ledger
        self.move = move
        self.callback = callback
        self.run_id = uuid.uuid4().hex[:12]
        self.status: Status | None = None

    def run(self, plan: MigrationPlan, renderer: Any) -> MigrationReport:
        registry = self.session.registry if any(p.kind == "csv" for p in plan.stores) else None
        self.status = Status(self.session, self.ledger, registry)
        # Dataset ids again, against the registry as it is now (the plan may be old).
        self.status.assign_dataset_ids(
            [p.store for p in plan.stores if isinstance(p.store, CsvStore)])
        # Scan again: the plan may be old, and a move needs a writable view of diskcache.
        work: list[tuple[LegacyStore, list[Entry], StoreResult]] = []
        results: list[StoreResult] = []
        try:
            for planned in plan.stores:
                store = planned.store
                store.close()
                store.moving = self.move
                result = StoreResult(store.kind, str(store.path), store.name)
                results.append(result)
                if planned.problem is not None:
                    result.note(planned.problem)
                    continue
                try:
                    entries = store.scan(plan.namespace)
                except Exception as exc:  # a damaged store: report it, migrate the others
                    log.warning("cannot read %s: %s; skipped", store.path, exc)
                    result.note(f"unreadable: {exc}")
                    store.close()
                    continue
                result.entries = len(entries)
                work.append((store, entries, result))
            total = sum(len(entries) for _, entries, _ in work)
            log.info("migration %s: %d entries in %d stores from %s%s", self.run_id, total,
                     len(work), plan.origin,
                     " (moving: sources deleted after verification)" if self.move else "")
            with progress(total=total, desc="migrating legacy caches", unit="entry",
                          session=self.session, renderer=renderer) as bar:
                for store, entries, result in work:
                    self._store(store, entries, result, bar)
        finally:
            for planned in plan.stores:
                planned.store.close()
        report = MigrationReport(self.run_id, False, self.move, plan.origin, results,
                                 list(plan.notes))
        log.info("migration %s done: %d imported, %d already there, %d failed, %d conflicts%s",
                 self.run_id, report.imported, report.total("skipped"), report.total("failed"),
                 report.total("conflicts"),
                 f", {report.total('moved')} sources moved, {report.total('kept')} kept"
                 if self.move else "")
        return report

    def _store(self, store: LegacyStore, entries: list[Entry], result: StoreResult,
               bar: Any) -> None:
        rows = self.status.rows(store)  # type: ignore[union-attr]
        try:
            with bar.child(total=len(entries), desc=f"{store.kind} {store.name}",
                           unit="entry") as child:
                for entry in entries:
                    status = self._entry(store, entry, rows.get(entry.item), result)
                    log.debug("%s %s: %s", store.kind, entry.label, status)
                    if self.callback is not None:
                        self.callback(store, entry, status)
                    child.update(1)
                    bar.update(1)
            if self.move:  # also finishes the tidying of a run killed before it
                try:
                    store.tidy()
                except (OSError, sqlite3.Error) as exc:  # leftovers are empty folders: go on
                    log.warning("could not tidy %s after moving its entries: %s", store.path, exc)
        finally:
            store.close()
        log.info("%s %s (%s): %d imported, %d already there, %d failed, %d conflicts%s",
                 store.kind, store.name, store.path, result.imported, result.skipped,
                 result.failed, result.conflicts,
                 f", {result.moved} moved, {result.kept} kept" if self.move else "")

    # -- one entry ------------------------------------------------------------------------

    def _entry(self, store: LegacyStore, entry: Entry, row: LedgerRow | None,
               result: StoreResult) -> str:
        if isinstance(store, CsvStore):
            from .datasets import import_csv

            return import_csv(self, store, entry, row, result)
        if entry.error is not None:
            return self._fail(store, entry, result, entry.error)
        assert self.status is not None and entry.namespace is not None
        target = encode_key(entry.key)
        present = self.status.present(entry.namespace)
        if self.status.is_done(store, entry, row):
            result.skipped += 1
            return self._finish_move(store, entry, row, result) if self.move else "skipped"
        try:
            value = store.load(entry)
        except Exception as exc:  # unreadable legacy data: record it, keep the source, go on
            return self._fail(store, entry, result, f"cannot be read ({type(exc).__name__}: {exc})")
        fp = _fingerprint(value)
        ours = row is not None and row.done and row.namespace == entry.namespace \
            and row.cache_key == target
        if target in present and not ours:
            # _count=False: a migration's own reads are not the user's hits and misses.
            existing = self.cache.get(entry.key, _MISSING, namespace=entry.namespace,
                                      memory=False, _count=False)
            if existing is not _MISSING and (fp is None or _fingerprint(existing) != fp):
                claim = self.ledger.claimant(entry.namespace, target,
                                             other_than=(store.kind, store.ledger_id, entry.item))
                origin = (f"imported from {claim.store} ({claim.label})" if claim else
                          "stored there outside this migration")
                message = (f"cache key {entry.key!r} in namespace {entry.namespace!r} already holds "
                           f"a different value ({origin}); not overwritten, source kept. Migrate "
                           "this folder with --namespace NAME to keep both")
                log.warning("%s %s: %s", store.kind, entry.label, message)
                result.conflicts += 1
                result.note(f"{entry.label}: {message}")
                self._record(store, entry, "conflict", fp=fp, error=message)
                return "conflict"
            # Otherwise the same value is already there (a run killed before recording
            # it, or a duplicate): setting it again only makes the tags and TTL ours.
        try:
            self.cache.set(entry.key, value, ttl=entry.ttl, tags=entry.tags,
                           namespace=entry.namespace, compute_time=store.compute_time(entry))
        except CacheFullError as exc:
            self._fail(store, entry, result, f"cannot be stored: {exc}")
            raise MigrationError(
                f"the cache is full; the migration stopped. Entries imported so far are "
                f"recorded: free space (or raise RESMAN_MAX_CACHE) and run it again. ({exc})"
            ) from exc
        except Exception as exc:  # SerializationError, ValueTooLargeError...: go on
            return self._fail(store, entry, result,
                              f"cannot be stored ({type(exc).__name__}: {exc})")
        present.add(target)
        row = self._record(store, entry, "imported", fp=fp)
        result.imported += 1
        result.bytes += entry.nbytes
        if self.move:
            return self._remove_verified(store, entry, row, fp, result)
        return "imported"

    def _finish_move(self, store: LegacyStore, entry: Entry, row: LedgerRow | None,
                     result: StoreResult) -> str:
        """An entry imported by an earlier run: verify against the source, then delete it."""
        try:
            fp = _fingerprint(store.load(entry))
        except Exception as exc:
            return self._keep(store, entry, row, result, f"cannot be re-read to verify ({exc})")
        return self._remove_verified(store, entry, row, fp, result)

    def _remove_verified(self, store: LegacyStore, entry: Entry, row: LedgerRow | None,
                         fp: str | None, result: StoreResult) -> str:
        back = self.cache.get(entry.key, _MISSING, namespace=entry.namespace, memory=False,
                              _count=False)
        if back is _MISSING:
            return self._keep(store, entry, row, result, "the cache no longer holds the copy")
        if fp is None or _fingerprint(back) != fp:
            return self._keep(store, entry, row, result,
                              "the copy in the cache differs from the source (fingerprints)")
        return self.remove_source(store, entry, row, result)

    def remove_source(self, store: LegacyStore, entry: Entry, row: LedgerRow | None,
                      result: StoreResult, **changes: Any) -> str:
        try:
            store.remove(entry)
        except OSError as exc:
            return self._keep(store, entry, row, result, f"deleting the source failed ({exc})")
        self._record(store, entry, "moved", base=row, **changes)
        result.moved += 1
        log.info("moved %s %s out of %s (its verified copy is in the home)", store.kind,
                 entry.label, store.path)
        return "moved"

    # -- bookkeeping ------------------------------------------------------------------------

    def _keep(self, store: LegacyStore, entry: Entry, row: LedgerRow | None,
              result: StoreResult, why: str) -> str:
        message = f"verification failed: {why}; the source was kept"
        log.warning("%s %s: %s", store.kind, entry.label, message)
        result.kept += 1
        result.note(f"{entry.label}: {message}")
        if row is not None:
            self.ledger.record(dataclasses.replace(row, error=message, run=self.run_id))
        return "kept"

    def _fail(self, store: LegacyStore, entry: Entry, result: StoreResult, why: str) -> str:
        log.warning("%s %s in %s %s; skipped, source kept", store.kind, entry.label, store.path, why)
        result.failed += 1
        result.note(f"{entry.label}: {why}")
        self._record(store, entry, "failed", error=why)
        return "failed"

    def _record(self, store: LegacyStore, entry: Entry, status: str, *,
                base: LedgerRow | None = None, fp: str | None = None, error: str | None = None,
                **changes: Any) -> LedgerRow:
        if base is None:
            base = LedgerRow(
                kind=store.kind, store=store.ledger_id, item=entry.item, label=entry.label,
                signature=entry.signature, status=status, namespace=entry.namespace,
                cache_key=encode_key(entry.key) if entry.namespace else None,
                dataset_id=entry.key if entry.namespace is None else None,
                fingerprint=fp, bytes=entry.nbytes, error=error, run=self.run_id)
        row = dataclasses.replace(base, status=status, error=error, run=self.run_id, **changes)
        return self.ledger.record(row)


def _fingerprint(value: Any) -> str | None:
    try:
        return fingerprint(value)
    except FingerprintError:
        return None  # cannot be compared: a move keeps the source


def copy_verified(source: Path, dest: Path) -> bool:
    """Copy ``source`` to ``dest`` atomically; True if both now hash the same (xxh3-128)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return file_digest(source) == file_digest(dest)


def file_digest(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
