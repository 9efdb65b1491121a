"""Readers of legacy stores: joblib.Memory folders, diskcache folders, arrays, CSVs.

Each :class:`LegacyStore` lists its entries cheaply (:meth:`~LegacyStore.scan`:
sizes, signatures and target keys, no values), loads one value on demand,
and — only for ``--move``, after the copy was verified — deletes one entry
and tidies the folders it left empty.

These readers load the user's *own* legacy files and trust them: joblib
outputs are pickles (``joblib.load``), diskcache values may be pickles, and an
``.npy`` holding Python objects is read with ``allow_pickle``. That is the
same trust the legacy code placed in them; the cache then stores each value
signed, like any other.

joblib and diskcache are imported only when such a folder is found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MigrationError

__all__ = ["ArrayStore", "CsvStore", "DiskcacheStore", "Entry", "JoblibStore", "LegacyStore",
           "require"]

log = logging.getLogger("jupyter_resman.migrate")

#: Namespaces entries of each kind go to (``namespace=`` overrides them all).
NAMESPACES = {"joblib": "joblib", "diskcache": "diskcache", "arrays": "embeddings"}
_LABEL_MAX = 200
_DELETING = ".resman-deleting"  # suffix of a joblib call folder being deleted by a move


def require(module: str) -> Any:
    """Import a reader's library or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MigrationError(
            f"reading this legacy cache needs the {module} package, which is not installed: "
            f"pip install {module} (or leave that folder out of --source)"
        ) from exc


def available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or None entry in sys.modules
        return False


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_MAX else text[:_LABEL_MAX - 3] + "..."


def _stat_signature(path: Path) -> tuple[str, int]:
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}", info.st_size


@dataclasses.dataclass
class Entry:
    """One legacy entry: where it is, how it looked, where it goes.

    ``item`` identifies it inside its store (stable across runs);
    ``signature`` changes when the source changes; ``key``/``namespace`` are
    its cache key (for a CSV, ``key`` is the dataset id).
    """

    item: str
    label: str
    signature: str
    nbytes: int
    key: Any
    namespace: str | None
    tags: tuple[str, ...] = ()
    ttl: float | None = None
    error: str | None = None  # known unreadable already when listed
    ref: Any = None           # the reader's own handle (a path, a row id)


class LegacyStore:
    """One legacy store found under a source folder."""

    kind: ClassVar[str]
    module: ClassVar[str | None] = None  # third-party package needed to read it

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.source = source
        #: set by the migration before scanning when sources will be deleted
        self.moving = False

    @property
    def ledger_id(self) -> str:
        """What names this store in the ledger (stable whatever --source was given)."""
        return str(self.path)

    @property
    def name(self) -> str:
        """A short description for tables and logs."""
        return self.path.name

    def scan(self, namespace: str | None = None) -> list[Entry]:
        """The store's entries (metadata only); ``namespace`` overrides the default one."""
        raise NotImplementedError

    def load(self, entry: Entry) -> Any:
        """The value of one entry, read from the legacy files."""
        raise NotImplementedError

    def compute_time(self, entry: Entry) -> float:
        """Seconds the legacy code spent computing the value, when it recorded them."""
        return 0.0

    def remove(self, entry: Entry) -> None:
        """Delete one entry from the legacy store (only after its copy was verified)."""
        raise NotImplementedError

    def tidy(self) -> None:
        """After a move: remove folders this store's deletions left empty."""

    def close(self) -> None:
        """Release open files or connections (the store may be used again later)."""

    def _remove_empty_parents(self, folder: Path) -> None:
        # Up to, never including, the source folder the user named.
        while folder != self.source and self.source in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                return
            log.info("removed empty folder %s", folder)
            folder = folder.parent

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


# -- joblib.Memory ------------------------------------------------------------------------


