"""The value codec: how any Python object becomes signed, checksummed bytes and back.

Two kinds of payload:

* **raw arrays** — a numpy array without Python objects is stored as its
  dtype, shape and raw buffer; reading it never unpickles anything, and the
  data segment is 64-byte aligned so the file can be memory-mapped;
* **pickles** — everything else, pickled with protocol 5 and *out-of-band
  buffers*, so the big buffers of numpy arrays and pandas frames are written
  and read as raw segments (no copy into one huge pickle stream).

Layout (all integers little-endian)::

    prefix   magic "RSMV", version u8, kind u8, flags u8, segments u8, meta length u32
    table    per segment: length u64, stored length u64, xxh3-128 (16 bytes)
    meta     kind-specific JSON (dtype/shape/order of a raw array), may be empty
    mac      MAC(key, context + prefix + table + meta + segment 0 when pickled), 32 bytes
    data     segments, each starting 64-byte aligned (files) or packed (inline blobs)

The MAC depends on how many bytes it signs, each with its own key derived
from the home's: keyed BLAKE2b (a MAC by design, RFC 7693) below 64 KiB of
in-band pickle, where it costs half of HMAC-SHA256 (the small values that
dominate a cache); HMAC-SHA256 above, where SHA extensions make it twice as
fast per byte. The length is inside the signed table, so it cannot be changed
to pick the other MAC. Values of format 1 (HMAC-SHA256 under the home key for
every size) are still read and checked; new values are always format 2.
Only bytes that will be unpickled can run code, so the MAC covers the whole
in-band pickle stream; big out-of-band buffers are checked with xxh3-128 (31
GB/s), which detects corruption, and whose checksums are themselves inside
the MAC'd table. ``context`` binds a blob to where it belongs (the cache
binds the key), so a valid value cannot be moved under another key.

>>> codec = Codec(b"k" * 32)
>>> blob = codec.dumps({"a": [1, 2, 3]}, context=b"key")
>>> codec.loads(blob, context=b"key")
{'a': [1, 2, 3]}
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import pickle
import struct
import sys
import threading
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import xxhash

from .errors import IntegrityError, SerializationError

__all__ = ["Codec", "Encoded", "IntegrityError", "FORMAT_VERSION", "plain_pickle"]

MAGIC = b"RSMV"
FORMAT_VERSION = 2  # 2: keyed BLAKE2b for small values (was HMAC-SHA256 for all)
#: Formats still read: 1 signed everything with HMAC-SHA256 under the home key itself.
READABLE_VERSIONS = (1, FORMAT_VERSION)
KIND_PICKLE = 1
KIND_RAW_ARRAY = 2
FLAG_COMPRESSED = 1
FLAG_ALIGNED = 2
ALIGN = 64
MAC_SIZE = 32
#: In-band bytes from which HMAC-SHA256 (faster per byte) signs instead of BLAKE2b.
SMALL_MAC_LIMIT = 64 * 1024

_PREFIX = struct.Struct("<4sBBBBI")
_SEGMENT = struct.Struct("<QQ16s")
_LEN = struct.Struct("<I")
_STORED = struct.Struct("<8xQ")  # just the stored length of a segment entry
_NO_CHECKSUM = bytes(16)
#: The prefix of a packed, uncompressed, single-segment pickle: the common small value.
_SIMPLE_PREFIX = _PREFIX.pack(MAGIC, FORMAT_VERSION, KIND_PICKLE, 0, 1, 0)
_SIMPLE_HEAD = _PREFIX.size + _SEGMENT.size
_SIMPLE_DATA = _SIMPLE_HEAD + MAC_SIZE


#: Chunk of a large segment hashed and then written (or read and then hashed) while it is
#: still in the CPU cache: one pass over memory instead of two.
_CHUNK = 4 * 1024 * 1024


@dataclass
class Encoded:
    """A value ready to write: its data segments and how to sign them.

    Checksums of out-of-band segments are computed while writing
    (:meth:`write_to`, one pass over the data) or all at once
    (:meth:`to_bytes`); the signed header is made from them at the end.
    """

    segments: list[memoryview]  # stored form (compressed when FLAG_COMPRESSED)
    lengths: list[int]  # original lengths
    kind: int
    flags: int
    meta: bytes
    aligned: bool
    sign: Any  # (head, inband) -> mac
    header: bytes | None = None  # known up front for the simple single-segment value

    @property
    def header_size(self) -> int:
        return _PREFIX.size + len(self.segments) * _SEGMENT.size + len(self.meta) + MAC_SIZE

    @property
    def nbytes(self) -> int:
        """Total size once written (header, padding and segments)."""
        return self.layout()[-1]

    def layout(self) -> list[int]:
        """Offsets of each segment, then the end offset."""
        offsets, pos = [], self.header_size
        for seg in self.segments:
            if self.aligned:
                pos = _align(pos)
            offsets.append(pos)
            pos += seg.nbytes
        offsets.append(pos)
        return offsets

    def _make_header(self, checksums: list[bytes]) -> bytes:
        table = b"".join(_SEGMENT.pack(n, seg.nbytes, c)
                         for n, seg, c in zip(self.lengths, self.segments, checksums))
        head = (_PREFIX.pack(MAGIC, FORMAT_VERSION, self.kind, self.flags, len(self.segments),
                             len(self.meta)) + table + self.meta)
        return head + self.sign(head, self.segments[0] if self.kind == KIND_PICKLE else None)

    def signed_header(self) -> bytes:
        """The header with checksums and signature (computed now if not yet known)."""
        if self.header is None:
            self.header = self._make_header([self._checksum(i, seg)
                                             for i, seg in enumerate(self.segments)])
        return self.header

    def _checksum(self, index: int, seg: memoryview) -> bytes:
        # The in-band stream is covered by the MAC itself; checksum the rest.
        if self.kind == KIND_PICKLE and index == 0:
            return _NO_CHECKSUM
        return xxhash.xxh3_128_digest(seg)

    def to_bytes(self) -> bytes:
        header = self.signed_header()
        if len(self.segments) == 1 and not self.aligned:
            return header + bytes(self.segments[0])
        out = bytearray(header)
        for offset, seg in zip(self.layout(), self.segments):
            out += bytes(offset - len(out))
            out += seg
        return bytes(out)

    def write_to(self, f: BinaryIO) -> int:
        """Write to a seekable file at its current position; returns bytes written.

        Large segments are hashed chunk by chunk just before each chunk is
        written; the header, which holds the checksums and the signature, is
        written last in the space kept for it.
        """
        if self.header is not None:
            return self._write_plain(f, self.header)
        base = f.tell()  # a checkpoint writes its own header first
        pos = f.write(bytes(self.header_size))
        checksums = []
        for index, (offset, seg) in enumerate(zip(self.layout(), self.segments)):
            if offset > pos:
                pos += f.write(bytes(offset - pos))
            if self.kind == KIND_PICKLE and index == 0:
                checksums.append(_NO_CHECKSUM)
                pos += f.write(seg)
                continue
            h = xxhash.xxh3_128()
            flat = seg.cast("B") if seg.format != "B" or seg.ndim != 1 else seg
            for start in range(0, flat.nbytes, _CHUNK):
                chunk = flat[start:start + _CHUNK]
                h.update(chunk)
                pos += f.write(chunk)
            checksums.append(h.digest())
        self.header = self._make_header(checksums)
        f.seek(base)
        f.write(self.header)
        f.seek(base + pos)
        return pos

    def _write_plain(self, f: BinaryIO, header: bytes) -> int:
        pos = f.write(header)
        for offset, seg in zip(self.layout(), self.segments):
            if offset > pos:
                pos += f.write(bytes(offset - pos))
            pos += f.write(seg)
        return pos


#: From this many bytes on, a value's chunks are hashed on a helper thread while the
#: next ones are read (xxhash releases the GIL): the check then costs next to nothing.
_PARALLEL_HASH_BYTES = 2 * 1024 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _hasher_thread() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(1, thread_name_prefix="resman-hash")
        return _hash_pool


def _forget_hasher_in_child() -> None:
    # A forked child has no copy of the thread: a new pool is made on first use.
    global _hash_pool, _hash_pool_lock
    _hash_pool, _hash_pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_hasher_in_child)


def _read_hashed(f: BinaryIO, plan: Sequence[tuple[int, memoryview]]) -> list[bytes]:
    """Fill each ``(offset, buffer)`` of ``plan`` from ``f``; the xxh3-128 of each.

    Chunks are hashed while still in the CPU cache, on one helper thread for
    large values (in order: a single worker runs them first in, first out) so
    reading the next chunk overlaps hashing this one.
    """
    hashers = [xxhash.xxh3_128() for _ in plan]
    total = sum(buf.nbytes for _, buf in plan)
    pool = _hasher_thread() if total >= _PARALLEL_HASH_BYTES else None
    pending = []
    try:
        for h, (offset, buf) in zip(hashers, plan):
            flat = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
            size = flat.nbytes
            f.seek(offset)
            pos = 0
            while pos < size:
                chunk = flat[pos:pos + _CHUNK]
                got = f.readinto(chunk)
                if not got:
                    raise IntegrityError(
                        f"value file is truncated (segment of {size} bytes, got {pos})")
                if pool is None:
                    h.update(chunk[:got])
                else:
                    pending.append(pool.submit(h.update, chunk[:got]))
                pos += got
    finally:
        # Even on an error: no hashing may still be reading these buffers afterwards.
        for future in pending:
            future.result()
    return [h.digest() for h in hashers]


def _view_as(array: np.ndarray, dtype: str) -> np.ndarray:
    """Unpickling helper: an int64 buffer back as the datetime64/timedelta64 it was."""
    return array.view(dtype)


class _BufferPickler(pickle.Pickler):
    """Protocol-5 pickler that keeps datetime64/timedelta64 arrays out of band too.

    numpy pickles arrays whose dtype carries metadata (the time unit) in-band,
    so a date column of a DataFrame would land in the signed stream: a MAC at
    ~1 GB/s instead of xxh3 at 30 GB/s. As int64 views they go out of band.
    """

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is np.ndarray and obj.dtype.kind in "mM"
                and (obj.flags.c_contiguous or obj.flags.f_contiguous)):
            return _view_as, (obj.view(np.int64), obj.dtype.str)
        return NotImplemented


def _pickled(obj: Any, pickler: Any, inband_only: bool) -> tuple[bytes, list[Any]]:
    """Pickle ``obj``, or raise :class:`SerializationError` naming what cannot be pickled."""
    try:
        inband, buffers = _dumps(obj, pickler, not inband_only)
        if len(buffers) >= 255:
            # The header counts segments in one byte: a value made of hundreds of
            # arrays goes in-band instead (still one pickle, just not zero-copy).
            inband, buffers = _dumps(obj, pickler, False)
    except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
        raise SerializationError(_unpicklable_message(obj, exc)) from exc
    return inband, buffers


def plain_pickle(obj: Any) -> bytes:
    """``obj`` as one protocol-5 pickle (no out-of-band buffers), unsigned.

    For bytes that go *inside* a signed value, such as a resumable loop's
    results; raises :class:`SerializationError` naming what cannot be pickled.
    """
    return _pickled(obj, None, True)[0]


def _dumps(obj: Any, pickler: Any, out_of_band: bool) -> tuple[bytes, list[Any]]:
    """The in-band stream and the out-of-band buffers of ``obj``."""
    buffers: list[Any] = []
    callback = buffers.append if out_of_band else None
    if pickler is not None:
        return pickler.dumps(obj, protocol=5, buffer_callback=callback), buffers
    if type(obj).__module__.split(".")[0] not in ("pandas", "numpy"):
        inband = pickle.dumps(obj, protocol=5, buffer_callback=callback)
        if len(inband) < (1 << 20) or not out_of_band or "numpy" not in sys.modules:
            return inband, buffers
        buffers = []  # a large stream may hide date arrays: pickle again, with the override
        callback = buffers.append
    # pandas/numpy values go through the pickler with the override (about 1 µs more
    # to set up, nothing per byte).
    out = io.BytesIO()
    _BufferPickler(out, protocol=5, buffer_callback=callback).dump(obj)
    return out.getvalue(), buffers


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Codec:
    """Signs and checks values with one secret key (see module docstring)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the codec needs a non-empty secret key")
        # One derived key per MAC, so the two never share key material.
        small_key = hashlib.blake2b(key, digest_size=64, person=b"resman-small").digest()
        large_key = hashlib.blake2b(key, digest_size=64, person=b"resman-large").digest()
        # Copying a keyed state skips hashing the key block again for every value.
        self._small_mac = hashlib.blake2b(key=small_key, digest_size=MAC_SIZE)
        large = hmac.new(large_key, digestmod="sha256")
        # CPython's wrapper keeps the OpenSSL HMAC state in ``_hmac``; copying that
        # directly is cheaper. Same bytes either way.
        self._large_mac = getattr(large, "_hmac", None) or large
        self._v1_mac = hmac.new(key, digestmod="sha256")  # format 1, read only

    def _mac_of(self, version: int, context: bytes, header: bytes,
                inband: bytes | memoryview | None) -> bytes:
        if version == FORMAT_VERSION:
            return self._mac(context, header, inband)
        h = self._v1_mac.copy()
        h.update(b"".join((_LEN.pack(len(context)), context, header)))
        if inband is not None:
            h.update(inband)
        return h.digest()

    def _mac(self, context: bytes, header: bytes, inband: bytes | memoryview | None) -> bytes:
        if inband is None or len(inband) < SMALL_MAC_LIMIT:
            h = self._small_mac.copy()
            # One update of small joined bytes costs less than four calls.
            h.update(b"".join((_LEN.pack(len(context)), context, header, inband or b"")))
        else:
            h = self._large_mac.copy()
            h.update(b"".join((_LEN.pack(len(context)), context, header)))
            h.update(inband)
        return h.digest()

    # -- encoding --------------------------------------------------------------

    def encode(
        self, obj: Any, *, context: bytes = b"", compress: bool = False, aligned: bool = True,
        inband_only: bool = False, pickler: Any = None,
    ) -> Encoded:
        """Turn ``obj`` into a signed header plus data segments.

        ``pickler`` is a module with pickle's ``dumps(obj, protocol, buffer_callback)``
        — e.g. ``cloudpickle`` for functions and classes defined in a notebook;
        its output is read back with plain :func:`pickle.loads`.

        Raises :class:`SerializationError` naming the type when ``obj`` (or
        something inside it) cannot be pickled; nothing has been written then.
        """
        if _is_raw_array(obj):
            return self._raw_array(obj, context, compress, aligned)
        inband, buffers = _pickled(obj, pickler, inband_only)
        return self._from_pickle(inband, buffers, context, compress, aligned)

    def encode_compact(self, obj: Any, *, context: bytes, limit: int,
                       pickler: Any = None) -> bytes | Encoded:
        """A small plain pickle as one packed blob (the cache's inline fast path);
        anything else as :meth:`encode` gives it (``aligned``, uncompressed)."""
        if _is_raw_array(obj):
            return self._raw_array(obj, context, False, True)
        inband, buffers = _pickled(obj, pickler, False)
        if not buffers and len(inband) + _SIMPLE_DATA <= limit:
            n = len(inband)
            head = _SIMPLE_PREFIX + _SEGMENT.pack(n, n, _NO_CHECKSUM)
            return head + self._mac(context, head, inband) + inband
        return self._from_pickle(inband, buffers, context, False, True)

    def _raw_array(self, obj: np.ndarray, context: bytes, compress: bool,
                   aligned: bool) -> Encoded:
        arr = obj if (obj.flags.c_contiguous or obj.flags.f_contiguous) else np.ascontiguousarray(obj)
        order = "C" if arr.flags.c_contiguous else "F"
        meta = json.dumps(
            {"dtype": _dtype_to_json(arr.dtype), "shape": list(arr.shape), "order": order}
        ).encode()
        raw = arr.reshape(-1, order="A").view(np.uint8) if arr.size else np.empty(0, np.uint8)
        return self._encoded(KIND_RAW_ARRAY, [memoryview(raw)], meta, context, compress, aligned)

    def _from_pickle(self, inband: bytes, buffers: list[Any], context: bytes, compress: bool,
                     aligned: bool) -> Encoded:
        segments = [memoryview(inband)]
        for buf in buffers:
            try:
                segments.append(buf.raw())
            except BufferError:  # a non-contiguous buffer: copy it once
                segments.append(memoryview(bytes(buf)))
        return self._encoded(KIND_PICKLE, segments, b"", context, compress, aligned)

    def _encoded(self, kind: int, segments: list[memoryview], meta: bytes, context: bytes,
                 compress: bool, aligned: bool) -> Encoded:
        def sign(head: bytes, inband: memoryview | None) -> bytes:
            return self._mac(context, head, inband)

        lengths = [seg.nbytes for seg in segments]
        if kind == KIND_PICKLE and len(segments) == 1 and not compress:
            # The common small value: no buffers to checksum, nothing to compress, and
            # nothing to memory-map, so always packed (one layout inline or in a file).
            enc = Encoded(segments, lengths, kind, 0, b"", False, sign)
            enc.header = enc._make_header([_NO_CHECKSUM])
            return enc
        flags = FLAG_ALIGNED if aligned else 0
        stored = segments
        if compress:
            flags |= FLAG_COMPRESSED
            stored = [memoryview(zlib.compress(seg, 1)) for seg in segments]
        return Encoded(list(stored), lengths, kind, flags, meta, aligned, sign)

    def dumps(self, obj: Any, *, context: bytes = b"", compress: bool = False) -> bytes:
        """One packed blob (for small values kept inline in an index)."""
        return self.encode(obj, context=context, compress=compress, aligned=False).to_bytes()

    # -- decoding --------------------------------------------------------------

    def loads(self, blob: bytes | memoryview, *, context: bytes = b"") -> Any:
        """Check and decode a blob made by :meth:`dumps` (or a whole file's bytes)."""
        if isinstance(blob, bytes) and blob[:_PREFIX.size] == _SIMPLE_PREFIX:
            return self.loads_at(blob, 0, context=context)
        view = memoryview(blob)
        header = _Header.parse(view)
        offsets = header.offsets()
        if offsets[-1] > len(view):
            raise IntegrityError(f"value is truncated ({len(view)} of {offsets[-1]} bytes)")
        segments = [view[o:o + s.stored] for o, s in zip(offsets, header.segments)]
        return self._finish(header, segments, context)

    def loads_at(self, blob: bytes, offset: int, *, context: bytes = b"") -> Any:
        """:meth:`loads` of ``blob[offset:]`` without copying or slicing it first."""
        if not blob.startswith(_SIMPLE_PREFIX, offset):
            return self.loads(memoryview(blob)[offset:], context=context)
        (stored,) = _STORED.unpack_from(blob, offset + _PREFIX.size)
        start = offset + _SIMPLE_DATA
        if len(blob) - start != stored:
            raise IntegrityError(f"value is truncated ({len(blob) - offset} of "
                                 f"{stored + _SIMPLE_DATA} bytes)")
        if stored >= SMALL_MAC_LIMIT:  # signed with HMAC-SHA256: the general path
            return self.loads(memoryview(blob)[offset:], context=context)
        inband = blob[start:]
        h = self._small_mac.copy()
        h.update(b"".join((_LEN.pack(len(context)), context, blob[offset:offset + _SIMPLE_HEAD],
                           inband)))
        expected = h.digest()
        if not hmac.compare_digest(expected, blob[offset + _SIMPLE_HEAD:start]):
            raise IntegrityError("signature check failed: the value was not written by this "
                                 "home's key (tampered, planted or from another home)",
                                 security=True)
        try:
            return pickle.loads(inband)
        except Exception as exc:
            raise IntegrityError(f"value could not be unpickled ({type(exc).__name__}: {exc}); "
                                 "it was probably written by a different version of a library",
                                 stale=True) from exc

    def read(self, f: BinaryIO, *, context: bytes = b"", size: int | None = None) -> Any:
        """Check and decode a value from a file positioned at 0, reading each segment once."""
        first = f.read(4096)
        header = _Header.parse(memoryview(first), more=lambda n: first + f.read(n - len(first)))
        offsets = header.offsets()
        if size is not None and offsets[-1] > size:
            raise IntegrityError(f"value file is truncated ({size} of {offsets[-1]} bytes)")
        targets: list[Any] = []
        plan: list[tuple[int, memoryview]] = []
        for offset, seg in zip(offsets, header.segments):
            if header.kind == KIND_RAW_ARRAY and not header.compressed:
                target = header.empty_array()
                buf = memoryview(target.reshape(-1, order="A").view(np.uint8)) if target.size else memoryview(bytearray())
            else:
                # np.empty, not bytearray: no zero-filling of memory we overwrite at once
                # (that alone doubled the time to read a large value).
                target = buf = memoryview(np.empty(seg.stored, dtype=np.uint8))
            targets.append(target)
            plan.append((offset, buf))
        digests = _read_hashed(f, plan)
        return self._finish(header, [b for _, b in plan], context, arrays=targets,
                            digests=digests)

    def _finish(self, header: _Header, stored: Sequence[memoryview], context: bytes,
                arrays: Sequence[Any] | None = None,
                digests: Sequence[bytes] | None = None) -> Any:
        inband = stored[0] if header.kind == KIND_PICKLE else None
        expected = self._mac_of(header.version, context, header.raw, inband)
        if not hmac.compare_digest(expected, header.mac):
            raise IntegrityError("signature check failed: the value was not written by this "
                                 "home's key (tampered, planted or from another home)",
                                 security=True)
        for i, (seg, data) in enumerate(zip(header.segments, stored)):
            if header.kind == KIND_PICKLE and i == 0:
                continue
            digest = digests[i] if digests is not None else xxhash.xxh3_128_digest(data)
            if digest != seg.checksum:
                raise IntegrityError(f"checksum mismatch in segment {i}: the value is corrupted")
        if header.compressed:
            data = []
            for seg, raw in zip(header.segments, stored):
                try:
                    out = zlib.decompress(raw)
                except zlib.error as exc:
                    raise IntegrityError(f"compressed segment is corrupted: {exc}") from exc
                if len(out) != seg.length:
                    raise IntegrityError("decompressed segment has the wrong length")
                data.append(memoryview(out))
            stored = data
            arrays = None
        if header.kind == KIND_RAW_ARRAY:
            if arrays is not None:
                return arrays[0]
            arr = header.empty_array()
            if arr.size:
                arr.reshape(-1, order="A").view(np.uint8)[:] = np.frombuffer(stored[0], np.uint8)
            return arr
        buffers = stored[1:]
        if buffers and arrays is None:
            # Views of an immutable blob would give read-only arrays; a value read back
            # must behave like the one stored, so copy them (they are small when inline).
            buffers = [bytearray(b) if b.readonly else b for b in buffers]
        try:
            return pickle.loads(stored[0], buffers=buffers)
        except Exception as exc:
            raise IntegrityError(f"value could not be unpickled ({type(exc).__name__}: {exc}); "
                                 "it was probably written by a different version of a library",
                                 stale=True) from exc


