"""The cache report and the clear request (validated field by field)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    CacheKeyError,
    ConfigError,
    RequestError,
)
from ..keys import check_namespace, encode_key
from ..settings import parse_duration

if TYPE_CHECKING:

    from ..session import Session

from ._common import _CLEAR_FIELDS, HISTORY_S, _since


def cache_report(session: Session, since: float | str | None = None, *,
                 now: float | None = None) -> dict[str, Any]:
    """Cache totals, per-namespace figures and the per-minute hit/miss history.

    ``since`` (epoch seconds) starts the history; the default is the last day.
    """
    now = time.time() if now is None else now
    after = _since(since, "since")
    cache = session.cache
    stats = cache.stats().to_dict()
    namespaces = stats.pop("namespaces")
    frame = cache.history(since=now - HISTORY_S if after is None else after)
    seconds = frame["time"].map(lambda ts: ts.timestamp()).tolist() if len(frame) else []
    history = [
        {"time": t, "namespace": ns, "hits": int(hits), "misses": int(misses), "sets": int(sets),
         "evictions": int(evictions), "time_saved_s": float(saved)}
        for t, ns, hits, misses, sets, evictions, saved in zip(
            seconds, frame["namespace"], frame["hits"], frame["misses"], frame["sets"],
            frame["evictions"], frame["time_saved_s"])
    ]
    return {
        "stats": stats,
        "namespaces": [{"namespace": name, **figures} for name, figures in namespaces.items()],
        "history": history,
    }


def clear_cache(session: Session, body: Any) -> dict[str, int]:
    """Remove the entries a request names; returns ``{"removed": n}``.

    ``body`` is a decoded JSON object with any of ``namespace`` (str),
    ``tags`` (list of str: entries with any of them), ``older_than`` (seconds
    or a duration like ``"7d"``) and ``all`` (``true``); conditions combine
    like :meth:`Cache.clear` (all must hold). ``keys`` (a list of JSON
    scalars, arrays standing for tuples) deletes those keys, optionally in
    ``namespace``, and combines with nothing else. Anything else raises
    :class:`RequestError` before anything is removed.
    """
    if not isinstance(body, Mapping):
        raise RequestError(
            "the clear request must be a JSON object, e.g. {\"namespace\": \"emb\"}, "
            "{\"tags\": [\"exp1\"]}, {\"keys\": [\"k1\"]} or {\"all\": true}"
        )
    unknown = sorted(set(body) - set(_CLEAR_FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(str, unknown))} in the clear "
                           f"request; use {', '.join(_CLEAR_FIELDS)}")
    if not body:
        raise RequestError("nothing to clear: send {\"all\": true} to clear the whole cache, or "
                           "name a namespace, tags, keys or older_than")
    namespace = _namespace(body.get("namespace"))
    everything = body.get("all", False)
    if not isinstance(everything, bool):
        raise RequestError(f"all must be true or false, not {everything!r}")
    if "keys" in body:
        extra = sorted(set(body) - {"keys", "namespace"})
        if extra:
            raise RequestError(f"keys combines only with namespace, not with {', '.join(extra)}; "
                               "send two requests")
        keys = _keys(body["keys"])
        cache = session.cache
        return {"removed": sum(cache.delete(key, namespace=namespace) for key in keys)}
    tags = _tags(body["tags"]) if "tags" in body else None
    older_than = _older_than(body["older_than"]) if "older_than" in body else None
    if not everything and namespace is None and tags is None and older_than is None:
        raise RequestError("all=false with no other condition clears nothing; send "
                           "{\"all\": true} to clear the whole cache")
    return {"removed": session.cache.clear(namespace=namespace, tags=tags, older_than=older_than)}


def _namespace(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return check_namespace(value)
    except CacheKeyError as exc:  # a bad name is bad input here, not a missing entry
        raise RequestError(str(exc)) from None


def _tags(value: Any) -> list[str]:
    tags = [value] if isinstance(value, str) else value
    if (not isinstance(tags, list) or not tags
            or not all(isinstance(t, str) and t for t in tags)):
        raise RequestError(f"tags must be a non-empty list of non-empty strings, not {value!r}")
    return tags


def _older_than(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RequestError(f"older_than must be seconds or a duration like '7d', not {value!r}")
    try:
        return parse_duration(value, name="older_than")
    except ConfigError as exc:
        raise RequestError(str(exc)) from None


def _keys(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise RequestError(f"keys must be a non-empty list, not {value!r}")
    keys = [_key(k) for k in value]
    for key in keys:
        try:
            encode_key(key)
        except CacheKeyError as exc:
            raise RequestError(f"cannot use {key!r} as a cache key: {exc}") from None
    return keys


def _key(value: Any) -> Any:
    # JSON has no tuples: an array stands for the tuple key the kernel used.
    return tuple(_key(v) for v in value) if isinstance(value, list) else value


