"""``resman cache stats|list|clear``: look into and clean the shared cache."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..core.cache_stats import CacheStats
from ..core.errors import ResmanError
from ..core.settings import format_size, parse_duration
from .output import Output


class NothingToClear(ResmanError, ValueError):
    """``cache clear`` without a filter: refuse rather than guess."""


class Declined(ResmanError):
    """The person (or a non-interactive front end) did not confirm; nothing was changed."""


def register(sub: Any) -> None:
    cache = sub.add_parser("cache", help="cache statistics, entries and clearing")
    cache.set_defaults(handler=cache_stats)
    actions = cache.add_subparsers(title="actions", metavar="ACTION",
                                   parser_class=type(cache))
    stats = actions.add_parser("stats", help="hits, misses, sizes and time saved (default)")
    stats.set_defaults(handler=cache_stats)

    listing = actions.add_parser("list", help="list entries")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    listing.set_defaults(handler=cache_list)

    clear = actions.add_parser("clear", help="remove entries (asks first on a terminal)")
    _filters(clear)
    clear.add_argument("--all", action="store_true", help="remove every entry")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(handler=cache_clear)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", help="only this namespace")
    parser.add_argument("--tag", "-t", dest="tags", action="append",
                        help="only entries with this tag (repeat for any of several)")
    parser.add_argument("--older-than", type=_duration, metavar="AGE",
                        help="only entries created more than AGE ago, e.g. 7d, 12h, 30min")


def _duration(text: str) -> float:
    try:
        return parse_duration(text, name="--older-than")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def stats_fields(stats: CacheStats, session: Any) -> dict[str, str]:
    return {
        "entries": f"{stats.entries:,}",
        "size": f"{format_size(stats.bytes)} of {format_size(stats.max_bytes)}",
        "hits / misses": f"{stats.hits:,} / {stats.misses:,} ({stats.hit_rate:.1%} hit rate)",
        "memory tier": f"{stats.memory.hits:,} hits, {stats.memory.entries:,} entries, "
                       f"{format_size(stats.memory.bytes)} in this process",
        "disk tier": f"{stats.disk.hits:,} hits",
        "evictions": f"{stats.evictions:,} ({format_size(stats.evicted_bytes)})",
        "time saved": _seconds(stats.time_saved_s),
        "policy": session.cache.policy,
        "folder": str(session.settings.cache_dir),
    }


def cache_stats(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    stats = session.cache.stats()
    rows = [{"namespace": ns, "entries": s.entries, "size": format_size(s.bytes),
             "hits": s.hits, "misses": s.misses, "hit rate": f"{s.hit_rate:.1%}",
             "time saved": _seconds(s.time_saved_s)} for ns, s in stats.namespaces.items()]
    table = pd.DataFrame(rows, columns=["namespace", "entries", "size", "hits", "misses",
                                        "hit rate", "time saved"])
    return Output(title="Cache", fields=stats_fields(stats, session), table=table,
                  data=stats.to_dict())


def cache_list(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    frame = session.cache.entries(namespace=args.namespace)
    if args.tags:
        frame = frame[frame["tags"].map(lambda tags: bool(set(tags) & set(args.tags)))]
    if args.older_than is not None:
        cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=args.older_than)
        frame = frame[frame["created"] < cutoff]
    total = len(frame)
    shown = frame.sort_values("last_access", ascending=False).head(max(args.limit, 0))
    table = pd.DataFrame({
        "key": shown["key"].map(_short),
        "namespace": shown["namespace"],
        "tags": shown["tags"].map(", ".join),
        "size": shown["bytes"].map(format_size),
        "created": shown["created"].map(_when),
        "last access": shown["last_access"].map(_when),
        "hits": shown["hits"],
        "expires": shown["expires"].map(lambda t: "never" if pd.isna(t) else _when(t)),
    })
    more = f" (showing {len(shown)} most recently used; --limit N for more)" if total > len(shown) else ""
    return Output(title=f"{total} cache entries{more}", table=table,
                  data=frame.assign(key=frame["key"].map(repr)).to_dict(orient="records"))


def cache_clear(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    filters = {"namespace": args.namespace, "tags": args.tags, "older_than": args.older_than}
    if not args.all and all(v is None for v in filters.values()):
        raise NothingToClear("say what to clear: --namespace N, --tag T, --older-than AGE, "
                             "or --all for everything")
    count, size = session.cache.count(**filters)
    if count == 0:
        return Output(message="Nothing to clear: no entry matches.", data={"removed": 0})
    everything = args.all and all(v is None for v in filters.values())
    what = f"all {_entries(count)}" if everything else _entries(count)
    if not args.yes and not ui.confirm(f"Remove {what} ({format_size(size)})?"):
        raise Declined("Nothing cleared.")
    removed = session.cache.clear(**filters)
    return Output(message=f"Removed {_entries(removed)} ({format_size(size)}).",
                  data={"removed": removed, "bytes": size})


def _entries(n: int) -> str:
    return f"{n:,} entry" if n == 1 else f"{n:,} entries"


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _when(ts: Any) -> str:
    return ts.tz_convert(None).strftime("%Y-%m-%d %H:%M") if not pd.isna(ts) else ""


def _short(key: Any) -> str:
    text = repr(key) if not isinstance(key, str) else key
    return text if len(text) <= 60 else text[:57] + "..."
