"""Fingerprints: a short, stable digest of any object's *content*.

Stable means the same content gives the same fingerprint in another process,
another run, another day: no ``id()``, no ``hash()`` (randomised per process
for strings), no dict or set ordering. Fast means numpy arrays and pandas
objects are hashed straight from their buffers with xxh3-128 (about 30 GB/s
here) instead of being pickled.

>>> import numpy as np
>>> fingerprint(np.arange(3)) == fingerprint(np.arange(3))
True
>>> fingerprint(np.arange(3)) == fingerprint(np.arange(3.0))   # dtype counts
False
>>> fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
True
>>> len(fingerprint("x"))
32

Rules, in order:

* ``None``, bools, ints, floats, complex, str, bytes: by type and value
  (``1``, ``1.0`` and ``True`` differ);
* numpy arrays: dtype, shape and the bytes in C order (views and Fortran
  arrays hash like their contiguous copy); object arrays element by element;
* pandas Series/DataFrame/Index: dtypes, names, the index and each column's
  values from their buffers;
* tuples and lists: in order; dicts: as a set of (key, value) pairs; sets and
  frozensets: order-free;
* functions, lambdas and classes defined in ``__main__`` (a notebook): their
  source (or, when unavailable, their code object), defaults and closure, so
  editing a helper changes the fingerprint; functions and classes of
  importable modules: by qualified name (and the module's ``__version__``);
* anything else: pickled, with every nested array, frame, dict and set
  inside it replaced by its fingerprint so the result stays stable.
"""

from __future__ import annotations

import inspect
import io
import pickle
import struct
import sys
import types
from typing import Any

import numpy as np
import xxhash

from .errors import FingerprintError

__all__ = ["fingerprint", "fingerprint_bytes"]

_pd: Any = None


def _pandas() -> Any:
    # pandas is heavy to import; only objects that are already pandas objects need it,
    # and those exist only if pandas was imported by the caller.
    global _pd
    if _pd is None and "pandas" in sys.modules:
        import pandas

        _pd = pandas
    return _pd


def fingerprint(obj: Any) -> str:
    """A 32-character hex digest of ``obj``'s content (see the module docstring)."""
    return fingerprint_bytes(obj).hex()


def fingerprint_bytes(obj: Any) -> bytes:
    """The 16-byte digest behind :func:`fingerprint`."""
    h = xxhash.xxh3_128()
    _feed(h, obj, set())
    return h.digest()


def _digest(obj: Any, active: set[int]) -> bytes:
    h = xxhash.xxh3_128()
    _feed(h, obj, active)
    return h.digest()


_SCALAR_TAGS = {type(None): b"N", bool: b"?", int: b"i", float: b"f", complex: b"c", str: b"s",
                bytes: b"b"}
_U64 = struct.Struct("<Q")


def _feed(h: Any, obj: Any, active: set[int]) -> None:  # noqa: C901 - one dispatch table
    kind = type(obj)
    tag = _SCALAR_TAGS.get(kind)
    if tag is not None:
        if kind is str:
            data = obj.encode("utf-8", "surrogatepass")
        elif kind is bytes:
            data = obj
        else:
            data = repr(obj).encode()
        h.update(tag + _U64.pack(len(data)))
        h.update(data)
        return
    if kind is np.ndarray:
        _feed_array(h, obj, active)
        return
    if isinstance(obj, np.generic):
        h.update(b"g" + obj.dtype.str.encode())
        h.update(obj.tobytes() if not obj.dtype.hasobject else _digest(obj.item(), active))
        return
    pd = _pandas()
    if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        _feed_pandas(h, obj, pd, active)
        return
    if id(obj) in active:
        # A container that contains itself: a stable marker instead of infinite recursion.
        h.update(b"@cycle")
        return
    if kind in (tuple, list):
        active.add(id(obj))
        h.update((b"(" if kind is tuple else b"[") + _U64.pack(len(obj)))
        for item in obj:
            _feed(h, item, active)
        active.discard(id(obj))
        return
    if kind in (dict, set, frozenset):
        active.add(id(obj))
        if kind is dict:
            items = sorted(_digest(k, active) + _digest(v, active) for k, v in obj.items())
        else:
            items = sorted(_digest(item, active) for item in obj)
        active.discard(id(obj))
        h.update({dict: b"{", set: b"<", frozenset: b"F"}[kind] + _U64.pack(len(items)))
        for item in items:
            h.update(item)
        return
    if isinstance(obj, (types.FunctionType, type)) and _is_user_defined(obj):
        _feed_code_object(h, obj, active)
        return
    if kind is types.ModuleType:
        # A module stands for its name and version, not its contents.
        _feed(h, ("module", obj.__name__, str(getattr(obj, "__version__", ""))), active)
        return
    _feed_pickle(h, obj, active)


def _feed_array(h: Any, arr: np.ndarray, active: set[int]) -> None:
    h.update(b"A" + repr((arr.dtype.str, arr.dtype.descr if arr.dtype.fields else None,
                          arr.shape)).encode())
    if arr.dtype.hasobject:
        items = arr.reshape(-1).tolist()
        if all(type(item) is str for item in items):
            # Fast path for text columns: lengths then the joined UTF-8, unambiguous.
            h.update(b"S" + np.array([len(s) for s in items], dtype="<i8").tobytes())
            h.update("".join(items).encode("utf-8", "surrogatepass"))
            return
        for item in items:
            _feed(h, item, active)
        return
    if arr.size == 0:
        return
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    h.update(memoryview(arr.reshape(-1)).cast("B"))


