"""Adding, reading, changing and removing resources; consumable quantities.

Every method takes a resource object or its id, returns a fresh snapshot,
and records the change in the history. Writes to a resource that is locked
take the holder's ``token=`` (see :mod:`.locks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..errors import (
    LockError,
    QuantityError,
    RegistryValueError,
    ResourceKindError,
    VersionConflictError,
)
from . import _core
from ._core import ChangeType, RegistryCore, rid
from .resources import Consumable, Resource, resource_from_dict
from .rows import from_row
from .schema import history as history_table
from .schema import resources as resources_table
from .schema import select_resources

__all__ = ["CrudOps"]

# Fields ``update`` may change; the rest (id, kind, placement, times) belong to the registry.
_EDITABLE = ("name", "resource_class", "attributes", "owner")
# Relative slack for float quantities: 0.3 - 0.1 - 0.1 - 0.1 must not be "negative".
_REL_TOL = 1e-9


class CrudOps(RegistryCore):
    """Create, read, update and (soft) delete (mixed into Registry)."""

    def add(
        self, resource: Resource, *, parent: Resource | str | None = None, key: Any = None,
        token: str | None = None,
    ) -> Resource:
        """Store a new resource; returns it with its id and times filled in.

        ``parent``/``key`` place it in a container at once (same rules as
        :meth:`set_child`; ``token`` is the container's lease if it is locked).

        >>> import tempfile, jupyter_resman as rm
        >>> from jupyter_resman.core.registry import Asset
        >>> with rm.Session(home=tempfile.mkdtemp()) as s:
        ...     tube = s.registry.add(Asset(name="tube 1", resource_class="sample"))
        ...     s.registry.get(tube.id).name
        'tube 1'
        """
        if not isinstance(resource, Resource):
            raise ResourceKindError(
                f"add() takes a resource object (Asset, Consumable, Grid...), not "
                f"{type(resource).__name__}; for a dict use resource_from_dict(d)"
            )

        def insert(conn: sa.Connection) -> Resource:
            new = self._insert(conn, resource)
            if parent is None:
                return new
            return self._place(conn, parent, new, key, token=token, move=False)

        return self._write(insert)

    def get(self, resource: Resource | str, *, include_removed: bool = False) -> Resource:
        """The current state of a resource; :class:`ResourceNotFoundError` if there is none.

        A removed resource raises too, unless ``include_removed=True``.
        """
        return self._read(
            lambda conn: self._fetch(conn, resource, include_removed=include_removed)
        )

    def exists(self, resource: Resource | str) -> bool:
        """Whether a live (not removed) resource has this id."""
        r = resources_table.c
        query = sa.select(r.id).where(r.id == rid(resource), r.removed_at.is_(None))
        return self._read(lambda conn: conn.execute(query).first() is not None)

    def update(
        self,
        resource: Resource | str,
        *,
        token: str | None = None,
        expected_version: int | None = None,
        merge_attributes: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Resource:
        """Change fields of a resource; returns the new version.

        Two styles:

        * ``update(obj)`` saves the editable fields of an object you changed
          (``obj.attributes["x"] = 1``). It is a compare-and-set: if someone
          else changed the resource since ``obj`` was read, nothing is written
          and :class:`VersionConflictError` says to read it again.
        * ``update(id, name=..., quantity=...)`` sets just those fields;
          ``merge_attributes={...}`` merges keys into the stored attributes
          atomically (no lost update between two writers of different keys).
        """
        if isinstance(resource, Resource) and not changes and merge_attributes is None:
            changes = {name: getattr(resource, name) for name in _EDITABLE}
            changes.update({name: getattr(resource, name) for name in resource.extra_fields})
            if expected_version is None:
                expected_version = resource.version

        def apply(conn: sa.Connection) -> Resource:
            current = self._fetch(conn, resource, for_update=True)
            if expected_version is not None and current.version != expected_version:
                raise VersionConflictError(
                    f"{current.name!r} ({current.id}) is at version {current.version}, not "
                    f"{expected_version}: someone changed it since you read it. Get it again "
                    "(registry.get(id)) and reapply your change."
                )
            allowed = _EDITABLE + current.extra_fields
            unknown = sorted(set(changes) - set(allowed))
            if unknown:
                raise RegistryValueError(
                    f"cannot update {unknown} of a {current.kind}; editable fields are "
                    f"{', '.join(allowed)} (placement changes through set_child/push/pop)"
                )
            fields = dict(changes)
            if merge_attributes is not None:
                base = fields.get("attributes", current.attributes)
                fields["attributes"] = {**base, **dict(merge_attributes)}
            after = current.copy(**fields)
            if after == current:
                return current
            after.validate()
            self._guard(conn, [current], token)
            self._check_update(conn, current, after)
            changed = sorted(k for k in fields if getattr(after, k) != getattr(current, k))
            return self._save(conn, current, after, ChangeType.UPDATED,
                              detail="set " + ", ".join(changed))

        return self._write(apply)

    def remove(
        self, resource: Resource | str, *, token: str | None = None, recursive: bool = False
    ) -> Resource:
        """Soft-delete a resource (kept, with its history; :meth:`restore_deleted` undoes it).

        It leaves its container. A container that still holds resources is
        refused unless ``recursive=True``, which removes everything inside too.
        """

        def apply(conn: sa.Connection) -> Resource:
            top = self._fetch(conn, resource, for_update=True)
            inside = self._descendant_ids(conn, rid(top))
            if inside and not recursive:
                raise RegistryValueError(
                    f"{top.name!r} ({top.id}) still holds {len(inside)} resource(s); take them "
                    "out first, or pass recursive=True to remove them as well"
                )
            below = self._fetch_many(conn, inside, for_update=True) if inside else {}
            guarded = [top, *below.values()]
            if top.parent_id is not None:  # its container's contents change too
                guarded.append(self._fetch(conn, top.parent_id, include_removed=True))
            self._guard(conn, guarded, token)
            now = self._now()
            where = f" from {top.parent_id}[{top.key}]" if top.parent_id else ""
            removed = self._save(conn, top, top.copy(removed=now, parent_id=None, key=None),
                                 ChangeType.REMOVED, detail="removed" + where)
            for child in below.values():
                # Children keep their places inside the removed container, so a
                # recursive restore puts the whole tree back as it was.
                self._save(conn, child, child.copy(removed=now), ChangeType.REMOVED,
                           detail=f"removed with {top.id}")
            return removed

        return self._write(apply)

    def restore_deleted(self, resource: Resource | str, *, token: str | None = None) -> Resource:
        """Bring back a removed resource, and whatever was removed along with it.

        It goes back into its old container position if that is still free;
        otherwise it comes back at the top level (the history says which).
        Restoring a live resource changes nothing.
        """

        def apply(conn: sa.Connection) -> Resource:
            current = self._fetch(conn, resource, for_update=True, include_removed=True)
            if current.removed is None:
                return current
            self._guard(conn, [current], token)
            parent_id, key = self._last_place(conn, rid(current))
            after = current.copy(removed=None, parent_id=None, key=None)
            detail = "undeleted"
            if parent_id is not None:
                fits = self._fits(conn, parent_id, key, after)
                if fits and self._may_write(conn, parent_id, token):
                    after = after.copy(parent_id=parent_id, key=key)
                    detail += f" into {parent_id}[{key}]"
                else:
                    detail += f" at top level ({parent_id}[{key}] is no longer available)"
            restored = self._save(conn, current, after, ChangeType.RESTORED, detail=detail)
            # Only what was removed *with* it is still attached to it (a resource
            # removed on its own leaves its container), so all of it comes back.
            for child_id in self._descendant_ids(conn, rid(current), removed=True):
                child = self._fetch(conn, child_id, for_update=True, include_removed=True)
                self._save(conn, child, child.copy(removed=None), ChangeType.RESTORED,
                           detail=f"undeleted with {current.id}")
            return restored

        return self._write(apply)

    def init(self, definition: Resource | Mapping[str, Any]) -> Resource:
        """Create the resource a definition describes, or return the existing one.

        Idempotent: a live resource of the same kind, name and class is
        returned as it is (the oldest, if several match); otherwise the
        definition is added. Safe when several processes init at once.
        """
        wanted = definition if isinstance(definition, Resource) else resource_from_dict(definition)
        wanted.validate()

        def apply(conn: sa.Connection) -> Resource:
            self._advisory_lock(
                conn, f"init\x00{wanted.kind}\x00{wanted.resource_class}\x00{wanted.name}")
            r = resources_table.c
            row = conn.execute(
                select_resources()
                .where(r.kind == wanted.kind, r.name == wanted.name,
                       r.resource_class == wanted.resource_class, r.removed_at.is_(None))
                .order_by(r.id).limit(1)
            ).first()
            if row is not None:
                return from_row(row)
            return self._insert(conn, wanted.copy(id=None), detail="init")

        return self._write(apply)

    # -- consumables -------------------------------------------------------------------

    def increase_quantity(
        self, resource: Resource | str, amount: float, *, token: str | None = None
    ) -> Consumable:
        """Add ``amount`` to a consumable; refused (:class:`QuantityError`) above capacity."""
        return self._change_quantity(resource, amount, +1, token)

    def decrease_quantity(
        self, resource: Resource | str, amount: float, *, token: str | None = None
    ) -> Consumable:
        """Take ``amount`` from a consumable; refused (:class:`QuantityError`) below zero.

        Atomic across processes and threads: the row is locked for the
        read-modify-write, so concurrent decreases never lose one.
        """
        return self._change_quantity(resource, amount, -1, token)

    def _change_quantity(
        self, resource: Resource | str, amount: float, sign: int, token: str | None
    ) -> Consumable:
        verb = "increase" if sign > 0 else "decrease"
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                or not math.isfinite(amount) or amount <= 0:
            raise QuantityError(
                f"{verb}_quantity amount={amount!r}: use a positive finite number "
                f"({'decrease' if sign > 0 else 'increase'}_quantity goes the other way)"
            )

        def apply(conn: sa.Connection) -> Consumable:
            current = self._fetch(conn, resource, for_update=True)
            if not isinstance(current, Consumable):
                raise ResourceKindError(
                    f"{current.name!r} ({current.id}) is a {current.kind}; only consumables "
                    "have a quantity"
                )
            self._guard(conn, [current], token)
            unit = f" {current.unit}" if current.unit else ""
            new = current.quantity + sign * float(amount)
            slack = _REL_TOL * max(1.0, abs(current.quantity), float(amount))
            if new < 0:
                if new < -slack:
                    raise QuantityError(
                        f"insufficient quantity: {current.name!r} ({current.id}) has "
                        f"{current.quantity:g}{unit}, cannot take {amount:g}{unit}"
                    )
                new = 0.0
            if current.capacity is not None and new > current.capacity:
                if new > current.capacity + slack:
                    raise QuantityError(
                        f"{current.name!r} ({current.id}) would hold {new:g}{unit}, above its "
                        f"capacity {current.capacity:g}{unit}; add at most "
                        f"{current.capacity - current.quantity:g}{unit}"
                    )
                new = current.capacity
            after = current.copy(quantity=new)
            self._check_update(conn, current, after)
            return self._save(conn, current, after, ChangeType.UPDATED,
                              detail=f"{verb}_quantity {amount:g}")  # type: ignore[return-value]

        return self._write(apply)

    # -- helpers shared with containers -----------------------------------------------------

    def _descendant_ids(
        self, conn: sa.Connection, resource_id: str, *, removed: bool = False
    ) -> list[str]:
        """Ids of everything inside ``resource_id``, at any depth (one recursive query).

        ``removed`` picks the removed ones instead of the live ones. The LIMIT
        counts every row of the recursion, so damaged parent links that form
        a cycle end in an error instead of an endless query.
        """
        r = resources_table
        tree = (sa.select(r.c.id, r.c.removed_at).where(r.c.parent_id == resource_id)
                .cte("tree", recursive=True))
        tree = tree.union_all(sa.select(r.c.id, r.c.removed_at)
                              .join(tree, r.c.parent_id == tree.c.id))
        cap = _core.SUBTREE_CAP
        rows = conn.execute(sa.select(tree.c.id, tree.c.removed_at).limit(cap + 1)).all()
        if len(rows) > cap:
            raise RegistryValueError(
                f"{resource_id} has more than {cap:,} resources below it, or its parent "
                "links form a cycle (a damaged registry); remove them level by level"
            )
        return [row.id for row in rows if (row.removed_at is not None) == removed]

    def _may_write(self, conn: sa.Connection, resource_id: str, token: str | None) -> bool:
        """Whether this caller may change ``resource_id`` (not leased to someone else)."""
        try:
            self._guard(conn, [self._fetch(conn, resource_id)], token)
        except LockError:
            return False
        return True

    def _last_place(self, conn: sa.Connection, resource_id: str) -> tuple[str | None, str | None]:
        """Where a removed resource sat before its last removal."""
        h = history_table.c
        row = conn.execute(
            sa.select(history_table.c.before).where(
                h.resource_id == resource_id, h.change_type == ChangeType.REMOVED.value
            ).order_by(h.id.desc()).limit(1)
        ).first()
        if row is None or not row.before:
            return None, None
        return row.before.get("parent_id"), row.before.get("key")