class JoblibStore(LegacyStore):
    """The folder of one function cached with ``joblib.Memory``.

    Layout: ``<location>/joblib/<module parts>/<function>/func_code.py`` and
    one ``<argument hash>/`` per call with ``output.pkl`` and
    ``metadata.json``. Each call becomes the cache entry
    ``("joblib", "<module>.<function>", "<argument hash>")``.
    """

    kind = "joblib"
    module = "joblib"

    def __init__(self, path: Path, source: Path, root: Path) -> None:
        super().__init__(path, source)
        self.root = root
        self.function = ".".join(path.relative_to(root).parts) if path != root else path.name

    @property
    def ledger_id(self) -> str:
        return str(self.root)

    @property
    def name(self) -> str:
        return self.function

    def scan(self, namespace: str | None = None) -> list[Entry]:
        ns = namespace or NAMESPACES["joblib"]
        entries = []
        for call in sorted(self.path.iterdir()):
            output = call / "output.pkl"
            if call.name.startswith(".") or call.is_symlink() or not call.is_dir() \
                    or not output.is_file():
                continue  # func_code.py, a call joblib never finished, one being deleted
            # Old joblib versions kept arrays beside output.pkl (output.pkl_01.npy ...).
            files = sorted(p for p in call.iterdir() if p.name.startswith("output.pkl")
                           and p.is_file())
            parts = [f"{p.name}:{_stat_signature(p)[0]}" for p in files]
            size = sum(p.stat().st_size for p in call.iterdir() if p.is_file())
            digest = call.name
            entries.append(Entry(
                item=f"{self.function}/{digest}", label=f"{self.function}/{digest}",
                signature="|".join(parts), nbytes=size,
                key=("joblib", self.function, digest), namespace=ns,
                tags=("migrated", "joblib", f"joblib:{self.function}", f"key:{digest}"),
                ref=call))
        return entries

    def load(self, entry: Entry) -> Any:
        joblib = require("joblib")
        return joblib.load(entry.ref / "output.pkl")

    def compute_time(self, entry: Entry) -> float:
        # joblib records how long the call took: it feeds the cache's "time saved".
        try:
            meta = json.loads((entry.ref / "metadata.json").read_text(encoding="utf-8"))
            return max(float(meta.get("duration") or 0.0), 0.0)
        except (OSError, ValueError, TypeError, AttributeError):
            return 0.0

    def remove(self, entry: Entry) -> None:
        # Rename first (atomic), so a kill halfway through the delete never leaves a
        # half call that looks like a real one; tidy() finishes such leftovers.
        doomed = entry.ref.with_name(f".{entry.ref.name}{_DELETING}")
        os.replace(entry.ref, doomed)
        shutil.rmtree(doomed)

    def tidy(self) -> None:
        if not self.path.is_dir():
            return
        for leftover in self.path.glob(f".*{_DELETING}"):
            shutil.rmtree(leftover, ignore_errors=True)
        if any(p.is_dir() for p in self.path.iterdir()):
            return  # calls left behind (failed, conflicting or unfinished): keep the function
        with contextlib.suppress(FileNotFoundError):
            (self.path / "func_code.py").unlink()
        self._remove_empty_parents(self.path)


# -- diskcache ---------------------------------------------------------------------------


class DiskcacheStore(LegacyStore):
    """A ``diskcache.Cache`` folder (``cache.db`` plus value files).

    Read straight from its SQLite file, so reading changes nothing: with no
    ``-wal`` file (a cache closed cleanly) the file is opened ``immutable``
    and SQLite creates no side files; values are decoded by diskcache's own
    ``Disk``. Expired entries are skipped, like diskcache would. ``--move``
    deletes migrated keys through diskcache itself (its triggers keep its
    counts right).
    """

    kind = "diskcache"
    module = "diskcache"
    _COLUMNS = ("key", "raw", "store_time", "expire_time", "tag", "size", "mode", "filename")

    def __init__(self, path: Path, source: Path) -> None:
        super().__init__(path, source)
        self._conn: sqlite3.Connection | None = None
        self._disk: Any = None
        self._writer: Any = None
        self.expired = 0

    @staticmethod
    def looks_like(db_file: Path) -> bool:
        """Whether ``db_file`` is a diskcache index (tables Cache and Settings)."""
        try:
            conn = _open_readonly(db_file, immutable=True)
        except sqlite3.Error:
            return False
        try:
            tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"Cache", "Settings"} <= tables:
                return False
            columns = {r[1] for r in conn.execute("PRAGMA table_info(Cache)")}
            return set(DiskcacheStore._COLUMNS) <= columns
        except sqlite3.Error:
            return False
        finally:
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            db_file = self.path / "cache.db"
            # Immutable only when nobody has it open (no WAL/journal) and we will not
            # delete from it while reading: immutable readers never look for changes.
            quiet = not any(Path(f"{db_file}{s}").exists() for s in ("-wal", "-journal"))
            self._conn = _open_readonly(db_file, immutable=quiet and not self.moving)
        return self._conn

    def scan(self, namespace: str | None = None) -> list[Entry]:
        ns = namespace or NAMESPACES["diskcache"]
        disk = self._get_disk()
        now = time.time()
        entries = []
        self.expired = 0
        rows = self._connection().execute(
            "SELECT rowid, key, raw, store_time, expire_time, tag, size, filename, "
            "COALESCE(length(value), 0) FROM Cache ORDER BY rowid").fetchall()
        for rowid, db_key, raw, store_time, expire_time, tag, size, filename, inline in rows:
            if expire_time is not None and expire_time <= now:
                self.expired += 1
                continue
            item = hashlib.sha256(repr((type(db_key).__name__, bool(raw), db_key)).encode(
                "utf-8", "surrogatepass")).hexdigest()[:32]
            signature = f"{store_time!r}:{size}:{filename}"
            error = None
            try:
                key = disk.get(db_key, raw)
                label = _short(repr(key))
            except Exception as exc:  # a pickled key whose class is gone: report, go on
                key, label = None, f"<undecodable key in row {rowid}>"
                error = f"its key cannot be unpickled ({type(exc).__name__}: {exc})"
            target = key if error is None and _valid_key(key) else ("diskcache", label)
            tags = ["migrated", "diskcache", f"key:{label}"]
            if tag is not None:
                tags.append(_short(f"diskcache-tag:{tag}"))
            ttl = None if expire_time is None else max(expire_time - now, 1.0)
            entries.append(Entry(
                item=item, label=label, signature=signature, nbytes=int(size or 0) + int(inline),
                key=target, namespace=ns, tags=tuple(tags), ttl=ttl, error=error,
                ref=(rowid, store_time, key)))
        return entries

    def _get_disk(self) -> Any:
        if self._disk is None:
            self._disk = require("diskcache").Disk(str(self.path))
        return self._disk

    def load(self, entry: Entry) -> Any:
        rowid, store_time, _key = entry.ref
        row = self._connection().execute(
            "SELECT mode, filename, value FROM Cache WHERE rowid = ? AND store_time = ?",
            (rowid, store_time)).fetchone()
        if row is None:
            raise MigrationError(f"{entry.label} changed or vanished in {self.path} while migrating")
        mode, filename, value = row
        return self._get_disk().fetch(mode, filename, value, False)

    def remove(self, entry: Entry) -> None:
        if self._writer is None:
            self._writer = require("diskcache").Cache(str(self.path))
        self._writer.delete(entry.ref[2], retry=True)

    def tidy(self) -> None:
        self.close()
        cache = require("diskcache").Cache(str(self.path))
        try:
            left = len(cache)
        finally:
            cache.close()
        if left:
            log.info("kept %s: %d entries were not moved (expired, failed or conflicting)",
                     self.path, left)
            return
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / f"cache.db{suffix}").unlink()
        for folder, _dirs, _files in sorted(os.walk(self.path), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):  # only empty shard folders go
                Path(folder).rmdir()
        log.info("removed the emptied diskcache folder %s", self.path)
        self._remove_empty_parents(self.path.parent)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _open_readonly(db_file: Path, *, immutable: bool) -> sqlite3.Connection:
    mode = "immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(f"{db_file.absolute().as_uri()}?{mode}", uri=True,
                           check_same_thread=False)


