"""The two-tier cache: live objects in memory in front of signed values on disk.

>>> import tempfile, pathlib
>>> cache = Cache(pathlib.Path(tempfile.mkdtemp()), secret_key=b"k" * 32)
>>> cache.set("answer", 42, tags=["demo"])
>>> cache.get("answer"), "answer" in cache, cache.get("missing", default=0)
(42, True, 0)
>>> cache.clear(tags=["demo"])
1
>>> cache.close()

How a write works (the same whatever the process):

1. the key is encoded canonically (:mod:`.keys`) and the value encoded and
   signed (:mod:`.serialize`) — an unpicklable value fails here, before any
   byte is written;
2. a value too large to keep inline is written to a temp file in its
   ``values/xx/`` folder and ``os.replace``d to a name unique to this write;
3. one short ``BEGIN IMMEDIATE`` transaction upserts the row, checks the byte
   limit (exact, kept by triggers) and evicts by policy until it holds;
4. after commit, files of replaced and evicted entries are deleted and the
   ``generation`` file changes, telling other processes' memory tiers to
   revalidate.

A reader that finds a row always finds its complete file; a crash at any
point leaves either the old entry or the new one, plus at worst an orphan
file that :meth:`Cache.sweep` removes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import stat
import struct
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

from xxhash import xxh3_64_intdigest

from .cache_index import FORMAT_VERSION, INLINE_LIMIT, POLICY_ORDER, entry_id, schema, value_relpath
from .cache_index import ID_PREFIXES as _ID_PREFIXES
from .cache_state import Change, SharedState, private_random
from .cache_stats import BUCKET_S, FIELDS, CacheStats, Counters, NamespaceStats, TierStats
from .db import Database, forget_after_fork, is_disk_full
from .errors import (
    CacheFullError,
    CacheIntegrityWarning,
    CacheKeyError,
    IntegrityError,
    SecurityWarning,
    StoreCorruptError,
    ValueTooLargeError,
)
from .home import MEMORY_FILESYSTEMS, Home, filesystem_type, reject_symlink
from .keys import DEFAULT_NAMESPACE, check_namespace, decode_key, encode_key
from .memory_tier import MemEntry, MemoryTier
from .serialize import Codec
from .settings import Settings, parse_duration

__all__ = ["Cache", "cached"]

_SELECT_OLD = "SELECT file, size FROM entries WHERE id = ?"
_SELECT_INLINE = "SELECT value FROM entries WHERE id = ?"
#: stamp, created, ttl (-1: none), compute seconds: in front of every inline value.
_INLINE_META = struct.Struct("<qddd")
_UPSERT = (
    "INSERT INTO entries (id, namespace, key, stamp, created, ttl, accessed, hits, size, "
    "compute_s, tags, file, value) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, key = excluded.key, "
    "stamp = excluded.stamp, created = excluded.created, ttl = excluded.ttl, "
    "accessed = excluded.accessed, hits = 0, size = excluded.size, "
    "compute_s = excluded.compute_s, tags = excluded.tags, file = excluded.file, "
    "value = excluded.value"
)

log = logging.getLogger("jupyter_resman.cache")

_MISSING = object()
_ID_OFFSET = 1 << 63  # see cache_index.entry_id: the inlined form on the read path
_FLUSH_EVERY_S = 1.0
#: Eviction frees down to this fraction of the limit, so one scan serves many writes.
_LOW_WATER = 0.9
_SWEEP_EVERY_S = 3600.0
#: Value files at least this big get their blocks reserved before writing.
_PREALLOCATE = 4 * 1024 * 1024
_ORPHAN_GRACE_S = 600.0


class Cache:
    """A dict-like cache with a byte-limited memory tier in front of a disk tier.

    Parameters mirror :class:`~jupyter_resman.core.settings.Settings`;
    ``clock`` (wall time, seconds) is injectable so tests can jump it.
    ``enabled=False`` makes the cache store nothing and miss every lookup
    (memoized functions simply run).
    """

    def __init__(
        self,
        directory: Path,
        *,
        secret_key: bytes,
        max_bytes: int = 20 * 1000**3,
        memory_bytes: int = 512 * 1000**2,
        policy: str = "lru",
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        inline_limit: int = INLINE_LIMIT,
    ) -> None:
        if policy not in POLICY_ORDER:
            raise ValueError(f"unknown cache policy {policy!r}; use one of {', '.join(POLICY_ORDER)}")
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.policy = policy
        self.enabled = enabled
        self._clock = clock
        self._inline_limit = inline_limit
        self._codec = Codec(secret_key)
        self._lock = threading.RLock()
        self._mem = MemoryTier(int(memory_bytes), policy)
        self._lru = policy == "lru"
        self._counters = Counters()
        self._touched: dict[int, list[float]] = {}  # entry id -> [hits, last access], unflushed
        self._doomed: dict[int, int] = {}  # entry id -> stamp, found expired/corrupt, to delete
        self._namespaces_ok = {DEFAULT_NAMESPACE}
        self._last_flush = clock()
        self._flush_soon = False
        self._cur: sqlite3.Cursor | None = None  # reset when the connection changes
        self._prepare_folders()
        self._in_memory_fs = filesystem_type(self.directory) in MEMORY_FILESYSTEMS
        # One lock for the memory tier and the connection: every path takes it
        # first, so no two locks can ever be taken in opposite orders.
        self._db = Database(
            self.directory / "cache.sqlite", schema=schema, version=FORMAT_VERSION,
            disposable=True, label="cache index", lock=self._lock,
        )
        self._state = SharedState(self.directory / "state")
        self._bind_state()
        self._nonce_seen = self._state.nonce
        self._epoch = 0
        self._dv_seen = -1
        self._closed = False
        forget_after_fork(self)
        self._maybe_sweep()

    def _bind_state(self) -> None:
        row = self._retry_corrupt(
            lambda: self._db.fetchone("SELECT value FROM meta WHERE name = 'index_id'"))
        self._state.bind(row[0] if row else 0)

    def _after_fork(self) -> None:
        # In a forked child: fresh lock (the parent's may be held by a thread that
        # does not exist here), no cursor of the parent's connection.
        self._lock = threading.RLock()
        self._db.lock = self._lock
        self._cur = None

    @classmethod
    def from_settings(cls, settings: Settings, home: Home, **kwargs: Any) -> Cache:
        """The cache a :class:`Session` builds from its settings and home."""
        return cls(
            settings.cache_dir,  # type: ignore[arg-type]
            secret_key=home.secret_key(),
            max_bytes=settings.max_cache_bytes,
            memory_bytes=settings.memory_cache_bytes,
            policy=settings.cache_policy,
            enabled=settings.enable_caching,
            **kwargs,
        )

    # -- setup ----------------------------------------------------------------------

    def _prepare_folders(self) -> None:
        """Create ``values/00``..``values/ff``; replace any planted symlink by a real folder.

        Checked on every open (256 lstat calls, well under a millisecond): value
        files are opened with O_NOFOLLOW, which guards only the last path part.
        """
        values = self.directory / "values"
        values.mkdir(mode=0o700, parents=True, exist_ok=True)
        reject_symlink(values)
        for i in range(256):
            shard = values / f"{i:02x}"
            try:
                info = os.lstat(shard)
            except FileNotFoundError:
                shard.mkdir(mode=0o700, exist_ok=True)
                continue
            if not stat.S_ISDIR(info.st_mode):
                warnings.warn(f"{shard} was not a folder (a planted link?); replaced by an empty "
                              "folder", SecurityWarning, stacklevel=3)
                os.unlink(shard)
                shard.mkdir(mode=0o700)

    # -- the dict protocol (default namespace) --------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise CacheKeyError(f"{key!r} is not in the cache")
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise CacheKeyError(f"{key!r} is not in the cache")

    def __contains__(self, key: Any) -> bool:
        return self.get(key, _MISSING, _count=False) is not _MISSING

    def __len__(self) -> int:
        return self._totals()[0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def keys(self, namespace: str | None = None) -> list[Any]:
        """Keys of one namespace (the default one unless given)."""
        ns = self._namespace(namespace)
        with self._db.read() as conn:
            rows = conn.execute("SELECT key FROM entries WHERE namespace = ? ORDER BY created", (ns,))
            return [decode_key(k) for (k,) in rows.fetchall()]

    def pop(self, key: Any, default: Any = _MISSING, *, namespace: str | None = None) -> Any:
        value = self.get(key, _MISSING, namespace=namespace, memory=False, _count=False)
        if value is _MISSING:
            if default is _MISSING:
                raise CacheKeyError(f"{key!r} is not in the cache")
            return default
        self.delete(key, namespace=namespace)
        return value

    # -- reading ------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, *, namespace: str | None = None,
            memory: bool = True, _count: bool = True) -> Any:
        """The value stored under ``key``, or ``default`` when missing or expired.

        ``memory=False`` reads from disk and returns a fresh copy (use it when
        you will change the value in place); by default a hit in the memory
        tier returns the very object held there.
        """
        ns = DEFAULT_NAMESPACE if namespace is None else self._namespace(namespace)
        if type(key) is str:
            mk: Hashable = (ns, key)
            encoded = None
        else:
            encoded = encode_key(key)
            mk = (ns, encoded)
        if not self.enabled:
            if _count:
                self._counters.row(ns)[2] += 1
            return default
        # One lock hold covers the memory tier and, for small inline values, the disk
        # read too: this is the path every hit takes, so it is kept straight-line.
        with self._lock:
            if memory:
                entry = self._mem.entries.get(mk)
                if entry is not None and self._state.slots[0] != self._nonce_seen:
                    self._check_nonce()  # may drop copies another process replaced
                    entry = self._mem.entries.get(mk)
                if entry is not None:
                    now = self._clock()
                    ttl = entry.ttl
                    if entry.epoch == self._epoch and (
                            ttl is None or entry.created <= now < entry.created + ttl):
                        entry.hits += 1
                        if self._lru:
                            self._mem.entries.move_to_end(mk)
                        if _count:
                            row = self._counters.rows.get(ns) or self._counters.row(ns)
                            row[0] += 1
                            row[6] += entry.compute_s
                            touched = self._touched.get(entry.eid)
                            if touched is None:
                                self._touched[entry.eid] = [1, now]
                            else:
                                touched[0] += 1
                                touched[1] = now
                            if not (0.0 <= now - self._last_flush < _FLUSH_EVERY_S):
                                self._flush_soon = True
                        return entry.value
            if encoded is None:
                encoded = b"s" + key.encode("utf-8", "surrogatepass")
            prefix = _ID_PREFIXES.get(ns)
            eid = (entry_id(ns, encoded) if prefix is None
                   else xxh3_64_intdigest(prefix + encoded) - _ID_OFFSET)
            cur = self._cur
            if cur is None:
                cur = self._cur = self._db.connection().cursor()
            try:
                row = cur.execute(_SELECT_INLINE, (eid,)).fetchone()
            except sqlite3.Error:
                row = False  # the general path below reports it properly
            if row is None:  # a plain miss: no second query
                log.debug("miss: %r in namespace %r", key, ns)
                if _count:
                    (self._counters.rows.get(ns) or self._counters.row(ns))[2] += 1
                    self._maybe_flush(self._clock())
                return default
            # An inline value carries its write-once metadata in front of the signed blob,
            # so one column answers the lookup. (A file value: NULL, general path.) The key
            # itself is bound into the signature: another key's row fails the check and the
            # general path, which compares keys, makes it a plain miss.
            blob = row[0] if row else None
            if blob is not None:
                stamp, created, ttl, compute_s = _INLINE_META.unpack_from(blob)
                now = self._clock()
                if ttl < 0 or created <= now < created + ttl:
                    try:
                        value = self._codec.loads_at(blob, _INLINE_META.size, context=encoded)
                    except IntegrityError:
                        pass  # the general path re-reads it and reports the problem
                    else:
                        if _count:
                            counters = self._counters.rows.get(ns) or self._counters.row(ns)
                            counters[1] += 1
                            counters[6] += compute_s
                            touched = self._touched.get(eid)
                            if touched is None:
                                self._touched[eid] = [1, now]
                            else:
                                touched[0] += 1
                                touched[1] = now
                            if not (0.0 <= now - self._last_flush < _FLUSH_EVERY_S):
                                self._flush_soon = True
                        size = len(blob)
                        if memory and size <= self._mem.max_bytes:
                            self._mem.put(mk, MemEntry(
                                value, size=size, stamp=stamp, created=created,
                                ttl=None if ttl < 0 else ttl, compute_s=compute_s,
                                epoch=self._epoch, namespace=ns, eid=eid))
                        if self._flush_soon:
                            self._maybe_flush(now)
                        return value
        return self._get_general(mk, ns, key, encoded, eid, default, memory, _count)

    def _record_disk_hit(self, mk: Hashable, ns: str, eid: int, value: Any, row: tuple,
                         now: float, promote: bool, count: bool) -> None:
        _key, stamp, created, ttl, size, _file, _blob, compute_s = row
        if count:
            r = self._counters.rows.get(ns) or self._counters.row(ns)
            r[1] += 1
            r[6] += compute_s
            self._touch(eid, now)
        if promote and size <= self._mem.max_bytes:
            self._mem.put(mk, MemEntry(value, size=size, stamp=stamp, created=created, ttl=ttl,
                                       compute_s=compute_s, epoch=self._epoch, namespace=ns,
                                       eid=eid))
        if self._flush_soon:
            self._maybe_flush(now)

    def _get_general(self, mk: Hashable, ns: str, key: Any, encoded: bytes, eid: int,
                     default: Any, promote: bool, count: bool) -> Any:
        """Every case the fast path leaves: files, expiry, damage, races."""
        for _attempt in range(2):
            row = self._read_row(eid)
            if row is None or row[0] != encoded:
                break
            _key, stamp, created, ttl, size, file, blob, compute_s = row
            now = self._clock()
            if ttl is not None and not (created <= now < created + ttl):
                with self._lock:
                    self._doomed[eid] = stamp
                break
            try:
                value = (self._codec.loads_at(blob, _INLINE_META.size, context=encoded)
                         if file is None else self._read_file(file, encoded, size))
            except FileNotFoundError:
                if self._still_current(eid, stamp):
                    self._drop_bad(eid, stamp, f"value file of {key!r} is missing")
                    break
                continue  # replaced by another process between our read and open: retry
            except OSError as exc:
                # ELOOP: the value file was replaced by a symlink; never followed.
                self._drop_bad(eid, stamp, f"value file of {key!r} cannot be read safely ({exc})",
                               security=exc.errno == errno.ELOOP)
                break
            except IntegrityError as exc:
                self._drop_bad(eid, stamp, f"value of {key!r} in namespace {ns!r}: {exc}",
                               security=exc.security, stale=exc.stale)
                break
            with self._lock:
                self._record_disk_hit(mk, ns, eid, value, row, now, promote, count)
            return value
        log.debug("miss: %r in namespace %r", key, ns)
        if count:
            with self._lock:
                self._counters.row(ns)[2] += 1
        self._maybe_flush(self._clock())
        return default

    _SELECT_ROW = ("SELECT key, stamp, created, ttl, size, file, value, compute_s "
                   "FROM entries WHERE id = ?")

    def _read_row(self, eid: int) -> tuple[Any, ...] | None:
        try:
            return self._db.fetchone(self._SELECT_ROW, (eid,))
        except StoreCorruptError:
            self._recover_index()
            return None

    def _read_file(self, file: str, encoded: bytes, size: int) -> Any:
        fd = os.open(self.directory / file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb", buffering=0) as f:
            actual = os.fstat(fd).st_size
            if actual != size:
                raise IntegrityError(f"value file has {actual} bytes, expected {size} (truncated?)")
            return self._codec.read(f, context=encoded, size=actual)

    def _still_current(self, eid: int, stamp: int) -> bool:
        row = self._read_row(eid)
        return row is not None and row[1] == stamp

    def _drop_bad(self, eid: int, stamp: int, message: str, *, security: bool = False,
                  stale: bool = False) -> None:
        """A value failed to load: warn (unless merely from an old format) and forget it."""
        if security:
            warnings.warn(f"{message}; it was never unpickled and was removed from the cache",
                          SecurityWarning, stacklevel=4)
        elif not stale:
            warnings.warn(f"{message}; treated as a miss and removed", CacheIntegrityWarning,
                          stacklevel=4)
        else:
            log.info("dropping stale-format cache entry: %s", message)
        with self._lock:
            self._doomed[eid] = stamp
        self._maybe_flush(self._clock(), force=True)

    # -- writing --------------------------------------------------------------------

    def set(self, key: Any, value: Any, *, ttl: float | str | None = None,
            tags: Iterable[str] | None = None, namespace: str | None = None,
            compute_time: float = 0.0, pickler: Any = None) -> None:
        """Store ``value`` under ``key``.

        ``ttl`` (seconds or ``"1h"``) makes the entry expire; ``tags`` let
        :meth:`clear` remove groups of entries; ``compute_time`` (seconds it
        took to produce the value) feeds the "time saved" statistic;
        ``pickler`` (e.g. the ``cloudpickle`` module) pickles values that hold
        functions or classes defined in a notebook.

        Raises :class:`SerializationError` if the value cannot be pickled and
        :class:`ValueTooLargeError` if it exceeds the byte limit — in both
        cases before anything is written or evicted — and
        :class:`CacheFullError` when the disk is full (the old entry stays).
        """
        ns = self._namespace(namespace)
        encoded_key = encode_key(key)
        if not self.enabled:
            return
        ttl_s = None if ttl is None else parse_duration(ttl, name="ttl")
        tag_text = _encode_tags(tags)
        eid = entry_id(ns, encoded_key)
        # SerializationError here, before any write; a small value comes back packed.
        encoded = self._codec.encode_compact(value, context=encoded_key, limit=self._inline_limit,
                                             pickler=pickler)
        size = len(encoded) if type(encoded) is bytes else encoded.nbytes
        if size > self.max_bytes:
            raise ValueTooLargeError(
                f"the value for {key!r} takes {size:,} bytes, more than the whole cache "
                f"({self.max_bytes:,} bytes); raise RESMAN_MAX_CACHE or store a smaller value"
            )
        stamp = private_random.getrandbits(63)
        now = self._clock()
        relpath: str | None = None
        blob: bytes | None = None
        if size <= self._inline_limit:
            packed = encoded if type(encoded) is bytes else encoded.to_bytes()
            blob = _INLINE_META.pack(stamp, now, -1.0 if ttl_s is None else ttl_s,
                                     compute_time) + packed
            size = len(blob)
        else:
            relpath = value_relpath(eid, stamp)
            self._write_file(relpath, encoded)
        try:
            try:
                old_file, evicted = self._commit_set(eid, ns, encoded_key, stamp, now, ttl_s, size,
                                                     compute_time, tag_text, relpath, blob)
            except StoreCorruptError:
                self._recover_index()
                old_file, evicted = self._commit_set(eid, ns, encoded_key, stamp, now, ttl_s, size,
                                                     compute_time, tag_text, relpath, blob)
        except BaseException as exc:
            if relpath is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / relpath)
            if is_disk_full(exc):
                raise CacheFullError(_full_message(exc, self.directory)) from exc
            raise
        if evicted or old_file:
            files = [row[2] for row in evicted if row[2]]
            if old_file:
                files.append(old_file)
            self._after_write(files)
        with self._lock:
            mem = self._mem
            if mem.entries:
                mem.discard((ns, key) if type(key) is str else (ns, encoded_key))
                if evicted:
                    self._forget_evicted(evicted)
            (self._counters.rows.get(ns) or self._counters.row(ns))[3] += 1
        if self._flush_soon or not (0.0 <= now - self._last_flush < _FLUSH_EVERY_S):
            self._maybe_flush(now)

    def _write_file(self, relpath: str, encoded: Any) -> None:
        final = self.directory / relpath
        tmp = final.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                if (encoded.nbytes >= _PREALLOCATE and hasattr(os, "posix_fallocate")
                        and not self._in_memory_fs):
                    # Reserving the blocks first writes ~20 % faster, and a full disk
                    # fails here, before any data is copied. (On tmpfs it would zero-fill
                    # every page first: 0.2 s per GB for nothing.)
                    os.posix_fallocate(fd, 0, encoded.nbytes)
                encoded.write_to(f)
            os.replace(tmp, final)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if is_disk_full(exc):
                raise CacheFullError(_full_message(exc, self.directory)) from exc
            raise

    def _commit_set(self, eid: int, ns: str, encoded_key: bytes, stamp: int, now: float,
                    ttl: float | None, size: int, compute_time: float, tags: str | None,
                    relpath: str | None, blob: bytes | None) -> tuple[str | None, list[tuple]]:
        """Upsert the row and enforce the byte limit; returns (replaced file, evicted rows)."""
        with self._change() as change:
            old = change.conn.execute(_SELECT_OLD, (eid,)).fetchone()
            change.conn.execute(_UPSERT, (eid, ns, encoded_key, stamp, now, ttl, now, size,
                                          compute_time, tags, relpath, blob))
            change.add(0 if old else 1, size - (old[1] if old else 0))
            evicted = []
            if change.total_bytes() > self.max_bytes:
                evicted = self._evict(change, now, keep=eid)
            return (old[0] if old else None), evicted

    def _change(self) -> Change:
        """A write transaction that keeps the shared entry/byte counters exact."""
        return Change(self._db, self._state, _recount)

    def _totals(self) -> tuple[int, int]:
        """``(entries, bytes)``, recounted first if a writer died mid-change."""
        if not self._state.trusted:
            with self._change():
                pass
        return self._state.totals()

    def _evict(self, change: Change, now: float, keep: int) -> list[tuple]:
        """Delete entries by policy (expired first) until under the low-water mark.

        The scan reads every row anyway (to sort them), so it also recounts the
        totals exactly before deciding: a stale counter can never cause eviction.
        """
        conn = change.conn
        self._flush_touched(conn)
        rows = conn.execute(
            "SELECT id, size, file, namespace, key FROM entries ORDER BY "
            "(ttl IS NOT NULL AND (created + ttl <= ? OR created > ?)) DESC, "
            + POLICY_ORDER[self.policy], (now, now),
        ).fetchall()
        total = sum(row[1] for row in rows)
        change.set_totals(len(rows), total)
        victims = []
        if total > self.max_bytes:
            target = int(self.max_bytes * _LOW_WATER)
            for row in rows:
                if total <= target:
                    break
                if row[0] == keep:
                    continue  # never the value being written
                victims.append(row)
                total -= row[1]
        if not victims:
            return []
        conn.executemany("DELETE FROM entries WHERE id = ?", [(v[0],) for v in victims])
        freed = sum(v[1] for v in victims)
        change.add(-len(victims), -freed)
        for v in victims:
            counters = self._counters.row(v[3])
            counters[4] += 1
            counters[5] += v[1]
        log.info("cache over its %s-byte limit: evicted %d entries (%d bytes) by %s",
                 f"{self.max_bytes:,}", len(victims), freed, self.policy)
        return victims

    def _forget_evicted(self, evicted: list[tuple]) -> None:
        keys = {(ns, k) for _id, _size, _file, ns, k in evicted}

        def gone(mk: Hashable, entry: MemEntry) -> bool:
            ns, key = mk  # type: ignore[misc]
            return (ns, key if type(key) is bytes else encode_key(key)) in keys
        self._mem.discard_where(gone)

    def delete(self, key: Any, *, namespace: str | None = None) -> bool:
        """Remove ``key``; returns whether it was there."""
        ns = self._namespace(namespace)
        encoded = encode_key(key)
        eid = entry_id(ns, encoded)

        def commit() -> tuple[bool, list[str]]:
            with self._change() as change:
                row = change.conn.execute("SELECT file, key, size FROM entries WHERE id = ?",
                                          (eid,)).fetchone()
                if row is None or row[1] != encoded:
                    return False, []
                change.conn.execute("DELETE FROM entries WHERE id = ?", (eid,))
                change.add(-1, -row[2])
                return True, [row[0]] if row[0] else []
        found, files = self._retry_corrupt(commit)
        with self._lock:
            self._mem.discard((ns, key) if type(key) is str else (ns, encoded))
        if found:
            self._after_write(files)
        return found

    def clear(self, namespace: str | None = None, tags: Iterable[str] | str | None = None,
              older_than: float | str | None = None) -> int:
        """Remove entries matching *all* the given conditions; returns how many.

        ``tags`` matches entries carrying *any* of the tags. With no argument
        everything is removed. Other processes' memory tiers notice at their
        next lookup.
        """
        where, params = self._where(namespace, tags, older_than)
        return self._delete_where(where, params)

    def count(self, namespace: str | None = None, tags: Iterable[str] | str | None = None,
              older_than: float | str | None = None) -> tuple[int, int]:
        """``(entries, bytes)`` that :meth:`clear` with the same arguments would remove."""
        where, params = self._where(namespace, tags, older_than)
        with self._db.read() as conn:
            n, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries{where}",
                                   params).fetchone()
        return n, size

    def _where(self, namespace: str | None, tags: Iterable[str] | str | None,
               older_than: float | str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(self._namespace(namespace))
        if tags is not None:
            tag_list = [tags] if isinstance(tags, str) else list(tags)
            clauses.append("EXISTS (SELECT 1 FROM json_each(entries.tags) WHERE value IN (%s))"
                           % ", ".join("?" * len(tag_list)))
            params.extend(tag_list)
        if older_than is not None:
            clauses.append("created < ?")
            params.append(self._clock() - parse_duration(older_than, name="older_than"))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _delete_where(self, where: str, params: list[Any]) -> int:
        def commit() -> tuple[list[tuple], list[str]]:
            with self._change() as change:
                rows = change.conn.execute(
                    f"SELECT id, file, namespace, key, size FROM entries{where}", params).fetchall()
                change.conn.execute(f"DELETE FROM entries{where}", params)
                change.add(-len(rows), -sum(r[4] for r in rows))
                return rows, [r[1] for r in rows if r[1]]
        rows, files = self._retry_corrupt(commit)
        if rows:
            self._after_write(files)
        with self._lock:
            gone = {(ns, k) for _id, _f, ns, k, _size in rows}
            self._mem.discard_where(
                lambda mk, e: (mk[0], mk[1] if type(mk[1]) is bytes else encode_key(mk[1])) in gone)
        return len(rows)

    # -- cross-process coherence ------------------------------------------------------

    def _after_write(self, files: list[str]) -> None:
        """After a commit: delete the files of replaced, removed and evicted entries.

        Our own nonce change stays unseen on purpose: the next memory hit compares
        SQLite's data_version once, which also reveals any other process's commit
        that raced with ours.
        """
        for rel in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / rel)

    def _check_nonce(self) -> None:
        """The nonce moved: if data_version did too, another process changed values."""
        self._nonce_seen = self._state.slots[0]
        with self._db.read() as conn:
            self._note_foreign_changes(conn)

    def _note_foreign_changes(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._dv_seen:
            if self._dv_seen != -1:
                self._epoch += 1  # memory copies must be revalidated before use
            self._dv_seen = version
            self._revalidate_lazily()

    def _revalidate_lazily(self) -> None:
        # Entries whose row still has the same stamp stay; the others are dropped.
        # Done in one query for the whole tier, at most once per foreign change.
        if not self._mem.entries:
            return
        ids = {e.eid: mk for mk, e in self._mem.entries.items() if e.eid is not None}
        conn = self._db.connection()
        current: dict[int, int] = {}
        id_list = list(ids)
        for i in range(0, len(id_list), 500):
            chunk = id_list[i:i + 500]
            for eid, stamp in conn.execute(
                f"SELECT id, stamp FROM entries WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            ):
                current[eid] = stamp
        for eid, mk in ids.items():
            entry = self._mem.entries.get(mk)
            if entry is None:
                continue
            if current.get(eid) == entry.stamp:
                entry.epoch = self._epoch
            else:
                self._mem.discard(mk)

    # -- housekeeping ----------------------------------------------------------------

    def _touch(self, eid: int | None, now: float) -> None:
        if eid is not None:
            t = self._touched.get(eid)
            if t is None:
                self._touched[eid] = [1, now]
            else:
                t[0] += 1
                t[1] = now
        if not (0.0 <= now - self._last_flush < _FLUSH_EVERY_S):
            self._last_flush = now
            self._flush_soon = True

    def _maybe_flush(self, now: float, force: bool = False) -> None:
        if force or self._flush_soon or not (0.0 <= now - self._last_flush < _FLUSH_EVERY_S):
            self._flush_soon = False
            self._last_flush = now
            self.flush()

    def flush(self) -> None:
        """Write this process's counters, access times and pending deletions to the index."""
        with self._lock:
            rows = self._counters.take()
            touched, self._touched = self._touched, {}
            doomed, self._doomed = self._doomed, {}
        if not (rows or touched or doomed):
            return
        now = self._clock()
        try:
            def commit() -> list[str]:
                with self._change() as change:
                    conn = change.conn
                    _flush_rows(conn, rows, now)
                    self._apply_touched(conn, touched)
                    files = []
                    for eid, stamp in doomed.items():
                        row = conn.execute("SELECT file, size FROM entries WHERE id = ? AND stamp = ?",
                                           (eid, stamp)).fetchone()
                        if row is not None:
                            conn.execute("DELETE FROM entries WHERE id = ?", (eid,))
                            change.add(-1, -row[1])
                            if row[0]:
                                files.append(row[0])
                    return files
            files = self._retry_corrupt(commit)
        except Exception as exc:
            # Statistics must never break a lookup: keep the counters for the next try.
            with self._lock:
                self._counters.restore(rows)
                for eid, t in touched.items():
                    self._touched.setdefault(eid, t)
                self._doomed.update(doomed)
            log.warning("could not flush cache statistics (%s); will retry", exc)
            return
        if files:
            self._after_write(files)

    def _flush_touched(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
        self._apply_touched(conn, touched)

    @staticmethod
    def _apply_touched(conn: sqlite3.Connection, touched: dict[int, list[float]]) -> None:
        if touched:
            conn.executemany(
                "UPDATE entries SET hits = hits + ?, accessed = max(accessed, ?) WHERE id = ?",
                [(int(h), t, eid) for eid, (h, t) in touched.items()],
            )

    def sweep(self, grace: float = _ORPHAN_GRACE_S) -> int:
        """Delete orphan files (left by crashed writers) older than ``grace`` seconds.

        Returns how many files were removed. Runs by itself at most once an
        hour when a cache is opened.
        """
        cutoff = time.time() - grace
        with self._db.read() as conn:
            known = {f for (f,) in conn.execute("SELECT file FROM entries WHERE file IS NOT NULL")}
        removed = 0
        values = self.directory / "values"
        for shard in sorted(values.iterdir()):
            if not shard.is_dir() or shard.is_symlink():
                continue
            with os.scandir(shard) as it:
                for item in it:
                    rel = f"values/{shard.name}/{item.name}"
                    if rel in known or not item.is_file(follow_symlinks=False):
                        if item.is_symlink():
                            os.unlink(item.path)  # never ours: a planted link
                            removed += 1
                        continue
                    try:
                        if item.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(item.path)
                            removed += 1
                    except FileNotFoundError:
                        continue
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('last_sweep', ?)",
                         (time.time(),))
        if removed:
            log.info("removed %d orphan cache files", removed)
        return removed

    def _maybe_sweep(self) -> None:
        with self._db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'last_sweep'").fetchone()
        if row is None or not (0 <= time.time() - row[0] < _SWEEP_EVERY_S):
            self.sweep()

    def _retry_corrupt(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; if the index turns out corrupt, move it aside and run it once more."""
        try:
            return fn()
        except StoreCorruptError:
            self._recover_index()
            return fn()

    def _recover_index(self) -> None:
        with self._lock:
            self._cur = None
            self._db.recover()
            self._state.invalidate()
            self._bind_state()
            self._mem.clear()
            self._dv_seen = -1

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            return DEFAULT_NAMESPACE
        if namespace not in self._namespaces_ok:
            check_namespace(namespace)
            self._namespaces_ok.add(namespace)
        return namespace

    # -- inspection ----------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, hit rate, per tier, evictions, entries, bytes, time saved."""
        self.flush()
        with self._db.read() as conn:
            sums = conn.execute(
                f"SELECT namespace, {', '.join(f'SUM({f})' for f in FIELDS)} FROM stats GROUP BY namespace"
            ).fetchall()
            sizes = dict(((ns, (n, b)) for ns, n, b in conn.execute(
                "SELECT namespace, COUNT(*), COALESCE(SUM(size), 0) FROM entries GROUP BY namespace")))
        entries, nbytes = self._totals()
        totals = dict.fromkeys(FIELDS, 0)
        namespaces = {}
        for ns, *values in sums:
            row = dict(zip(FIELDS, (v or 0 for v in values)))
            for f in FIELDS:
                totals[f] += row[f]
            n, b = sizes.get(ns, (0, 0))
            namespaces[ns] = NamespaceStats(n, b, int(row["mem_hits"] + row["disk_hits"]),
                                            int(row["misses"]), float(row["time_saved"]))
        for ns, (n, b) in sizes.items():
            namespaces.setdefault(ns, NamespaceStats(n, b, 0, 0, 0.0))
        with self._lock:
            mem = TierStats(int(totals["mem_hits"]), len(self._mem), self._mem.bytes)
        return CacheStats(
            hits=int(totals["mem_hits"] + totals["disk_hits"]), misses=int(totals["misses"]),
            sets=int(totals["sets"]), evictions=int(totals["evictions"]),
            evicted_bytes=int(totals["evicted_bytes"]), entries=entries, bytes=nbytes,
            max_bytes=self.max_bytes, time_saved_s=float(totals["time_saved"]), memory=mem,
            disk=TierStats(int(totals["disk_hits"]), entries, nbytes),
            namespaces=dict(sorted(namespaces.items())),
        )

    def history(self, namespace: str | None = None, since: float | None = None) -> Any:
        """Hits and misses per minute and namespace, as a DataFrame (the time series)."""
        import pandas as pd

        self.flush()
        clauses, params = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(self._namespace(namespace))
        if since is not None:
            clauses.append("bucket >= ?")
            params.append(int(since // BUCKET_S) * BUCKET_S)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT bucket, namespace, mem_hits + disk_hits, misses, sets, evictions, "
                f"time_saved FROM stats{where} ORDER BY bucket, namespace", params).fetchall()
        frame = pd.DataFrame(rows, columns=["time", "namespace", "hits", "misses", "sets",
                                           "evictions", "time_saved_s"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def entries(self, namespace: str | None = None) -> Any:
        """One row per entry: key, namespace, tags, bytes, created, last access, hits,
        expires, compute time (and whether this process holds it in memory)."""
        import pandas as pd

        self.flush()
        where, params = ("WHERE namespace = ?", [self._namespace(namespace)]) if namespace else ("", [])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT namespace, key, tags, size, created, accessed, hits, ttl, compute_s, file "
                f"FROM entries {where} ORDER BY created", params).fetchall()
        with self._lock:
            in_memory = set(self._mem.entries)
        records = []
        for ns, key, tags, size, created, accessed, hits, ttl, compute_s, file in rows:
            decoded = decode_key(key)
            mk = (ns, decoded) if type(decoded) is str else (ns, key)
            records.append({
                "key": decoded, "namespace": ns, "tags": json.loads(tags) if tags else [],
                "bytes": size, "created": created, "last_access": accessed, "hits": hits,
                "expires": None if ttl is None else created + ttl, "compute_time_s": compute_s,
                "stored": "file" if file else "inline", "in_memory": mk in in_memory,
            })
        columns = ["key", "namespace", "tags", "bytes", "created", "last_access", "hits", "expires",
                   "compute_time_s", "stored", "in_memory"]
        frame = pd.DataFrame.from_records(records, columns=columns)
        for col in ("created", "last_access", "expires"):
            frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
        return frame

    def namespaces(self) -> list[str]:
        with self._db.read() as conn:
            return [ns for (ns,) in conn.execute("SELECT DISTINCT namespace FROM entries ORDER BY 1")]

    # -- memoization ------------------------------------------------------------------------

    def memoize(self, ttl: float | str | None = None, tags: Iterable[str] = (),
                namespace: str | None = None, *, name: str | None = None) -> Callable:
        """Decorator caching a function's results by its code and its arguments.

        See :func:`jupyter_resman.core.memoize.memoize` for how keys are made.
        """
        from .memoize import memoize

        return memoize(lambda: self, ttl=ttl, tags=tags, namespace=namespace, name=name)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Flush counters and close the index; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            with self._lock:
                self._mem.clear()
            with contextlib.suppress(BufferError, ValueError):
                self._state.close()
            self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({str(self.directory)!r}, policy={self.policy!r}, max_bytes={self.max_bytes:,})"


def _recount(conn: sqlite3.Connection) -> tuple[int, int]:
    count, nbytes = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
    return count, nbytes


def _flush_rows(conn: sqlite3.Connection, rows: dict[str, list[float]], now: float) -> None:
    counters = Counters()
    counters.rows = rows
    counters.flush(conn, now)


def _encode_tags(tags: Iterable[str] | str | None) -> str | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        tags = [tags]
    tag_list = sorted({str(t) for t in tags})
    return json.dumps(tag_list) if tag_list else None


def _full_message(exc: BaseException, directory: Path) -> str:
    return (f"the cache folder {directory} is full ({exc}); nothing was stored and older entries "
            "are intact. Free disk space, lower RESMAN_MAX_CACHE or clear the cache "
            "(`resman cache clear --older-than 7d`).")


def cached(ttl: float | str | None = None, tags: Iterable[str] = (),
           namespace: str | None = None, *, name: str | None = None) -> Callable:
    """``@resman.cached()``: memoize on the default session's cache.

    The session is looked up at call time, so a function decorated at import
    follows ``set_session``.
    """
    from .memoize import memoize
    from .session import get_session

    return memoize(lambda: get_session().cache, ttl=ttl, tags=tags, namespace=namespace, name=name)
