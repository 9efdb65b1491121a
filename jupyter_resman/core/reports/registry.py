"""The registry report: pages of resources, and one resource with its place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    RequestError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:

    from ..registry import Registry, Resource
    from ..session import Session


REGISTRY_PARAMS = ("kind", "class", "name", "parent", "removed", "limit", "offset", "order")
#: Resources on one page of the registry list by default...
REGISTRY_PAGE = 50
#: ...and at most (a page is serialized whole, on every poll of the sidebar).
REGISTRY_MAX_PAGE = 500
#: Direct children listed with one resource (``children_total`` counts them all).
CHILDREN_LIMIT = 100
#: Newest history entries listed with one resource.
HISTORY_LIMIT = 20
_REGISTRY_ORDERS = ("created_at", "updated_at", "name", "kind", "resource_class", "id")
_REMOVED = {"false": False, "0": False, "no": False, "true": True, "1": True, "yes": True,
            "any": None, "all": None}


def existing_registry(session: Session) -> Registry | None:
    """The session's registry, or ``None`` while the home has none (see
    :meth:`Session.existing_registry`: looking never creates ``registry.sqlite``).

    >>> import tempfile
    >>> from jupyter_resman.core import Session
    >>> with Session(home=tempfile.mkdtemp()) as s:
    ...     existing_registry(s) is None, s.home.registry_db.exists()
    (True, False)
    """
    return session.existing_registry()


def registry_report(session: Session, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One page of registry resources matching ``params``, and how many match in all.

    ``params`` holds the query parameters of :data:`REGISTRY_PARAMS` as
    strings (absent or ``""``: no filter): ``kind`` (a kind or
    ``container``), ``class``, ``name`` (text the name contains, or a
    pattern of the whole name with ``*`` wildcards), ``parent`` (an id: its
    direct children), ``removed`` (``false``, ``true`` or ``any``),
    ``limit``, ``offset`` and ``order`` (a field, ``-`` first for newest or
    largest first; default ``-created_at``). A malformed one raises
    :class:`RequestError`. Without a registry in the home the page is empty
    and ``exists`` is false; nothing is created.

    >>> import tempfile
    >>> from jupyter_resman.core import Session
    >>> with Session(home=tempfile.mkdtemp()) as s:
    ...     report = registry_report(s, {"kind": "asset"})
    ...     report["exists"], report["resources"], report["total"]
    (False, [], 0)
    """
    from ..registry.resources import KINDS  # SQLAlchemy: only when the registry is asked for

    params = {} if params is None else params
    filters: dict[str, Any] = {"removed": _removed(_param(params, "removed"))}
    kind = _param(params, "kind")
    if kind is not None:
        if kind.lower() not in KINDS and kind.lower() != "container":
            raise RequestError(f"kind={kind!r} is not a kind; use one of "
                               f"{', '.join(sorted(KINDS))} or container")
        filters["kind"] = kind.lower()
    resource_class = _param(params, "class")
    if resource_class is not None:
        filters["resource_class"] = resource_class
    name = _param(params, "name")
    if name is not None:
        filters["name"] = name if "*" in name else f"*{name}*"
    parent = _param(params, "parent")
    if parent is not None:
        filters["parent"] = resource_id_of(parent, "parent")
    limit = _whole(_param(params, "limit"), "limit", REGISTRY_PAGE, 1, REGISTRY_MAX_PAGE)
    offset = _whole(_param(params, "offset"), "offset", 0, 0, None)
    order = _param(params, "order") or "-created_at"
    if order.lstrip("-") not in _REGISTRY_ORDERS:
        raise RequestError(f"order={order!r}: use one of {', '.join(_REGISTRY_ORDERS)}, "
                           "with - first for the reverse order (e.g. -created_at)")
    registry = existing_registry(session)
    out: dict[str, Any] = {
        "exists": registry is not None,
        "location": registry.url if registry is not None else str(session.home.registry_db),
        "kinds": [*sorted(KINDS), "container"],
        "limit": limit, "offset": offset, "order": order,
    }
    if registry is None:
        return {**out, "resources": [], "total": 0}
    total = registry.count(**filters)
    rows: list[Resource] = registry.query(  # type: ignore[assignment]
        **filters, order_by=order, limit=limit, offset=offset)
    return {**out, "resources": [r.to_dict() for r in rows], "total": total}