def _feed_pandas(h: Any, obj: Any, pd: Any, active: set[int]) -> None:
    if isinstance(obj, pd.Index):
        h.update(b"PI" + type(obj).__name__.encode())
        _feed(h, [str(obj.dtype), list(obj.names)], active)
        _feed_values(h, obj, active)
        return
    if isinstance(obj, pd.Series):
        h.update(b"PS")
        _feed(h, [str(obj.dtype), obj.name], active)
        _feed_pandas(h, obj.index, pd, active)
        _feed_values(h, obj, active)
        return
    h.update(b"PD" + _U64.pack(obj.shape[1]))
    _feed_pandas(h, obj.index, pd, active)
    _feed_pandas(h, obj.columns, pd, active)
    for i in range(obj.shape[1]):
        column = obj.iloc[:, i]
        _feed(h, str(column.dtype), active)
        _feed_values(h, column, active)
    # attrs are metadata users rely on (e.g. units); include them when set.
    if getattr(obj, "attrs", None):
        _feed(h, dict(obj.attrs), active)


def _feed_values(h: Any, obj: Any, active: set[int]) -> None:
    if not _is_extension(obj):
        arr = obj.to_numpy(copy=False)  # a view of the column's buffer, no copy
        if not arr.dtype.hasobject:
            _feed_array(h, arr, active)
            return
    # Extension dtypes (strings, categoricals, nullable ints, tz-aware times) and
    # object columns: as Python objects, missing values as None.
    _feed_array(h, np.asarray(obj.to_numpy(dtype=object, na_value=None), dtype=object), active)


def _is_extension(obj: Any) -> bool:
    dtype = getattr(obj, "dtype", None)
    return dtype is not None and not isinstance(dtype, np.dtype)


def _is_user_defined(obj: Any) -> bool:
    """Functions and classes of ``__main__`` (a script or notebook), where edits matter,
    and local ones (``<locals>``, lambdas) that cannot be found again by name."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    return (module in (None, "__main__") or module not in sys.modules or "<" in qualname)


def _feed_code_object(h: Any, obj: Any, active: set[int]) -> None:
    h.update(b"code" + getattr(obj, "__qualname__", "").encode())
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        source = None
    if source is not None:
        _feed(h, source, active)
    elif isinstance(obj, types.FunctionType):
        _feed_bytecode(h, obj.__code__, active)
    else:
        # A class without source: its own attributes (methods by their code).
        members = {k: v for k, v in vars(obj).items() if not k.startswith("__") or k == "__init__"}
        _feed(h, sorted(members), active)
        for name in sorted(members):
            value = members[name]
            if isinstance(value, types.FunctionType):
                _feed_bytecode(h, value.__code__, active)
    if isinstance(obj, types.FunctionType):
        _feed(h, obj.__defaults__, active)
        _feed(h, obj.__kwdefaults__, active)
        for cell in obj.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell (variable not yet assigned)
                content = None
            try:
                h.update(_digest(content, active))
            except FingerprintError:
                # A closure over a connection, a lock...: its type stands for it, so a
                # memoized function defined in a factory still gets a stable identity.
                _feed(h, f"{type(content).__module__}.{type(content).__qualname__}", active)


def _feed_bytecode(h: Any, code: types.CodeType, active: set[int]) -> None:
    h.update(code.co_code)
    _feed(h, list(code.co_names), active)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_bytecode(h, const, active)
        else:
            _feed(h, const, active)


class _StablePickler(pickle.Pickler):
    """Pickles an object graph, replacing unstable parts by their fingerprints.

    ``persistent_id`` is consulted for every object (``reducer_override`` is
    not, for plain dicts and sets), so nested sets/dicts get an order-free
    digest and nested arrays a buffer hash instead of a pickled copy.
    """

    def __init__(self, file: Any, active: set[int]) -> None:
        super().__init__(file, protocol=5)
        self._active = active
        self._root: Any = None

    def persistent_id(self, obj: Any) -> Any:
        if obj is self._root:
            return None
        kind = type(obj)
        if kind in (dict, set, frozenset, np.ndarray) or isinstance(obj, np.generic):
            return _digest(obj, self._active)
        if isinstance(obj, (types.FunctionType, type)) and _is_user_defined(obj):
            return _digest(obj, self._active)
        if kind is types.ModuleType:
            return _digest(obj, self._active)
        pd = _pandas()
        if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
            return _digest(obj, self._active)
        return None


def _feed_pickle(h: Any, obj: Any, active: set[int]) -> None:
    if id(obj) in active:
        h.update(b"@cycle")
        return
    active.add(id(obj))
    buf = io.BytesIO()
    pickler = _StablePickler(buf, active)
    pickler._root = obj
    try:
        pickler.dump(obj)
    except Exception as exc:
        raise FingerprintError(
            f"cannot fingerprint a {type(obj).__module__}.{type(obj).__qualname__}: it is not "
            f"picklable ({exc}); pass its data (e.g. an array or a dict of settings) instead"
        ) from exc
    finally:
        active.discard(id(obj))
    h.update(b"P")
    h.update(buf.getbuffer())


def function_identity(func: Any) -> str:
    """A digest of a function's *own* code: source (or bytecode), defaults, closure.

    Used by memoization: editing the function changes it, editing anything
    else in the same notebook cell or module does not.
    """
    h = xxhash.xxh3_128()
    h.update(f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}".encode())
    _feed_code_object(h, func, set())
    return h.hexdigest()
