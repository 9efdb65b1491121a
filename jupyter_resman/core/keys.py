"""Canonical cache keys: one byte string per distinct key, never a silent collision.

Python's ``==`` makes ``1``, ``1.0`` and ``True`` the same dict key; a cache
shared across processes must not conflate them. Keys are encoded with a type
tag, so:

>>> encode_key(1) != encode_key(1.0) != encode_key(True)
True
>>> encode_key((1, "a")) == encode_key((1, "a"))
True

Accepted key types: ``str``, ``bytes``, ``int``, ``float``, ``bool``,
``None`` and tuples of those (nested). numpy scalars are keyed like the Python
scalar they convert to (``np.int64(3)`` is the key ``3``). Anything else —
lists, dicts, arbitrary objects — raises :class:`CacheKeyError`: use a tuple,
or ``resman.fingerprint(obj)`` to key by content.

Namespaces are short names (letters, digits, ``_ . -``, up to 64 characters,
not starting with a dot): they appear in the index, never in a file path.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np

from .errors import CacheKeyError

__all__ = ["DEFAULT_NAMESPACE", "check_namespace", "decode_key", "encode_key"]

DEFAULT_NAMESPACE = "default"
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_LEN = struct.Struct("<I")


def check_namespace(namespace: str | None) -> str:
    """Return a valid namespace name (``None`` → ``"default"``) or raise ``CacheKeyError``."""
    if namespace is None:
        return DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
        raise CacheKeyError(
            f"invalid namespace {namespace!r}: use up to 64 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-' (e.g. 'embeddings' or 'exp-1.v2')"
        )
    return namespace


def encode_key(key: Any) -> bytes:
    """The canonical bytes of ``key`` (see the module docstring for the rules)."""
    kind = type(key)
    if kind is str:
        return b"s" + key.encode("utf-8", "surrogatepass")
    if kind is bytes:
        return b"b" + key
    if kind is bool:
        return b"T" if key else b"F"
    if kind is int:
        return b"i" + str(key).encode()
    if kind is float:
        return b"f" + repr(key).encode()
    if key is None:
        return b"n"
    if kind is tuple:
        parts = [encode_key(item) for item in key]
        return b"(" + b"".join(_LEN.pack(len(p)) + p for p in parts)
    if isinstance(key, np.generic) and not isinstance(key, (np.object_, np.void)):
        return encode_key(key.item())
    if isinstance(key, (str, bytes, int, float, tuple)):
        # A subclass (e.g. an IntEnum or a namedtuple): key it by its plain value.
        base = next(t for t in (bool, int, float, str, bytes, tuple) if isinstance(key, t))
        return encode_key(base(key))
    raise CacheKeyError(
        f"a cache key must be str, bytes, int, float, bool, None or a tuple of those, not "
        f"{kind.__name__}; use a tuple instead of a list, or resman.fingerprint(obj) to key "
        "by content"
    )


def decode_key(data: bytes) -> Any:
    """Inverse of :func:`encode_key` (for listings and iteration)."""
    key, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes in encoded key")
    return key


def _decode(data: bytes, pos: int, end: int | None = None) -> tuple[Any, int]:
    end = len(data) if end is None else end
    tag, body = data[pos:pos + 1], data[pos + 1:end]
    if tag == b"s":
        return body.decode("utf-8", "surrogatepass"), end
    if tag == b"b":
        return bytes(body), end
    if tag == b"T":
        return True, pos + 1
    if tag == b"F":
        return False, pos + 1
    if tag == b"i":
        return int(body), end
    if tag == b"f":
        return float(body), end
    if tag == b"n":
        return None, pos + 1
    if tag == b"(":
        items, p = [], pos + 1
        while p < end:
            (n,) = _LEN.unpack_from(data, p)
            p += _LEN.size
            item, _ = _decode(data, p, p + n)
            items.append(item)
            p += n
        return tuple(items), end
    raise ValueError(f"unknown key tag {tag!r}")