@dataclass
class _SegmentInfo:
    length: int
    stored: int
    checksum: bytes


@dataclass
class _Header:
    kind: int
    flags: int
    segments: list[_SegmentInfo]
    meta: dict[str, Any]
    raw: bytes  # prefix + table + meta, the signed part
    mac: bytes
    version: int = FORMAT_VERSION

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    @classmethod
    def parse(cls, view: memoryview, more: Any = None) -> _Header:
        if len(view) < _PREFIX.size:
            raise IntegrityError("value is truncated (no header)")
        magic, version, kind, flags, nseg, meta_len = _PREFIX.unpack_from(view)
        if magic != MAGIC:
            raise IntegrityError("not a jupyter_resman value (bad magic)")
        if version not in READABLE_VERSIONS:
            raise IntegrityError(f"value has format {version}, expected one of "
                                 f"{READABLE_VERSIONS}", stale=True)
        if kind not in (KIND_PICKLE, KIND_RAW_ARRAY) or nseg == 0:
            raise IntegrityError("value header is corrupted")
        end = _PREFIX.size + nseg * _SEGMENT.size + meta_len + MAC_SIZE
        if len(view) < end:
            if more is None:
                raise IntegrityError("value is truncated (header)")
            view = memoryview(more(end))
            if len(view) < end:
                raise IntegrityError("value is truncated (header)")
        segs = [
            _SegmentInfo(*_SEGMENT.unpack_from(view, _PREFIX.size + i * _SEGMENT.size))
            for i in range(nseg)
        ]
        meta_start = _PREFIX.size + nseg * _SEGMENT.size
        meta_raw = bytes(view[meta_start:meta_start + meta_len])
        try:
            meta = json.loads(meta_raw) if meta_raw else {}
        except ValueError as exc:
            raise IntegrityError("value metadata is corrupted") from exc
        raw = bytes(view[:meta_start + meta_len])
        mac = bytes(view[meta_start + meta_len:end])
        return cls(kind, flags, segs, meta, raw, mac, version)

    def offsets(self) -> list[int]:
        pos = len(self.raw) + MAC_SIZE
        out = []
        for seg in self.segments:
            if self.flags & FLAG_ALIGNED:
                pos = _align(pos)
            out.append(pos)
            pos += seg.stored
        out.append(pos)
        return out

    def empty_array(self) -> np.ndarray:
        try:
            dtype = _dtype_from_json(self.meta["dtype"])
            shape = tuple(int(n) for n in self.meta["shape"])
            order = self.meta.get("order", "C")
            arr = np.empty(shape, dtype=dtype, order=order)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"array metadata is corrupted: {exc}") from exc
        if arr.nbytes != self.segments[0].length:
            raise IntegrityError("array metadata does not match its data length")
        return arr


