"""Checkpoints: named, versioned, signed snapshots of any picklable state.

>>> import tempfile
>>> from jupyter_resman.core.session import Session
>>> with Session(home=tempfile.mkdtemp()) as s:
...     s.checkpoints.save("run1", {"step": 10}, description="step 10").version
...     s.checkpoints.save("run1", {"step": 20}).version
...     s.checkpoints.load("run1"), s.checkpoints.load("run1", version=1)
...     s.checkpoints.prune("run1", keep=1), s.checkpoints.load("missing")
1
2
({'step': 20}, {'step': 10})
(1, None)

Layout: one folder per name under ``<home>/checkpoints/`` (a readable slug
plus a hash of the exact name, so any user string maps to one safe folder
and nothing is ever created outside the home), one file per version::

    checkpoints/run1-6c3f...e1/
      .lock              flock'd while a version is numbered and written, or deleted
      v00000001.ckpt     signed header (JSON metadata) + signed value (serialize.Codec)
      v00000002.ckpt
      r-1f0c...-0-9a3b.part  a part: a signed value that versions refer to by name
                         (resumable loops keep their results in parts, so a save
                         writes only what is new); removed with the last version

The files are the only truth: there is no index to fall out of step with
them, and listing reads just the small header of each file, so the Jupyter
server can list (and delete) while a kernel writes.

A save is atomic: the file is written under a temp name, flushed and
fsync'd, ``os.replace``d into place and the folder fsync'd. A crash or an
exception at any point leaves the previous versions untouched plus at worst a
temp file, which the next save of that name removes. Saving is two steps —
:meth:`Checkpoints.begin_save` pickles and signs, :meth:`PendingSave.commit`
numbers and writes — so a loop can leave the ``fsync`` to another thread.

Both parts of a file are signed with the home's key (the header with
HMAC-SHA256, the value by the codec's keyed BLAKE2b): the
header (name, version, time, description, meta, and the value's signature)
and the value, bound to its name and to a nonce in the header, so a
checkpoint cannot be forged, edited or moved under another name or version
without failing its check (a checkpoint is a pickle in a shared folder:
unsigned bytes are never unpickled). A load also checks the value's
checksums; a truncated or corrupted newer version is skipped with a
:class:`~.errors.CheckpointWarning` (:class:`~.errors.SecurityWarning` for a
bad signature) and the newest version that validates is returned.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import struct
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .db import is_disk_full
from .errors import (
    CheckpointError,
    CheckpointNameError,
    CheckpointNotFoundError,
    CheckpointWarning,
    IntegrityError,
    LockTimeout,
    SecurityWarning,
    SerializationError,
)
from .home import check_owner, ensure_private_dir, reject_symlink
from .serialize import Codec, Encoded

if TYPE_CHECKING:
    from .session import Session

__all__ = ["CheckpointInfo", "Checkpoints", "PendingSave"]

log = logging.getLogger("jupyter_resman.checkpoint")

MAGIC = b"RSMCKPT\x02"
#: magic, header length (all of it, padding included), JSON length, HMAC-SHA256 of the JSON
_HEAD = struct.Struct("<8sII32s")
#: Headers are padded to this, so raw array segments behind them stay 64-byte aligned.
HEADER_ALIGN = 64
MAX_HEADER = 1 << 20
NAME_MAX = 255
LOCK_TIMEOUT_S = 600.0

_VERSION_RE = re.compile(r"^v(\d{1,12})\.ckpt$")
#: A part: a signed value a version refers to by name (see :meth:`Checkpoints.write_part`).
_PART_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_PART_SUFFIX = ".part"
_FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}-[0-9a-f]{16}$")
_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class CheckpointInfo:
    """What one checkpoint version is, read from its header (nothing unpickled).

    ``checksum`` is the hex MAC (keyed BLAKE2b) that signs the value (it covers the
    checksums of every raw segment too), so two versions with the same
    checksum hold the same bytes. ``complete`` is False when the file is
    shorter or longer than its header says (a truncated file).
    """

    name: str
    version: int
    time: float
    bytes: int
    checksum: str
    description: str | None
    compressed: bool
    path: Path
    complete: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)


class Checkpoints:
    """The checkpoints of one home (``session.checkpoints``); see the module docstring."""

    def __init__(self, session: Session) -> None:
        self.root = session.home.checkpoints_dir
        key = session.home.secret_key()
        self._codec = Codec(key)
        self._mac_base = hmac.new(key, b"checkpoint-header\0", "sha256")
        self._closed = False

    # -- saving ---------------------------------------------------------------------

    def save(self, name: str, state: Any, description: str | None = None, *,
             compress: bool = False, meta: Mapping[str, Any] | None = None) -> CheckpointInfo:
        """Store ``state`` as the next version of ``name``; returns its :class:`CheckpointInfo`.

        ``compress`` deflates the value (smaller files, slower saves); ``meta``
        is a small JSON-able mapping shown by :meth:`list` without loading the
        state. Raises :class:`SerializationError` (nothing written) when the
        state cannot be pickled, and :class:`CheckpointError` when the disk is
        full or the write fails; older versions are intact either way.
        """
        return self.begin_save(name, state, description, compress=compress, meta=meta).commit()

    def begin_save(self, name: str, state: Any, description: str | None = None, *,
                   compress: bool = False, meta: Mapping[str, Any] | None = None) -> PendingSave:
        """The first half of :meth:`save`: check and encode ``state``; nothing is written.

        The state is pickled and signed now (later changes to it are not
        saved); :meth:`PendingSave.commit` takes the next version number and
        does the disk I/O, possibly in another thread, so a loop need not
        wait for ``fsync``. Raises :class:`SerializationError` for a state
        that cannot be pickled or a ``meta`` that is not JSON.
        """
        self._check_open()
        _check_name(name)
        if description is not None and not isinstance(description, str):
            raise TypeError(f"description must be a str or None, not {type(description).__name__}")
        meta = dict(meta or {})
        _to_json({"description": description, "meta": meta})  # fail now, not in commit()
        # The signature binds the value to its name and to a nonce that the (signed)
        # header names, so a valid value cannot be moved under another name or version.
        nonce = secrets.token_hex(8)
        context = _context(name, nonce)
        try:
            encoded = self._codec.encode(state, context=context, compress=compress)
        except struct.error:
            # The value format counts out-of-band buffers in one byte: a state holding
            # more than ~250 arrays (a loop's per-item results) is pickled in band.
            encoded = self._codec.encode(state, context=context, compress=compress,
                                         inband_only=True)
        return PendingSave(self, name, description, bool(compress), meta, nonce, encoded)

    # -- loading --------------------------------------------------------------------

    def load(self, name: str, version: int | None = None, *, default: Any = None) -> Any:
        """The state of the newest valid version of ``name`` (or of ``version``).

        Newer versions that are truncated or corrupted are skipped with a
        :class:`CheckpointWarning` (a :class:`SecurityWarning` when the
        signature fails: such bytes are never unpickled). Returns ``default``
        when ``name`` has no valid version. An explicit ``version`` that is
        missing or damaged raises :class:`CheckpointNotFoundError` /
        :class:`CheckpointError` instead: you asked for exactly that one.
        """
        try:
            return self.restore(name, version)[0]
        except CheckpointNotFoundError:
            if version is not None:
                raise
            return default

    def restore(
        self, name: str, version: int | None = None, *,
        where: Callable[[CheckpointInfo], bool] | None = None,
    ) -> tuple[Any, CheckpointInfo]:
        """``(state, info)`` of the newest valid version, like :meth:`load`.

        ``where`` filters versions by their info before anything is read (the
        resumable loops pick the versions of their own input this way).
        Raises :class:`CheckpointNotFoundError` when no version qualifies.
        """
        folder = self._folder(name)
        if version is not None:
            path = folder / _version_file(_check_version(version))
            try:
                return self._read_state(path, version, name)
            except FileNotFoundError:
                have = [v for v, _ in _scan(folder)]
                raise CheckpointNotFoundError(
                    f"checkpoint {name!r} has no version {version}; "
                    + (f"it has versions {_ranges(have)}" if have else "it has no versions")
                ) from None
            except IntegrityError as exc:
                raise CheckpointError(f"version {version} of checkpoint {name!r} ({path}) cannot "
                                      f"be loaded: {exc}") from exc
        skipped: builtins.list[int] = []
        for found, filename in reversed(_scan(folder)):
            path = folder / filename
            if where is not None:
                info = self._read_info(path, found, name)
                if info is None or not where(info):
                    continue
            try:
                state, info = self._read_state(path, found, name)
            except FileNotFoundError:
                continue  # pruned or deleted by another process meanwhile
            except IntegrityError as exc:
                skipped.append(found)
                _warn_skipped(name, found, path, exc)
                continue
            if skipped:
                log.info("checkpoint %r: loaded version %d after skipping %s", name, found, skipped)
            return state, info
        raise CheckpointNotFoundError(
            f"no valid checkpoint named {name!r}"
            + (f" (versions {_ranges(skipped)} failed their checks)" if skipped else "")
        )

    # -- listing --------------------------------------------------------------------

    def versions(self, name: str) -> builtins.list[CheckpointInfo]:
        """Every version of ``name``, oldest first, read from headers only."""
        folder = self._folder(name)
        infos = (self._read_info(folder / f, v, name) for v, f in _scan(folder))
        return [i for i in infos if i is not None]

    def names(self) -> builtins.list[str]:
        """The names that have at least one version, sorted."""
        return sorted({info.name for info in self._all_infos()})

    def list(self, name: str | None = None) -> Any:
        """A pandas DataFrame, one row per version: name, version, time (UTC), bytes,
        description, compressed, complete, checksum, meta and path."""
        import pandas as pd

        self._check_open()
        infos = self.versions(name) if name is not None else self._all_infos()
        columns = ["name", "version", "time", "bytes", "description", "compressed", "complete",
                   "checksum", "meta", "path"]
        data = {c: [getattr(i, c) for i in infos] for c in columns}
        data["path"] = [str(p) for p in data["path"]]
        frame = pd.DataFrame(data, columns=columns)
        # A missing description stays None (pandas would turn it into NaN in a string column).
        frame["description"] = pd.Series(data["description"], dtype=object)
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame.sort_values(["name", "version"], ignore_index=True)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` has at least one version (valid or not)."""
        return isinstance(name, str) and bool(_scan(self._folder(name)))

    def _all_infos(self) -> builtins.list[CheckpointInfo]:
        infos: builtins.list[CheckpointInfo] = []
        try:
            folders = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return infos
        for entry in folders:
            if not _FOLDER_RE.match(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            for version, filename in _scan(Path(entry.path)):
                info = self._read_info(Path(entry.path) / filename, version, None)
                # The folder name is derived from the name: a header claiming another
                # name was copied or forged; it is not listed under that name.
                if info is not None and entry.name == _folder_name(info.name):
                    infos.append(info)
        return infos

    # -- parts ----------------------------------------------------------------------

    def encode_part(self, name: str, part: str, value: Any) -> bytes:
        """``value`` signed as part ``part`` of ``name``, ready for :meth:`write_part`.

        Parts are values that versions share by name (a version's state holds
        the part names): unlike a version, a part is written once and never
        numbered. The signature binds the bytes to ``name`` and ``part``.
        Raises :class:`SerializationError` when ``value`` cannot be pickled.
        """
        self._check_open()
        _check_name(name)
        _check_part(part)
        return self._codec.dumps(value, context=_part_context(name, part))

    def write_part(self, name: str, part: str, blob: bytes) -> None:
        """Write a part made by :meth:`encode_part` durably (temp, fsync, rename, fsync).

        Safe to retry after a failure. Raises :class:`CheckpointError` when the
        disk is full or the write fails (no partial part is left behind).
        """
        _check_part(part)
        folder = self._folder(name)
        with self._locked(folder) as dfd:
            assert dfd is not None  # created if missing
            try:
                _write_durably(dfd, part + _PART_SUFFIX, part, lambda f: f.write(blob))
            except OSError as exc:
                detail = ("the disk is full; free space or move the home (RESMAN_HOME)"
                          if is_disk_full(exc) else str(exc))
                raise CheckpointError(f"could not write part {part!r} of checkpoint "
                                      f"{name!r} in {folder}: {detail}") from exc

    def read_part(self, name: str, part: str) -> Any:
        """The value of part ``part`` of ``name``.

        Raises :class:`CheckpointNotFoundError` when it is missing and
        :class:`CheckpointError` when it fails its checks (never unpickled then).
        """
        _check_part(part)
        path = self._folder(name) / (part + _PART_SUFFIX)
        try:
            with _open(path) as f:
                blob = f.read()
        except FileNotFoundError:
            raise CheckpointNotFoundError(f"checkpoint {name!r} has no part {part!r} "
                                          f"({path} is missing)") from None
        except IntegrityError as exc:
            raise CheckpointError(f"part {part!r} of checkpoint {name!r}: {exc}") from exc
        try:
            return self._codec.loads(blob, context=_part_context(name, part))
        except IntegrityError as exc:
            raise CheckpointError(f"part {part!r} of checkpoint {name!r} ({path}) cannot be "
                                  f"loaded: {exc}") from exc

    def parts(self, name: str) -> builtins.list[str]:
        """The names of the parts stored under ``name``, sorted."""
        try:
            with os.scandir(self._folder(name)) as it:
                return sorted(e.name[:-len(_PART_SUFFIX)] for e in it
                              if e.name.endswith(_PART_SUFFIX)
                              and _PART_RE.match(e.name[:-len(_PART_SUFFIX)]))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def parts_bytes(self, name: str) -> int:
        """The bytes the parts of ``name`` take on disk (freed with its last version)."""
        folder = self._folder(name)
        total = 0
        for part in self.parts(name):
            with contextlib.suppress(FileNotFoundError):  # removed by another process meanwhile
                total += os.stat(folder / (part + _PART_SUFFIX), follow_symlinks=False).st_size
        return total

    def delete_parts(self, name: str, parts: Iterable[str]) -> int:
        """Delete these parts of ``name`` (missing ones are skipped); returns how many."""
        wanted = list(parts)
        for part in wanted:
            _check_part(part)
        removed = 0
        with self._locked(self._folder(name), create=False) as dfd:
            if dfd is None:
                return 0
            for part in wanted:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part + _PART_SUFFIX, dir_fd=dfd)
                    removed += 1
        return removed

    # -- removing -------------------------------------------------------------------

    def delete(self, name: str, version: int | Iterable[int] | None = None) -> int:
        """Delete ``name`` entirely, or one version / some versions; returns how many."""
        folder = self._folder(name)
        wanted = None if version is None else (
            {_check_version(version)} if isinstance(version, int)
            else {_check_version(v) for v in version})
        removed = 0
        with self._locked(folder, create=False) as dfd:
            if dfd is None:
                return 0
            found = _scan(dfd)
            for number, filename in found:
                if wanted is None or number in wanted:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(filename, dir_fd=dfd)
                        removed += 1
            if removed == len(found):
                # No version is left to refer to the parts: they go too.
                with os.scandir(dfd) as it:
                    for entry in it:
                        if entry.name.endswith(_PART_SUFFIX):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(entry.name, dir_fd=dfd)
                self._sweep_and_last(dfd)
                # Unlinking the lock file makes waiters retry on a fresh folder.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_LOCK_NAME, dir_fd=dfd)
                with contextlib.suppress(OSError):  # a stray foreign file keeps the folder
                    os.rmdir(folder)
        return removed

    def prune(self, name: str, keep: int = 5) -> int:
        """Keep the ``keep`` newest complete versions of ``name``; delete older ones.

        Truncated versions do not count towards ``keep`` (so pruning never
        leaves only broken files), and those newer than the oldest kept
        version stay for inspection. Returns how many versions were deleted.
        """
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep={keep!r}: keep at least 1 version (use delete() to remove all)")
        infos = self.versions(name)
        kept = [i for i in infos if i.complete][-keep:]
        if not kept:
            return 0
        doomed = [i.version for i in infos if i.version < kept[0].version]
        return self.delete(name, doomed) if doomed else 0

    def rollback(self, name: str, version: int, description: str | None = None) -> CheckpointInfo:
        """Make ``version`` the newest again by saving a copy of it as a new version.

        Nothing is deleted (roll forward again with another rollback);
        :meth:`prune` drops what is no longer wanted. The version must load.
        """
        state, info = self.restore(name, version)
        return self.save(name, state, description if description is not None else
                         f"rollback to version {version}", compress=info.compressed,
                         meta=info.meta)

    def close(self) -> None:
        """Nothing to release (no threads, no connections); later calls raise."""
        self._closed = True

    def __repr__(self) -> str:
        return f"Checkpoints({str(self.root)!r})"

    # -- internals ------------------------------------------------------------------

    def _header_mac(self, text: bytes) -> bytes:
        h = self._mac_base.copy()
        h.update(text)
        return h.digest()

    def _header(self, fields: Mapping[str, Any]) -> bytes:
        """A signed header: the metadata, its MAC, padded to keep the value aligned."""
        text = _to_json(fields)
        total = -(-(_HEAD.size + len(text)) // HEADER_ALIGN) * HEADER_ALIGN
        return (_HEAD.pack(MAGIC, total, len(text), self._header_mac(text)) + text
                + b" " * (total - _HEAD.size - len(text)))

    def _check_open(self) -> None:
        if self._closed:
            raise CheckpointError("these checkpoints belong to a closed Session; use a new one")

    def _folder(self, name: str) -> Path:
        """The folder of ``name``; refuses one replaced by a symlink (it could lead anywhere)."""
        self._check_open()
        _check_name(name)
        folder = self.root / _folder_name(name)
        reject_symlink(folder)
        return folder

    @contextlib.contextmanager
    def _locked(self, folder: Path, *, create: bool = True) -> Iterator[int | None]:
        """Lock ``folder`` (the kernel releases the lock if we die); yields an fd of it.

        Everything done under the lock goes through that fd (``dir_fd=``), so
        the folder cannot be swapped for a symlink midway. Yields None when
        ``create`` is False and the folder does not exist.
        """
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            dfd = _open_folder(folder, create=create)
            if dfd is None:
                yield None
                return
            try:
                try:
                    lock = os.open(_LOCK_NAME, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600,
                                   dir_fd=dfd)
                except FileNotFoundError:
                    continue  # the folder was deleted after we opened it: start over
                try:
                    _flock(lock, deadline, folder)
                    try:
                        live = os.stat(_LOCK_NAME, dir_fd=dfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # a delete() removed the folder while we waited
                    if live.st_ino == os.fstat(lock).st_ino:
                        yield dfd
                        return
                finally:
                    os.close(lock)
            finally:
                os.close(dfd)

    def _sweep_and_last(self, dfd: int) -> int:
        """Remove temp files of crashed writers (we hold the lock: no writer is alive);
        return the newest version number (0 if none)."""
        last = 0
        with os.scandir(dfd) as it:
            for entry in it:
                match = _VERSION_RE.match(entry.name)
                if match:
                    last = max(last, int(match.group(1)))
                elif entry.name.startswith(_TMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=dfd)
                    log.info("removed %s, left by an interrupted save", entry.name)
        return last

    def _read_info(self, path: Path, version: int, name: str | None) -> CheckpointInfo | None:
        try:
            with _open(path) as f:
                return _parse_info(f, path, version, name, self._header_mac)[0]
        except FileNotFoundError:
            return None
        except IntegrityError as exc:
            if name is None:
                log.warning("skipping unreadable checkpoint file %s: %s", path, exc)
                return None
            try:
                found = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                return None
            return CheckpointInfo(name, version, found.st_mtime, found.st_size, "", None, False,
                                  path, complete=False)

    def _read_state(self, path: Path, version: int, name: str) -> tuple[Any, CheckpointInfo]:
        with _open(path) as f:
            info, start, payload, nonce = _parse_info(f, path, version, name, self._header_mac)
            if not info.complete:
                raise IntegrityError(f"file is truncated or padded ({info.bytes} bytes, its "
                                     f"header says {start + payload})")
            window = cast(BinaryIO, _Window(f, start))
            state = self._codec.read(window, context=_context(name, nonce),
                                     size=info.bytes - start)
        return state, info


class PendingSave:
    """A checkpoint encoded by :meth:`Checkpoints.begin_save`, not yet written.

    :meth:`commit` takes the next version number under the name's lock and
    writes it (temp file, fsync, rename, fsync of the folder); it may run in
    any thread, once.
    """

    def __init__(self, store: Checkpoints, name: str, description: str | None, compress: bool,
                 meta: dict[str, Any], nonce: str, encoded: Encoded) -> None:
        self._store = store
        self.name = name
        self.time = time.time()
        self._description = description
        self._compress = compress
        self._meta = meta
        self._nonce = nonce
        self._encoded: Encoded | None = encoded

    def commit(self) -> CheckpointInfo:
        encoded, self._encoded = self._encoded, None
        if encoded is None:
            raise CheckpointError(f"this save of {self.name!r} was already committed")
        store, name = self._store, self.name
        store._check_open()
        folder = store.root / _folder_name(name)
        with store._locked(folder) as dfd:
            assert dfd is not None  # created if missing
            version = store._sweep_and_last(dfd) + 1
            filename = _version_file(version)
            info = CheckpointInfo(name, version, self.time, 0, encoded.signed_header()[-32:].hex(),
                                  self._description, self._compress, folder / filename, True,
                                  self._meta)
            header = store._header({
                "name": name, "version": version, "time": self.time, "nonce": self._nonce,
                "description": self._description, "compressed": self._compress,
                "payload": encoded.nbytes, "checksum": info.checksum, "pid": os.getpid(),
                "meta": self._meta,
            })

            def write(f: BinaryIO) -> None:
                f.write(header)
                encoded.write_to(f)

            try:
                _write_durably(dfd, filename, str(version), write)
            except OSError as exc:
                raise CheckpointError(_write_failed(name, version, folder, exc)) from exc
        log.info("checkpoint %r: saved version %d (%d bytes)", name, version,
                 len(header) + encoded.nbytes)
        return dataclasses.replace(info, bytes=len(header) + encoded.nbytes)

    def __repr__(self) -> str:
        state = "pending" if self._encoded is not None else "committed"
        return f"<PendingSave {self.name!r} {state}>"


# -- file format ------------------------------------------------------------------------


class _Window:
    """The file from ``start`` on, seen by the codec as if it began at offset 0."""

    def __init__(self, f: BinaryIO, start: int) -> None:
        self._f, self._start = f, start
        f.seek(start)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def readinto(self, buf: Any) -> int:
        return self._f.readinto(buf)  # type: ignore[attr-defined]

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise ValueError("only absolute seeks")
        return self._f.seek(self._start + pos) - self._start


def _open(path: Path) -> BinaryIO:
    # O_NOFOLLOW: a version file replaced by a symlink is never followed out of the home.
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"{path} is a symlink; checkpoint files never are") from exc
        raise
    return os.fdopen(fd, "rb")  # buffered: readinto loops until a segment is complete


def _to_json(meta: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(meta, ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"checkpoint meta must be JSON-serializable: {exc}") from exc
    if len(text) > MAX_HEADER - HEADER_ALIGN:
        raise CheckpointError(f"checkpoint description and meta take {len(text):,} bytes; keep "
                              f"them under {MAX_HEADER // 1024} KiB (store big data in the state)")
    return text


def _parse_info(f: BinaryIO, path: Path, version: int, name: str | None,
                mac: Callable[[bytes], bytes]) -> tuple[CheckpointInfo, int, int, str]:
    """The info in the header of the open file ``f``, the header size, the payload
    size and the nonce; raises :class:`IntegrityError` for a header that does not check."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(4096)
    if len(head) < _HEAD.size:
        raise IntegrityError("file is truncated (no header)")
    magic, total, length, signature = _HEAD.unpack_from(head)
    if magic != MAGIC:
        raise IntegrityError("not a jupyter_resman checkpoint (bad magic)")
    if not _HEAD.size + length <= total <= MAX_HEADER:
        raise IntegrityError("checkpoint header is corrupted")
    if len(head) < total:
        head += f.read(total - len(head))
        if len(head) < total:
            raise IntegrityError("file is truncated (header)")
    text = head[_HEAD.size:_HEAD.size + length]
    if not hmac.compare_digest(mac(text), signature):
        raise IntegrityError("checkpoint header failed its signature check (corrupted, edited "
                             "or written with another home's key)", security=True)
    try:
        meta = json.loads(text)
        payload = int(meta["payload"])
        info = CheckpointInfo(
            name=str(meta["name"]), version=int(meta["version"]), time=float(meta["time"]),
            bytes=size, checksum=str(meta["checksum"]), description=meta["description"],
            compressed=bool(meta["compressed"]), path=path,
            complete=size == total + payload, meta=meta.get("meta") or {},
        )
        nonce = str(meta["nonce"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"checkpoint header is corrupted ({exc})") from exc
    if info.version != version or (name is not None and info.name != name):
        # Signed but misplaced: a valid file copied under another name or version.
        wanted = f"version {version}" + ("" if name is None else f" of {name!r}")
        raise IntegrityError(f"file holds version {info.version} of {info.name!r}, not {wanted} "
                             "(moved or copied?)")
    return info, total, payload, nonce


def _scan(folder: Path | int) -> list[tuple[int, str]]:
    """``(version, filename)`` of the version files in ``folder`` (a path or an fd), oldest
    first."""
    try:
        with os.scandir(folder) as it:  # type: ignore[type-var]
            found = [(int(m.group(1)), e.name) for e in it if (m := _VERSION_RE.match(e.name))]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


def _version_file(version: int) -> str:
    return f"v{version:08d}.ckpt"


def _context(name: str, nonce: str) -> bytes:
    return b"checkpoint\0" + name.encode("utf-8") + b"\0" + nonce.encode()


def _part_context(name: str, part: str) -> bytes:
    return b"checkpoint-part\0" + name.encode("utf-8") + b"\0" + part.encode()


def _check_part(part: object) -> None:
    if not isinstance(part, str) or not _PART_RE.match(part):
        raise CheckpointNameError(f"{part!r} is not a part name: use 1 to 100 letters, digits, "
                                  "'_' or '-'")


def _folder_name(name: str) -> str:
    """A safe folder name for any valid checkpoint name: a slug for humans plus a hash.

    Dots become ``_`` too, so ``..`` or a hidden name can never come out;
    the hash keeps names apart that differ only by case or by punctuation.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48] or "_"
    return f"{slug}-{hashlib.blake2b(name.encode('utf-8'), digest_size=8).hexdigest()}"


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise CheckpointNameError(f"a checkpoint name must be a str, not {type(name).__name__}")
    if not name.strip():
        raise CheckpointNameError("a checkpoint name cannot be empty; use e.g. 'training'")
    if len(name) > NAME_MAX:
        raise CheckpointNameError(f"checkpoint name is {len(name)} characters long; use at most "
                                  f"{NAME_MAX}")
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise CheckpointNameError(f"checkpoint name {name!r} contains the control character "
                                  f"{bad!r}; use printable characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointNameError(f"checkpoint name {name!r} is not valid text ({exc})") from exc


def _check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointNotFoundError(f"{version!r} is not a checkpoint version (versions are "
                                      "integers from 1)")
    return version


def _flock(fd: int, deadline: float, folder: Path) -> None:
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LockTimeout(f"another process has been saving or deleting the checkpoints "
                                  f"in {folder} for over {LOCK_TIMEOUT_S:g}s; retry later or "
                                  "stop that process") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _write_durably(dfd: int, filename: str, tag: str, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``filename`` in the folder ``dfd`` all or nothing: a temp file, flushed and
    fsync'd, renamed over it, the folder fsync'd. On any error (KeyboardInterrupt too)
    the temp file is removed and the error raised; ``filename`` is untouched then."""
    tmp = f"{_TMP_PREFIX}{tag}-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename, src_dir_fd=dfd, dst_dir_fd=dfd)
        _fsync_dir(dfd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        raise


def _fsync_dir(dfd: int) -> None:
    """Make the rename durable: without this a power cut can forget the new name."""
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems without dir fsync
            raise


def _open_folder(folder: Path, *, create: bool) -> int | None:
    """An fd of ``folder``, never through a symlink; created (0700) if missing and asked.

    Returns None for a missing folder when ``create`` is False; raises
    :class:`InsecureHomeError` for a symlink or a folder of another user.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
    while True:
        try:
            dfd = os.open(folder, flags)
            break
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileNotFoundError):  # created, then deleted at once
                ensure_private_dir(folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                reject_symlink(folder)  # raises for a symlink
            raise
    try:
        info = os.fstat(dfd)
        check_owner(folder, info)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(dfd, 0o700)
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _write_failed(name: str, version: int, folder: Path, exc: OSError) -> str:
    before = f"version {version - 1} and older are intact" if version > 1 else "nothing was stored"
    if is_disk_full(exc):
        return (f"could not save checkpoint {name!r}: the disk (or a file-size limit) is full "
                f"({exc}); {before}. Free space in {folder.parent}, or prune old checkpoints "
                "(`resman checkpoints clear NAME`).")
    return f"could not save checkpoint {name!r} in {folder}: {exc}; {before}."


def _warn_skipped(name: str, version: int, path: Path, exc: IntegrityError) -> None:
    if exc.security:
        warnings.warn(f"checkpoint {name!r} version {version} ({path}) failed its signature check "
                      "(tampered, planted or from another home); it was never unpickled and an "
                      "older version is used", SecurityWarning, stacklevel=4)
    else:
        warnings.warn(f"checkpoint {name!r} version {version} ({path}) is damaged ({exc}); an "
                      "older version is used", CheckpointWarning, stacklevel=4)


def _ranges(versions: list[int]) -> str:
    return ", ".join(str(v) for v in sorted(versions)) or "none"