def _valid_key(key: Any) -> bool:
    from ..keys import encode_key

    try:
        encode_key(key)
    except (KeyError, TypeError, ValueError):
        return False
    return True


# -- arrays (.npy / .npz embedding caches) --------------------------------------------------


class ArrayStore(LegacyStore):
    """The ``.npy``/``.npz`` files under one source folder (embedding caches).

    Each file becomes the entry keyed by its path relative to the source
    folder (``"tabpfn/adult_embeddings.npz"``) in namespace ``embeddings``:
    an array for ``.npy``, a dict of arrays for ``.npz``.
    """

    kind = "arrays"

    def __init__(self, path: Path, source: Path, files: list[Path]) -> None:
        super().__init__(path, source)
        self.files = sorted(files)

    @property
    def name(self) -> str:
        return f"{len(self.files)} .npy/.npz file(s)"

    def scan(self, namespace: str | None = None) -> list[Entry]:
        ns = namespace or NAMESPACES["arrays"]
        entries = []
        for file in self.files:
            try:
                signature, size = _stat_signature(file)
            except FileNotFoundError:
                continue
            rel = file.relative_to(self.path).as_posix()
            suffix = file.suffix.lower().lstrip(".")
            entries.append(Entry(item=rel, label=rel, signature=signature, nbytes=size, key=rel,
                                 namespace=ns, tags=("migrated", suffix, f"key:{rel}"), ref=file))
        return entries

    def load(self, entry: Entry) -> Any:
        import numpy as np

        try:
            return _load_arrays(np, entry.ref, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" not in str(exc):
                raise
            # Object arrays are pickles; these are the user's own files (see module docs).
            log.info("%s holds Python objects; loading it with allow_pickle=True", entry.ref)
            return _load_arrays(np, entry.ref, allow_pickle=True)

    def remove(self, entry: Entry) -> None:
        entry.ref.unlink()

    def tidy(self) -> None:
        for folder in sorted({f.parent for f in self.files}, key=lambda p: -len(p.parts)):
            self._remove_empty_parents(folder)


def _load_arrays(np: Any, path: Path, *, allow_pickle: bool) -> Any:
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=allow_pickle) as archive:
            return {name: archive[name] for name in archive.files}
    return np.load(path, allow_pickle=allow_pickle)


# -- CSV datasets ---------------------------------------------------------------------------


class CsvStore(LegacyStore):
    """One CSV file, registered as a dataset (and copied into its workspace on ``--move``)."""

    kind = "csv"

    def __init__(self, path: Path, source: Path) -> None:
        super().__init__(path, source)
        self.dataset_id: str | None = None  # chosen by the planner

    @property
    def ledger_id(self) -> str:
        return str(self.path.parent)

    @property
    def name(self) -> str:
        return f"dataset {self.dataset_id}" if self.dataset_id else self.path.name

    def scan(self, namespace: str | None = None) -> list[Entry]:
        if not self.path.is_file():
            return []
        signature, size = _stat_signature(self.path)
        return [Entry(item=self.path.name, label=self.path.name, signature=signature, nbytes=size,
                      key=self.dataset_id, namespace=None, ref=self.path)]

    def load(self, entry: Entry) -> Any:
        return entry.ref

    def remove(self, entry: Entry) -> None:
        entry.ref.unlink()

    def tidy(self) -> None:
        self._remove_empty_parents(self.path.parent)