def _is_raw_array(obj: Any) -> bool:
    # Exact ndarray only: subclasses (np.matrix, masked arrays, memmaps) keep their
    # type through pickle, which still stores their buffers out of band.
    return type(obj) is np.ndarray and not obj.dtype.hasobject


def _dtype_to_json(dtype: np.dtype) -> Any:
    return dtype.str if dtype.fields is None else dtype.descr


def _dtype_from_json(value: Any) -> np.dtype:
    if isinstance(value, str):
        return np.dtype(value)
    return np.dtype([tuple(field) if len(field) == 2 else (field[0], field[1], tuple(field[2]))
                     for field in value])


def _unpicklable_message(obj: Any, exc: BaseException) -> str:
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    where = _find_unpicklable(obj)
    inside = ""
    if where is not None:
        path, culprit = where
        inside = (f" — {path} is a {type(culprit).__module__}.{type(culprit).__qualname__}"
                  if path else "")
    return (
        f"cannot store a value of type {kind}: it is not picklable{inside} ({exc}). Store "
        "something picklable instead (e.g. the data the object holds), or convert it first."
    )


def _find_unpicklable(obj: Any, path: str = "", depth: int = 4) -> tuple[str, Any] | None:
    """The first part of ``obj`` (by container path) that pickle refuses, if easy to find."""
    try:
        pickle.dumps(obj, protocol=5, buffer_callback=lambda b: None)
        return None
    except Exception:  # any failure: look inside for the part that causes it
        pass
    if depth > 0:
        if isinstance(obj, dict):
            items: Any = ((f"{path}[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, (list, tuple)):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
        elif hasattr(obj, "__dict__") and isinstance(vars(obj), dict):
            items = ((f"{path}.{k}", v) for k, v in vars(obj).items())
        else:
            items = ()
        for sub_path, value in items:
            found = _find_unpicklable(value, sub_path, depth - 1)
            if found is not None:
                return found
    return path, obj


def write_file(encoded: Encoded, path: str | os.PathLike[str], *, fsync: bool = False) -> int:
    """Write ``encoded`` to a new file at ``path`` (which must not exist); returns size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    # A buffered writer loops until each segment is fully written (raw writes may be short).
    with os.fdopen(fd, "wb") as f:
        size = encoded.write_to(f)
        f.flush()
        if fsync:
            os.fsync(fd)
    return size
