"""Every change to a resource, recorded in the same transaction as the change.

A history row holds the resource's full snapshot before and after, so any
earlier version can be looked at or restored, and an audit never depends on
the resource still existing.

>>> ChangeType("updated") is ChangeType.UPDATED
True
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import RegistryValueError, ResourceNotFoundError
from ._core import ChangeType, RegistryCore, rid
from .resources import Resource, resource_from_dict, to_datetime, to_epoch
from .schema import history as history_table

if TYPE_CHECKING:
    import pandas

__all__ = ["ChangeType", "HistoryEntry", "HistoryOps"]


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One recorded change: the snapshots before and after, and when it happened."""

    id: int
    resource_id: str
    version: int
    change_type: ChangeType
    changed: float
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None = None

    @property
    def changed_at(self) -> _dt.datetime:
        return to_datetime(self.changed)  # type: ignore[return-value]

    def resource(self) -> Resource | None:
        """The resource as it was after this change (``None`` if there is no snapshot)."""
        return resource_from_dict(self.after) if self.after is not None else None

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """Fields that differ between before and after: ``{field: (old, new)}``."""
        before, after = self.before or {}, self.after or {}
        skip = {"version", "updated_at"}
        return {
            key: (before.get(key), after.get(key))
            for key in sorted(set(before) | set(after))
            if key not in skip and before.get(key) != after.get(key)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for tables and REST."""
        return {
            "id": self.id,
            "resource_id": self.resource_id,
            "version": self.version,
            "change_type": self.change_type.value,
            "changed_at": self.changed_at.isoformat(),
            "detail": self.detail,
            "before": self.before,
            "after": self.after,
        }


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        id=row.id,
        resource_id=row.resource_id,
        version=row.version,
        change_type=ChangeType(row.change_type),
        changed=row.changed_at,
        before=row.before,
        after=row.after,
        detail=row.detail,
    )


def _change_types(change_type: Any) -> list[str] | None:
    if change_type is None:
        return None
    single = isinstance(change_type, (str, ChangeType))
    items: Iterable[Any] = [change_type] if single else change_type
    out = []
    for item in items:
        try:
            out.append(ChangeType(str(item).lower()).value)
        except ValueError:
            raise RegistryValueError(
                f"change_type={item!r} is not a change type; use one of "
                f"{', '.join(c.value for c in ChangeType)}"
            ) from None
    return out


class HistoryOps(RegistryCore):
    """Reading the history and going back to an earlier version (mixed into Registry)."""

    def history(
        self,
        resource: Resource | str | None = None,
        *,
        since: Any = None,
        until: Any = None,
        change_type: str | ChangeType | Iterable[str | ChangeType] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        as_frame: bool = False,
    ) -> list[HistoryEntry] | pandas.DataFrame:
        """Recorded changes, oldest first (``newest_first=True`` for the reverse).

        ``resource`` limits them to one resource (its id or object);
        ``since``/``until`` take datetimes, ISO strings or epoch seconds;
        ``change_type`` one type or several (``"updated"``, ``ChangeType.REMOVED``).
        ``as_frame=True`` returns a DataFrame (one row per change) for tables.
        """
        h = history_table
        query = sa.select(h)
        if resource is not None:
            query = query.where(h.c.resource_id == rid(resource))
        if since is not None:
            query = query.where(h.c.changed_at >= to_epoch(since, name="since"))
        if until is not None:
            query = query.where(h.c.changed_at < to_epoch(until, name="until"))
        types = _change_types(change_type)
        if types is not None:
            query = query.where(h.c.change_type.in_(types))
        query = query.order_by(h.c.id.desc() if newest_first else h.c.id)
        if limit is not None:
            query = query.limit(int(limit))
        rows = self._read(lambda conn: conn.execute(query).all())
        entries = [_entry(row) for row in rows]
        if not as_frame:
            return entries
        import pandas as pd

        return pd.DataFrame(
            {
                "id": [e.id for e in entries],
                "resource_id": [e.resource_id for e in entries],
                "version": [e.version for e in entries],
                "change_type": [e.change_type.value for e in entries],
                "changed_at": pd.to_datetime([e.changed for e in entries], unit="s", utc=True),
                "name": [(e.after or e.before or {}).get("name") for e in entries],
                "detail": [e.detail for e in entries],
                "changes": [sorted(e.changes()) for e in entries],
            }
        )

    def version(self, resource: Resource | str, version: int) -> Resource:
        """The resource as it was at ``version`` (read from its history)."""
        entry = self._version_entry(resource, version)
        return entry.resource()  # type: ignore[return-value]

    def _version_entry(self, resource: Resource | str, version: int) -> HistoryEntry:
        resource_id = rid(resource)
        h = history_table
        query = (sa.select(h).where(h.c.resource_id == resource_id, h.c.version == int(version))
                 .order_by(h.c.id.desc()).limit(1))
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None or row.after is None:
            raise ResourceNotFoundError(
                f"resource {resource_id} has no recorded version {version}; see "
                f"registry.history({resource_id!r})"
            )
        return _entry(row)

    def restore_version(
        self, resource: Resource | str, version: int, *, token: str | None = None
    ) -> Resource:
        """Put the resource's fields (name, class, attributes, quantities...) back as
        they were at ``version``; recorded as a new version (``restored``).

        Placement (parent and key) is not changed: the old position may be taken.
        """
        old = self.version(resource, version)
        fields = old.definition()
        fields.pop("kind")

        def apply(conn: sa.Connection) -> Resource:
            current = self._fetch(conn, rid(old), for_update=True)
            if current.kind != old.kind:
                raise RegistryValueError(f"{old.id} changed kind; it cannot go back to {version}")
            self._guard(conn, [current], token)
            after = current.copy(**fields)
            after.validate()
            self._check_update(conn, current, after)
            return self._save(
                conn, current, after, ChangeType.RESTORED, detail=f"restored to version {version}"
            )

        return self._write(apply)
