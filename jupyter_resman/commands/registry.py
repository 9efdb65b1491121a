"""``resman registry list|show ID|history ID``: datasets, artifacts and lab resources."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd

from .output import Output


def register(sub: Any) -> None:
    registry = sub.add_parser("registry", help="the registry of datasets and resources")
    registry.set_defaults(handler=registry_list, kind=None, resource_class=None, name=None,
                          parent=None, removed=False, limit=50, offset=0)
    actions = registry.add_subparsers(title="actions", metavar="ACTION",
                                      parser_class=type(registry))
    listing = actions.add_parser("list", help="resources matching filters (default)")
    listing.add_argument("--kind", help="asset, consumable, grid, dataset, …")
    listing.add_argument("--class", dest="resource_class", help="the resource class")
    listing.add_argument("--name", help="a name, * wildcards allowed")
    listing.add_argument("--parent", metavar="ID", help="children of this container")
    listing.add_argument("--removed", action="store_true", help="removed resources instead")
    listing.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="rows to skip")
    listing.set_defaults(handler=registry_list)
    show = actions.add_parser("show", help="one resource, its place and its contents")
    show.add_argument("id", help="resource id (ULID)")
    show.set_defaults(handler=registry_show)
    history = actions.add_parser("history", help="every recorded change of a resource")
    history.add_argument("id", help="resource id (ULID)")
    history.add_argument("--limit", type=int, default=50, help="newest changes to show")
    history.set_defaults(handler=registry_history)


def registry_list(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    registry = session.registry
    filters = {"kind": args.kind, "resource_class": args.resource_class, "name": args.name,
               "parent": args.parent, "removed": True if args.removed else False}
    total = registry.count(**filters)
    resources = registry.query(**filters, limit=max(args.limit, 0), offset=max(args.offset, 0),
                               order_by="-created_at")
    table = pd.DataFrame([_row(r) for r in resources],
                         columns=["id", "name", "kind", "class", "parent", "owner", "updated"])
    shown = f" (showing {len(resources)} from {args.offset})" if total > len(resources) else ""
    return Output(title=f"{total} resource(s) in the registry{shown}", table=table,
                  data={"resources": [r.to_dict() for r in resources], "total": total})


def registry_show(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    registry = session.registry
    resource = registry.get(args.id, include_removed=True)
    data = resource.to_dict()
    hierarchy = registry.hierarchy(resource).to_dict()
    fields = {key: _plain(value) for key, value in data.items() if value not in (None, {}, [])}
    ancestors = hierarchy.get("ancestor_ids") or []
    if ancestors:
        fields["inside"] = " ← ".join(ancestors)
    children = registry.query(parent=resource.id, limit=100)
    table = pd.DataFrame([_row(r) for r in children],
                         columns=["id", "name", "kind", "class", "parent", "owner", "updated"])
    return Output(title=f"{resource.name} ({type(resource).__name__})", fields=fields,
                  table=table if len(table) else None, data={"resource": data,
                                                             "hierarchy": hierarchy})


def registry_history(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    registry = session.registry
    resource = registry.get(args.id, include_removed=True)
    frame = registry.history(resource, newest_first=True, limit=max(args.limit, 1), as_frame=True)
    table = pd.DataFrame({
        "version": frame["version"],
        "change": frame["change_type"],
        "when": frame["changed_at"].map(lambda t: t.tz_convert(None).strftime("%Y-%m-%d %H:%M:%S")),
        "changed fields": frame["changes"].map(", ".join),
        "detail": frame["detail"].fillna(""),
    })
    return Output(title=f"History of {resource.name} ({resource.id})", table=table,
                  data=[e.to_dict() for e in registry.history(resource, newest_first=True,
                                                               limit=max(args.limit, 1))])


def _row(resource: Any) -> dict[str, Any]:
    data = resource.to_dict()
    return {"id": data["id"], "name": data["name"], "kind": data.get("kind", ""),
            "class": data.get("resource_class") or "", "parent": data.get("parent_id") or "",
            "owner": data.get("owner") or "", "updated": (data.get("updated_at") or "")[:19].replace("T", " ")}


def _plain(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
