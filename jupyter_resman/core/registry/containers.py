"""Putting resources into containers and taking them out, with capacity checks.

A child's place is two columns of its own row: ``parent_id`` and ``key``
(a canonical string: ``"3"`` in a Row, ``"2,5"`` in a Grid, a zero-padded
sequence number in a Stack or Queue). A unique index on the pair means two
writers can never fill one position, whatever happens above it; the checks
here turn that into clear errors before the database has to.

The container's row is locked for every change of its contents, so capacity
checks and "next position" of a stack cannot race.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..errors import CapacityError, RegistryValueError, ResourceKindError, ResourceNotFoundError
from ._core import ChangeType, RegistryCore, rid
from .resources import (
    Collection,
    Consumable,
    Container,
    Grid,
    Pool,
    Queue,
    Resource,
    Row,
    Slot,
    Stack,
    VoxelGrid,
)
from .rows import from_row
from .schema import resources as resources_table
from .schema import select_resources

__all__ = ["ContainerOps", "decode_key", "encode_key"]

_SEQ_DIGITS = 12  # stack/queue positions sort as text in SQL: zero-padded
MAX_KEY = 200


# -- keys --------------------------------------------------------------------------------


def encode_key(container: Container, key: Any) -> str:
    """The canonical stored form of ``key`` in ``container``; refuses bad or out-of-range keys.

    >>> encode_key(Grid(name="p", rows=8, columns=12), (7, 11))
    '7,11'
    """
    if isinstance(container, Stack):
        raise ResourceKindError(
            f"{container.name!r} is a {container.kind}: use push()/pop(), not keys"
        )
    if isinstance(container, Slot):
        if key not in (None, 0, "0"):
            raise CapacityError(f"{container.name!r} is a slot with one place; pass key=None")
        return "0"
    if isinstance(container, (Collection, Pool)):
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or "\x00" in key:
            raise RegistryValueError(
                f"key {key!r} for {container.name!r}: use {container.key_help} "
                f"(at most {MAX_KEY} characters)"
            )
        return key
    dims: tuple[int, ...] = container.dims  # type: ignore[attr-defined]
    parts = _int_parts(key, len(dims))
    if parts is None:
        raise RegistryValueError(
            f"key {key!r} for {container.name!r} ({container.kind}): use {container.key_help}"
        )
    axes = ("row" if len(dims) > 1 else "index", "column", "layer")
    for value, size, axis in zip(parts, dims, axes):
        if not 0 <= value < size:
            raise CapacityError(
                f"key {key!r} is outside {container.name!r}: {axis} must be 0..{size - 1} "
                f"(the {container.kind} is {'x'.join(map(str, dims))})"
            )
    return ",".join(map(str, parts))


def _int_parts(key: Any, n: int) -> tuple[int, ...] | None:
    if isinstance(key, str):
        try:
            key = tuple(int(p) for p in key.split(","))
        except ValueError:
            return None
    if n == 1 and isinstance(key, int) and not isinstance(key, bool):
        key = (key,)
    if isinstance(key, Sequence) and len(key) == n and all(
        isinstance(p, int) and not isinstance(p, bool) for p in key
    ):
        return tuple(key)
    return None


def decode_key(container: Container, key: str) -> Any:
    """The Python form of a stored key: int (Row, Stack, Queue), tuple (Grid...), str."""
    if isinstance(container, (Row, Stack)):
        return int(key)
    if isinstance(container, (Grid, VoxelGrid)):
        return tuple(int(p) for p in key.split(","))
    if isinstance(container, Slot):
        return None
    return key


def _sort_key(container: Container, key: str) -> Any:
    decoded = decode_key(container, key)
    return (0,) if decoded is None else decoded


# -- operations ------------------------------------------------------------------------------


class ContainerOps(RegistryCore):
    """Container contents (mixed into Registry)."""

    def set_child(
        self, container: Resource | str, key: Any, child: Resource | str, *,
        token: str | None = None, move: bool = False,
    ) -> Resource:
        """Put ``child`` at ``key`` of ``container``; returns the placed child.

        ``child`` may be a new, unsaved resource: it is added in the same
        transaction. A child already in a container is refused unless
        ``move=True``. Raises :class:`CapacityError` when the position is
        taken, out of range or the container is full.
        """

        def apply(conn: sa.Connection) -> Resource:
            placed = child
            if isinstance(child, Resource) and child.id is None:
                placed = self._insert(conn, child)
            return self._place(conn, container, placed, key, token=token, move=move)

        return self._write(apply)

    def push(
        self, container: Resource | str, child: Resource | str, *, token: str | None = None,
        move: bool = False,
    ) -> Resource:
        """Add ``child`` on top of a Stack / at the back of a Queue (or into a Slot or Pool)."""

        def apply(conn: sa.Connection) -> Resource:
            placed = child
            if isinstance(child, Resource) and child.id is None:
                placed = self._insert(conn, child)
            return self._place(conn, container, placed, _PUSH, token=token, move=move)

        return self._write(apply)

    def pop(self, container: Resource | str, *, token: str | None = None) -> Resource:
        """Take the newest child of a Stack / the oldest of a Queue (or a Slot's child).

        The child stays in the registry, at the top level.
        """

        def apply(conn: sa.Connection) -> Resource:
            holder = self._container(conn, container, for_update=True)
            if not isinstance(holder, (Stack, Slot)):
                raise ResourceKindError(
                    f"{holder.name!r} is a {holder.kind}; pop() works on stacks, queues and "
                    "slots; use remove_child(container, key)"
                )
            r = resources_table.c
            order = r.key.asc() if isinstance(holder, Queue) else r.key.desc()
            row = conn.execute(
                select_resources().where(r.parent_id == holder.id, r.removed_at.is_(None))
                .order_by(order).limit(1).with_for_update()
            ).first()
            if row is None:
                raise ResourceNotFoundError(f"{holder.name!r} ({holder.id}) is empty")
            return self._take_out(conn, holder, from_row(row), token)

        return self._write(apply)

    def remove_child(
        self, container: Resource | str, key: Any = None, *, token: str | None = None
    ) -> Resource:
        """Take the child at ``key`` out of ``container`` (it stays in the registry)."""

        def apply(conn: sa.Connection) -> Resource:
            holder = self._container(conn, container, for_update=True)
            stored = self._stored_key(holder, key)
            r = resources_table.c
            row = conn.execute(
                select_resources().where(r.parent_id == holder.id, r.key == stored)
                .with_for_update()
            ).first()
            if row is None:
                raise ResourceNotFoundError(f"nothing at {key!r} in {holder.name!r} ({holder.id})")
            return self._take_out(conn, holder, from_row(row), token)

        return self._write(apply)

    def get_child(self, container: Resource | str, key: Any = None) -> Resource | None:
        """The child at ``key`` (``None`` if the position is empty)."""

        def read(conn: sa.Connection) -> Resource | None:
            holder = self._container(conn, container)
            stored = self._stored_key(holder, key)
            r = resources_table.c
            row = conn.execute(
                select_resources().where(r.parent_id == holder.id, r.key == stored,
                                                 r.removed_at.is_(None))
            ).first()
            return from_row(row) if row is not None else None

        return self._read(read)

    def children(self, container: Resource | str) -> list[Resource]:
        """The container's children in key order (a stack: bottom first; a queue: front first)."""
        return list(self.contents(container).values())

    def contents(self, container: Resource | str) -> dict[Any, Resource]:
        """``{key: child}`` in key order, keys in Python form (``(row, col)`` in a Grid)."""

        def read(conn: sa.Connection) -> dict[Any, Resource]:
            holder = self._container(conn, container)
            r = resources_table.c
            rows = list(conn.execute(
                select_resources().where(r.parent_id == holder.id, r.removed_at.is_(None))
            ).all())
            rows.sort(key=lambda row: _sort_key(holder, row.key))
            return {decode_key(holder, row.key): from_row(row) for row in rows}

        return self._read(read)

    # -- internals -------------------------------------------------------------------------

    def _container(self, conn: sa.Connection, container: Resource | str, *,
                   for_update: bool = False) -> Container:
        holder = self._fetch(conn, container, for_update=for_update)
        if not isinstance(holder, Container):
            raise ResourceKindError(
                f"{holder.name!r} ({holder.id}) is a {holder.kind}, not a container"
            )
        return holder

    @staticmethod
    def _stored_key(holder: Container, key: Any) -> str:
        if isinstance(holder, Stack):
            if isinstance(key, int) and not isinstance(key, bool):
                return str(key).zfill(_SEQ_DIGITS)
            raise ResourceKindError(f"{holder.name!r} is a {holder.kind}: use pop()")
        return encode_key(holder, key)

    def _take_out(self, conn: sa.Connection, holder: Container, child: Resource,
                  token: str | None) -> Resource:
        self._guard(conn, [holder, child], token)
        return self._save(conn, child, child.copy(parent_id=None, key=None), ChangeType.UPDATED,
                          detail=f"taken out of {holder.id}[{child.key}]")

    def _place(self, conn: sa.Connection, container: Resource | str, child: Resource | str,
               key: Any, *, token: str | None, move: bool) -> Resource:
        locked = self._fetch_many(conn, [container, child], for_update=True)
        holder, item = locked[rid(container)], locked[rid(child)]
        if not isinstance(holder, Container):
            raise ResourceKindError(
                f"{holder.name!r} ({holder.id}) is a {holder.kind}, not a container"
            )
        if key is _PUSH:
            stored = self._next_key(conn, holder, item)
        else:
            stored = encode_key(holder, key)
        if item.parent_id == holder.id and item.key == stored:
            return item
        if item.id == holder.id or (isinstance(item, Container)
                                    and item.id in self._ancestor_ids(conn, rid(holder))):
            raise RegistryValueError(
                f"cannot put {item.name!r} inside {holder.name!r}: it would contain itself"
            )
        guarded: list[Resource] = [holder, item]
        if item.parent_id is not None:
            if not move:
                raise CapacityError(
                    f"{item.name!r} ({item.id}) is already in {item.parent_id}[{item.key}]; take "
                    "it out first (remove_child/pop) or pass move=True"
                )
            if item.parent_id != holder.id:
                guarded.append(self._fetch(conn, item.parent_id, for_update=True,
                                           include_removed=True))
        self._guard(conn, guarded, token)
        self._check_fit(conn, holder, stored, item)
        detail = f"placed in {holder.id}[{stored}]"
        if item.parent_id is not None:
            detail = f"moved from {item.parent_id}[{item.key}] to {holder.id}[{stored}]"
        return self._save(conn, item, item.copy(parent_id=holder.id, key=stored),
                          ChangeType.UPDATED, detail=detail)

    def _next_key(self, conn: sa.Connection, holder: Container, item: Resource) -> str:
        if isinstance(holder, Stack):
            r = resources_table.c
            top = conn.execute(
                sa.select(sa.func.max(r.key)).where(r.parent_id == holder.id)
            ).scalar()
            return str(int(top) + 1 if top is not None else 0).zfill(_SEQ_DIGITS)
        if isinstance(holder, Slot):
            return "0"
        if isinstance(holder, Pool):
            return encode_key(holder, item.name)
        raise ResourceKindError(
            f"{holder.name!r} is a {holder.kind}; push() works on stacks, queues, slots and "
            f"pools; use set_child(container, key, child) with {holder.key_help}"
        )

    def _occupants(self, conn: sa.Connection, holder: Container,
                   exclude: str | None = None) -> list[Any]:
        r = resources_table.c
        query = sa.select(r.id, r.name, r.key, r.quantity).where(
            r.parent_id == holder.id, r.removed_at.is_(None))
        if exclude is not None:
            query = query.where(r.id != exclude)
        return list(conn.execute(query).all())

    def _check_fit(self, conn: sa.Connection, holder: Container, stored: str,
                   item: Resource) -> None:
        """Raise :class:`CapacityError` unless ``item`` fits at ``stored`` in ``holder``."""
        if isinstance(holder, Pool):
            if not isinstance(item, Consumable):
                raise ResourceKindError(
                    f"{holder.name!r} is a pool of consumables; {item.name!r} is a {item.kind}"
                )
            if holder.unit and item.unit and holder.unit != item.unit:
                raise RegistryValueError(
                    f"{item.name!r} is measured in {item.unit}, the pool {holder.name!r} in "
                    f"{holder.unit}; convert it first"
                )
        others = self._occupants(conn, holder, exclude=item.id)
        for other in others:
            if other.key == stored:
                raise CapacityError(
                    f"{holder.name!r}[{stored}] is taken by {other.name!r} ({other.id}); take "
                    "it out first (remove_child) or choose another key"
                )
        slots = holder.capacity_slots if not isinstance(holder, Pool) else None
        if slots is not None and len(others) >= slots:
            raise CapacityError(
                f"{holder.name!r} ({holder.id}) is full: {len(others)} of {slots} places used"
            )
        if isinstance(holder, Pool) and isinstance(item, Consumable) \
                and holder.capacity is not None:
            total = sum(o.quantity or 0.0 for o in others) + item.quantity
            if total > holder.capacity:
                raise CapacityError(
                    f"{holder.name!r} would hold {total:g}{_unit(holder)}, above its capacity "
                    f"{holder.capacity:g}{_unit(holder)}"
                )

    def _fits(self, conn: sa.Connection, parent_id: str, key: str | None, child: Resource) -> bool:
        """Whether ``child`` could go back to ``parent_id[key]`` (used by restore)."""
        r = resources_table.c
        row = conn.execute(select_resources().where(r.id == parent_id)
                           .with_for_update()).first()
        if row is None or row.removed_at is not None or key is None:
            return False
        holder = from_row(row)
        if not isinstance(holder, Container):
            return False
        try:
            self._check_fit(conn, holder, key, child)
        except (CapacityError, RegistryValueError, ResourceKindError):
            return False
        return True

    def _ancestor_ids(self, conn: sa.Connection, resource_id: str) -> list[str]:
        """Ids from the parent of ``resource_id`` upwards, closest first (one recursive query)."""
        r = resources_table
        up = (sa.select(r.c.parent_id.label("id"), sa.literal(1).label("depth"))
              .where(r.c.id == resource_id).cte("up", recursive=True))
        up = up.union_all(
            sa.select(r.c.parent_id, up.c.depth + 1).join(up, r.c.id == up.c.id)
            .where(up.c.depth < 10_000)  # a corrupted cycle must not loop forever
        )
        rows = conn.execute(sa.select(up.c.id).where(up.c.id.is_not(None))
                            .order_by(up.c.depth)).all()
        return [row.id for row in rows]

    def _check_update(self, conn: sa.Connection, before: Resource, after: Resource) -> None:
        """Refuse changes that would leave contents that no longer fit."""
        if isinstance(after, Container) and after.snapshot() != before.snapshot():
            others = self._occupants(conn, after)
            slots = after.capacity_slots if not isinstance(after, Pool) else None
            if slots is not None and len(others) > slots:
                raise CapacityError(
                    f"{after.name!r} holds {len(others)} resources; it cannot shrink to {slots}"
                )
            if isinstance(after, (Row, Grid, VoxelGrid)):
                for other in others:
                    try:
                        encode_key(after, other.key)
                    except CapacityError:
                        raise CapacityError(
                            f"{after.name!r} cannot shrink to {'x'.join(map(str, after.dims))}: "
                            f"{other.name!r} sits at {other.key}"
                        ) from None
            if isinstance(after, Pool) and after.capacity is not None:
                total = sum(o.quantity or 0.0 for o in others)
                if total > after.capacity:
                    raise CapacityError(
                        f"{after.name!r} holds {total:g}{_unit(after)}; its capacity cannot "
                        f"drop to {after.capacity:g}"
                    )
        if (isinstance(after, Consumable) and after.parent_id is not None
                and after.quantity > before.quantity):  # type: ignore[attr-defined]
            row = conn.execute(
                select_resources().where(resources_table.c.id == after.parent_id)
                .with_for_update()
            ).first()
            pool = from_row(row) if row is not None else None
            if isinstance(pool, Pool) and pool.capacity is not None:
                others = self._occupants(conn, pool, exclude=after.id)
                total = sum(o.quantity or 0.0 for o in others) + after.quantity
                if total > pool.capacity:
                    raise CapacityError(
                        f"the pool {pool.name!r} would hold {total:g}{_unit(pool)}, above its "
                        f"capacity {pool.capacity:g}{_unit(pool)}"
                    )


class _PushMarker:
    def __repr__(self) -> str:
        return "<push>"


_PUSH: Any = _PushMarker()


def _unit(resource: Any) -> str:
    return f" {resource.unit}" if getattr(resource, "unit", None) else ""
