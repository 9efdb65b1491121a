"""Finding resources: filters, attribute indexes, and the containment hierarchy.

Attribute filters compare JSON values exactly (``"5"`` is not ``5``, ``True``
is not ``1``). Each one is compiled to an expression with the attribute path
written *literally* into the SQL, never bound as a parameter: an expression
index only helps a query that repeats its expression, and SQLite cannot see
through a bound JSON path. :meth:`QueryOps.index_attribute` creates exactly
that expression index, so ``query(resource_class="sample",
attributes={"experiment": "E7"})`` over 100 k rows reads only the matches.

The hierarchy is two recursive CTEs (one up, one down), never one query per
level.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ..errors import RegistryError, RegistryValueError
from . import _core
from ._core import RegistryCore, rid
from .resources import KINDS, Container, Resource, to_epoch
from .rows import from_row
from .schema import RESOURCE_ROW, select_resources
from .schema import resources as resources_table

if TYPE_CHECKING:
    import pandas

__all__ = ["Hierarchy", "QueryOps", "attribute_expression"]

# Keys that can go into SQL text as they are: no quoting, no escaping, no surprises.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ORDER = {"id", "name", "created_at", "updated_at", "resource_class", "kind"}
_FRAME_COLUMNS = ("id", "kind", "name", "resource_class", "owner", "parent_id", "key",
                  "quantity", "capacity", "unit", "created_at", "updated_at", "removed_at",
                  "version", "attributes")
_DESCENT_LIMIT = 10_000  # levels; a corrupted parent cycle must not recurse forever
def _subtree_statement() -> sa.Select[Any]:
    """(id, parent_id) of everything below ``:root``, built once.

    No depth column in the recursion (the hot query of a tree view): the outer
    LIMIT stops it instead, which both databases honour by computing the
    recursive CTE only as far as its rows are read, so damaged parent links
    that form a cycle end instead of looping forever.
    """
    r = resources_table
    down = (sa.select(r.c.id, r.c.parent_id)
            .where(r.c.parent_id == sa.bindparam("root"), r.c.removed_at.is_(None))
            .cte("subtree", recursive=True))
    down = down.union_all(
        sa.select(r.c.id, r.c.parent_id).join(down, r.c.parent_id == down.c.id)
        .where(r.c.removed_at.is_(None)))
    return sa.select(down.c.id, down.c.parent_id).limit(sa.bindparam("cap", type_=sa.Integer))


# Built statements by their filters: building one costs more than running a small query.
_STATEMENTS: dict[Any, sa.Select[Any]] = {}
_MAX_STATEMENTS = 256


def _cache_key(filters: dict[str, Any], *rest: Any) -> Any:
    """A hashable key for the filters, or None when a value is not hashable (list, dict)."""
    parts = []
    for name, value in filters.items():
        if isinstance(value, Resource):
            value = ("resource", value.id)
        elif isinstance(value, Mapping):
            value = ("mapping", tuple((k, type(v), v) for k, v in value.items()))
        elif isinstance(value, (list, tuple, set, frozenset)):
            value = ("seq", tuple(value))
        elif value is not None and not isinstance(value, (str, int, float, type)):
            return None  # datetimes and the like: cheap to rebuild, not worth a key
        parts.append((name, type(value), value))
    key = (tuple(parts), *rest)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def attribute_expression(dialect: str, key: str) -> sa.ColumnElement[Any]:
    """The SQL expression of attribute ``key`` (JSON value), as an index would spell it."""
    col = resources_table.c.attributes
    if not isinstance(key, str) or not key:
        raise RegistryValueError(f"attribute key {key!r} must be a non-empty string")
    if dialect == "postgresql":
        name = sa.literal_column(f"'{key}'") if _PLAIN_KEY.match(key) else sa.literal(key)
        return col.op("->", return_type=JSONB())(name)
    if _PLAIN_KEY.match(key):
        path: Any = sa.literal_column(f"'$.{key}'")
    elif '"' in key or "\\" in key or any(ord(ch) < 32 for ch in key):
        raise RegistryValueError(
            f"attribute key {key!r} contains a quote, backslash or control character, which "
            "SQLite JSON paths cannot express; rename the attribute to query by it"
        )
    else:
        path = sa.literal(f'$."{key}"')
    return sa.func.json_extract(col, path)


def _json_type(key: str) -> sa.ColumnElement[Any]:
    col = resources_table.c.attributes
    path = sa.literal_column(f"'$.{key}'") if _PLAIN_KEY.match(key) else sa.literal(f'$."{key}"')
    return sa.func.json_type(col, path)


def attribute_condition(dialect: str, key: str, value: Any) -> sa.ColumnElement[bool]:
    """``attributes[key] == value`` with JSON semantics on either database."""
    try:
        as_json = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        raise RegistryValueError(
            f"attribute {key!r}: cannot filter by a {type(value).__name__}; use a JSON value "
            "(str, number, bool, None, list or dict)"
        ) from None
    expr = attribute_expression(dialect, key)
    if dialect == "postgresql":
        if value is None:
            return sa.or_(expr.is_(None), expr == sa.cast(sa.literal("null"), JSONB()))
        return expr == sa.cast(sa.literal(as_json), JSONB())
    # SQLite: json_extract returns SQL values (true -> 1), so the JSON type is checked too.
    if value is None:
        return expr.is_(None)
    if isinstance(value, bool):
        return sa.and_(expr == int(value), _json_type(key) == ("true" if value else "false"))
    if isinstance(value, (int, float)):
        return sa.and_(expr == value, _json_type(key).in_(["integer", "real"]))
    if isinstance(value, str):
        return expr == value  # no affinity on either side: 5 never equals '5'
    if isinstance(value, (list, dict)):
        # Arrays and objects come back as minified JSON text; compare in the same form.
        return expr == sa.func.json(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    raise RegistryValueError(f"attribute {key!r}: cannot filter by {value!r}")


@dataclasses.dataclass
class Hierarchy:
    """Where a resource sits: its ancestors and everything inside it.

    ``ancestor_ids`` goes from the parent outwards; ``descendant_ids`` maps
    each container id in the subtree to its direct children, at every depth.
    ``resources`` has the full objects when asked for (``details=True``).
    """

    resource_id: str
    ancestor_ids: list[str]
    descendant_ids: dict[str, list[str]]
    resources: dict[str, Resource] = dataclasses.field(default_factory=dict)

    def all_descendants(self) -> list[str]:
        """Every id inside the resource, parents before their children."""
        out: list[str] = []
        stack = [self.resource_id]
        while stack:
            children = self.descendant_ids.get(stack.pop(), [])
            out.extend(children)
            stack.extend(reversed(children))
        return out

    def tree(self) -> dict[str, Any]:
        """A nested ``{"id", "name", "kind", "key", "children": [...]}`` for tree views."""

        def node(resource_id: str) -> dict[str, Any]:
            res = self.resources.get(resource_id)
            return {
                "id": resource_id,
                "name": res.name if res else None,
                "kind": res.kind if res else None,
                "key": res.key if res else None,
                "children": [node(c) for c in self.descendant_ids.get(resource_id, [])],
            }

        return node(self.resource_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "ancestor_ids": list(self.ancestor_ids),
            "descendant_ids": {k: list(v) for k, v in self.descendant_ids.items()},
        }


class QueryOps(RegistryCore):
    """Queries (mixed into Registry)."""

    def query(
        self,
        *,
        kind: str | type[Resource] | Iterable[str | type[Resource]] | None = None,
        resource_class: str | Iterable[str] | None = None,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Resource | str | None = None,
        top_level: bool = False,
        owner: str | None = None,
        created_after: Any = None,
        created_before: Any = None,
        removed: bool | None = False,
        order_by: str = "id",
        limit: int | None = None,
        offset: int = 0,
        as_frame: bool = False,
    ) -> list[Resource] | pandas.DataFrame:
        """Resources matching every filter given, as objects or a DataFrame.

        ``name`` may hold ``*`` wildcards (``"plate *"``); ``attributes`` is
        ``{key: value}`` with exact JSON equality; ``parent`` gives the
        children of one container, ``top_level=True`` the resources in none;
        ``removed=False`` (default) live ones, ``True`` removed ones, ``None``
        both. ``order_by`` is a column, ``"-"`` first for descending.
        """
        filters = {
            "kind": kind, "resource_class": resource_class, "name": name,
            "attributes": attributes, "parent": parent, "top_level": top_level, "owner": owner,
            "created_after": created_after, "created_before": created_before, "removed": removed,
        }
        key = _cache_key(filters, self._db.backend, order_by, limit, offset)
        select = _STATEMENTS.get(key) if key is not None else None
        if select is None:
            select = self._ordered(self._select(**filters), order_by, limit, offset)
            if key is not None:
                if len(_STATEMENTS) >= _MAX_STATEMENTS:
                    _STATEMENTS.clear()
                _STATEMENTS[key] = select
        rows = self._read(lambda conn: conn.execute(select).all())
        if as_frame:
            return _frame(rows)
        return [from_row(row) for row in rows]

    @staticmethod
    def _ordered(select: sa.Select[Any], order_by: str, limit: int | None,
                 offset: int) -> sa.Select[Any]:
        desc = order_by.startswith("-")
        column = order_by.lstrip("-")
        if column not in _ORDER:
            raise RegistryValueError(f"order_by={order_by!r}: use one of {sorted(_ORDER)}")
        ordering = resources_table.c[column]
        select = select.order_by(ordering.desc() if desc else ordering)
        if column != "id":
            select = select.order_by(resources_table.c.id)  # a stable tiebreak for paging
        if limit is not None:
            select = select.limit(int(limit))
        if offset:
            select = select.offset(int(offset))
        return select

    def count(self, **filters: Any) -> int:
        """How many resources :meth:`query` would return with the same filters."""
        inner = self._select(**filters).subquery()
        select = sa.select(sa.func.count()).select_from(inner)
        return int(self._read(lambda conn: conn.execute(select).scalar()) or 0)

    def _select(
        self, *, kind: Any = None, resource_class: Any = None, name: str | None = None,
        attributes: Mapping[str, Any] | None = None, parent: Resource | str | None = None,
        top_level: bool = False, owner: str | None = None, created_after: Any = None,
        created_before: Any = None, removed: bool | None = False,
    ) -> sa.Select[Any]:
        r = resources_table.c
        select = select_resources()
        if kind is not None:
            kinds = sorted({name for k in _as_list(kind) for name in _kind_names(k)})
            select = select.where(r.kind == kinds[0] if len(kinds) == 1 else r.kind.in_(kinds))
        if resource_class is not None:
            classes = _as_list(resource_class)
            select = select.where(
                r.resource_class == classes[0] if len(classes) == 1
                else r.resource_class.in_(classes))
        if name is not None:
            if "*" in name:
                pattern = (name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                           .replace("*", "%"))
                select = select.where(r.name.like(pattern, escape="\\"))
            else:
                select = select.where(r.name == name)
        if attributes:
            dialect = self._db.backend
            for key, value in attributes.items():
                select = select.where(attribute_condition(dialect, key, value))
        if parent is not None:
            select = select.where(r.parent_id == rid(parent))
        if top_level:
            select = select.where(r.parent_id.is_(None))
        if owner is not None:
            select = select.where(r.owner == owner)
        if created_after is not None:
            select = select.where(r.created_at >= to_epoch(created_after, name="created_after"))
        if created_before is not None:
            select = select.where(r.created_at < to_epoch(created_before, name="created_before"))
        if removed is not None:
            select = select.where(r.removed_at.is_not(None) if removed else r.removed_at.is_(None))
        return select

    def index_attribute(self, key: str, *, with_class: bool = True) -> str:
        """Create (if missing) an expression index on attribute ``key``; returns its name.

        With ``with_class`` the index is on ``(resource_class, attribute)``,
        the shape of the usual "samples of experiment E7" query. Only plain
        keys (letters, digits, ``_``) can be indexed.
        """
        if not isinstance(key, str) or not _PLAIN_KEY.match(key):
            raise RegistryValueError(
                f"attribute key {key!r} cannot be indexed; use letters, digits and _ "
                "(starting with a letter), at most 63 characters"
            )
        name = f"ix_resources_{'cattr' if with_class else 'attr'}_{key}".lower()[:63]
        expr = f"(attributes -> '{key}')" if self._db.backend == "postgresql" \
            else f"json_extract(attributes, '$.{key}')"
        columns = f"resource_class, {expr}" if with_class else expr
        ddl = f'CREATE INDEX IF NOT EXISTS "{name}" ON resources ({columns})'
        self._write(lambda conn: conn.exec_driver_sql(ddl))
        return name

    # -- hierarchy ------------------------------------------------------------------------

    def hierarchy(self, resource: Resource | str, *, details: bool = False) -> Hierarchy:
        """Ancestors (closest first) and all descendants (parent -> children) of a resource.

        ``details=True`` also loads every resource in the subtree (for tree views).
        """
        resource_id = rid(resource)

        def read(conn: sa.Connection) -> Hierarchy:
            up_ids = self._ancestors(conn, resource_id)
            children: dict[str, list[str]] = {}
            loaded: dict[str, Resource] = {}
            if details:
                loaded[resource_id] = self._fetch(conn, resource_id)
            rows = conn.execute(self._descendants_query(resource_id, details)).all()
            if len(rows) > _core.SUBTREE_CAP:
                raise RegistryError(
                    f"{resource_id} has more than {_core.SUBTREE_CAP:,} resources below it, or its "
                    "parent links form a cycle (a damaged registry); query(parent=...) reads "
                    "one level at a time"
                )
            if details:
                for row in rows:
                    children.setdefault(row.parent_id, []).append(row.id)
                    loaded[row.id] = from_row(row)
            else:
                # Siblings come out of the recursion next to each other: group runs of
                # rows (in C) instead of one dict operation per row.
                for parent_id, run in groupby(rows, key=itemgetter(1)):
                    ids = [row[0] for row in run]
                    known = children.get(parent_id)
                    if known is None:
                        children[parent_id] = ids
                    else:
                        known.extend(ids)
            return Hierarchy(resource_id, up_ids, children, loaded)

        return self._read(read)

    def _ancestors(self, conn: sa.Connection, resource_id: str) -> list[str]:
        """The ancestors, closest first; also checks the resource exists (same query)."""
        r = resources_table
        up = (sa.select(r.c.id, r.c.parent_id, r.c.removed_at, sa.literal(0).label("depth"))
              .where(r.c.id == resource_id).cte("up", recursive=True))
        up = up.union_all(
            sa.select(r.c.id, r.c.parent_id, r.c.removed_at, up.c.depth + 1)
            .join(up, r.c.id == up.c.parent_id)
            .where(up.c.depth < _DESCENT_LIMIT))
        rows = conn.execute(sa.select(up.c.id, up.c.removed_at).order_by(up.c.depth)).all()
        if not rows or rows[0].removed_at is not None:
            self._fetch(conn, resource_id)  # raises "no resource" / "was removed"
        return [row.id for row in rows[1:]]

    def _descendants_query(self, resource_id: str, details: bool) -> sa.Select[Any]:
        if not details:
            return _SUBTREE.params(root=resource_id, cap=_core.SUBTREE_CAP + 1)
        r = resources_table
        down = (sa.select(r.c.id, r.c.parent_id, sa.literal(1).label("depth"))
                .where(r.c.parent_id == resource_id, r.c.removed_at.is_(None))
                .cte("down", recursive=True))
        down = down.union_all(
            sa.select(r.c.id, r.c.parent_id, down.c.depth + 1)
            .join(down, r.c.parent_id == down.c.id)
            .where(r.c.removed_at.is_(None), down.c.depth < _DESCENT_LIMIT))
        return (select_resources().join(down, r.c.id == down.c.id)
                .order_by(down.c.depth, r.c.key))


_SUBTREE = _subtree_statement()


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, type)):
        return [value]
    items = list(value)
    if not items:
        raise RegistryValueError("an empty list of values matches nothing; leave the filter out")
    return items


def _kind_names(kind: str | type[Resource]) -> list[str]:
    """Stored kinds matching ``kind``: a name, or a class and its subclasses (``Container``)."""
    wanted: Any = kind
    if isinstance(kind, str):
        wanted = KINDS.get(kind.lower()) or {"container": Container}.get(kind.lower(), kind)
    if isinstance(wanted, type) and issubclass(wanted, Resource):
        if wanted.kind in KINDS:
            return [wanted.kind]  # a concrete kind means exactly that kind
        names = [name for name, cls in KINDS.items() if issubclass(cls, wanted)]
        if names:
            return names
    raise RegistryValueError(
        f"kind={kind!r}: use one of {', '.join(sorted(KINDS))} or 'container'")


def _frame(rows: Sequence[Any]) -> pandas.DataFrame:
    """Rows of ``select_resources()`` as a DataFrame (one column per field, times as UTC)."""
    import pandas as pd

    names = [column.name for column in RESOURCE_ROW]
    frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=names)
    decode = json.JSONDecoder().decode
    for col in ("attributes", "dims"):
        frame[col] = [decode(v) if isinstance(v, str) else v for v in frame[col]]
    for col in ("created_at", "updated_at", "removed_at"):
        frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
    return frame[list(_FRAME_COLUMNS)]