def registry_item_report(session: Session, resource_id: Any) -> dict[str, Any]:
    """One resource (removed ones too), where it sits, what it holds, and its recent history.

    * ``resource``: ``Resource.to_dict()``;
    * ``hierarchy``: ``resource_id``, ``ancestor_ids`` (the parent first) and
      ``descendants`` (how many resources are inside it, at any depth);
      ``None`` for a removed resource;
    * ``ancestors``: those ancestors' ``to_dict()``, in the same order;
    * ``children``: the first :data:`CHILDREN_LIMIT` resources directly
      inside, oldest first; ``children_total`` counts them all;
    * ``history``: the newest :data:`HISTORY_LIMIT` changes, newest first
      (``HistoryEntry.to_dict()`` plus ``changes``: ``{field: [old, new]}``).

    A malformed id raises :class:`RequestError`, an unknown one
    :class:`~.errors.ResourceNotFoundError`.
    """
    wanted = resource_id_of(resource_id, "id")
    registry = existing_registry(session)
    if registry is None:
        raise ResourceNotFoundError(f"no resource with id {wanted!r}: there is no registry in "
                                    f"{session.home.root} yet")
    resource = registry.get(wanted, include_removed=True)
    history: list[Any] = registry.history(  # type: ignore[assignment]
        wanted, newest_first=True, limit=HISTORY_LIMIT)
    place: dict[str, Any] | None = None
    ancestors: list[Resource] = []
    children: list[Resource] = []
    children_total = 0
    if resource.removed is None:
        hierarchy = registry.hierarchy(wanted)
        ancestors = [registry.get(a, include_removed=True) for a in hierarchy.ancestor_ids]
        children_total = len(hierarchy.descendant_ids.get(wanted, ()))
        if children_total:
            children = registry.query(  # type: ignore[assignment]
                parent=wanted, order_by="created_at", limit=CHILDREN_LIMIT)
        # Not the descendant ids themselves: a freezer can hold 100,000 samples.
        place = {"resource_id": wanted, "ancestor_ids": list(hierarchy.ancestor_ids),
                 "descendants": sum(len(ids) for ids in hierarchy.descendant_ids.values())}
    return {
        "resource": resource.to_dict(),
        "hierarchy": place,
        "ancestors": [a.to_dict() for a in ancestors],
        "children": [c.to_dict() for c in children],
        "children_total": children_total,
        "history": [{**entry.to_dict(),
                     "changes": {k: list(v) for k, v in entry.changes().items()}}
                    for entry in history],
    }


def resource_id_of(value: Any, name: str) -> str:
    """A registry id (a ULID) in its canonical upper-case form, or :class:`RequestError`.

    >>> resource_id_of("01m8madfde0rqhz5476592cwcz", "id")
    '01M8MADFDE0RQHZ5476592CWCZ'
    """
    from ulid import ULID

    try:
        if not isinstance(value, str):
            raise TypeError
        return str(ULID.from_str(value.strip()))
    except (TypeError, ValueError):
        raise RequestError(f"{name}={str(value)[:60]!r} is not a registry id; ids are 26-letter "
                           "ULIDs such as 01J9ZQ3V5X7K2M4N6P8R0T2W4Y "
                           "(GET /resman/api/registry lists them)") from None


def _param(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text, not {type(value).__name__}")
    value = value.strip()
    return value or None


def _removed(value: str | None) -> bool | None:
    if value is None:
        return False
    try:
        return _REMOVED[value.lower()]
    except KeyError:
        raise RequestError(f"removed={value!r}: use false (live resources, the default), "
                           "true (removed ones) or any") from None


def _whole(value: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(f"{name}={value!r} must be a whole number {bounds}")
    return number
