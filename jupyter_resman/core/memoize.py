"""Memoization on top of the cache: ``@cache.memoize()`` and ``@resman.cached()``.

The key of a call is the function's qualified name, a digest of its *own*
source (so editing another function in the same notebook cell does not
invalidate it — joblib hashes the whole cell), and the fingerprint of its
arguments (numpy arrays and DataFrames hashed from their buffers):

>>> import tempfile, pathlib
>>> from jupyter_resman.core.cache import Cache
>>> cache = Cache(pathlib.Path(tempfile.mkdtemp()), secret_key=b"k" * 32)
>>> calls = []
>>> @cache.memoize()
... def square(x):
...     calls.append(x)
...     return x * x
>>> square(3), square(3), calls
(9, 9, [3])
>>> cache.close()

``f(1)`` and ``f(x=1)`` are different keys (binding arguments to the
signature on every call would cost more than a cache hit); both are correct,
the second is merely a miss the first time.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import CacheFullError, ResmanWarning, SerializationError, ValueTooLargeError
from .fingerprints import fingerprint_bytes, function_identity

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["memoize"]

F = TypeVar("F", bound=Callable[..., Any])
_MISSING = object()


def memoize(get_cache: Callable[[], Cache], *, ttl: float | str | None = None,
            tags: Iterable[str] = (), namespace: str | None = None,
            name: str | None = None) -> Callable[[F], F]:
    """Build the decorator; ``get_cache`` is called on every call (late binding)."""
    user_tags = [tags] if isinstance(tags, str) else list(tags)

    def decorator(func: F) -> F:
        qualname = name or f"{func.__module__}.{func.__qualname__}"
        tag_list = sorted({*user_tags, f"fn:{qualname}"})
        prefix: list[str] = []  # computed on first call: reading source is not free

        def key_of(args: tuple, kwargs: dict) -> str:
            if not prefix:
                prefix.append(f"{qualname}|{function_identity(func)[:16]}|")
            digest = fingerprint_bytes((args, kwargs) if kwargs else args).hex()
            return prefix[0] + digest

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cache = get_cache()
            if not cache.enabled:
                return func(*args, **kwargs)
            key = key_of(args, kwargs)
            value = cache.get(key, _MISSING, namespace=namespace)
            if value is not _MISSING:
                return value
            start = time.perf_counter()
            result = func(*args, **kwargs)
            elapsed = time.perf_counter() - start
            try:
                cache.set(key, result, ttl=ttl, tags=tag_list, namespace=namespace,
                          compute_time=elapsed)
            except (SerializationError, ValueTooLargeError, CacheFullError) as exc:
                # The caller asked for a result, not for caching: give it, say why it
                # was not kept.
                warnings.warn(f"{qualname}: result not cached: {exc}", ResmanWarning, stacklevel=2)
            return result

        def cache_clear() -> int:
            """Remove every cached result of this function; returns how many."""
            return get_cache().clear(namespace=namespace, tags=[f"fn:{qualname}"])

        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        wrapper.cache_key = lambda *a, **kw: key_of(a, kw)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
