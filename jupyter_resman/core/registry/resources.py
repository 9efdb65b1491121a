"""The kinds of resource the registry knows, as plain dataclasses.

A resource object is a *snapshot*: the registry returns a fresh one from
every read and write, and changing an object's fields changes nothing until
it is passed back to :meth:`Registry.update`. Objects carry no connection,
so they pickle, compare and print like any other value.

>>> plate = Grid(name="plate 1", resource_class="plate", rows=8, columns=12)
>>> plate.kind, plate.capacity_slots
('grid', 96)
>>> Consumable(name="PBS", quantity=500, capacity=1000, unit="mL").to_dict()["quantity"]
500.0

Kinds
-----
``Asset``       a thing that is not used up (sample, labware, instrument, dataset file)
``Consumable``  has a ``quantity`` (optionally bounded by ``capacity``) in a ``unit``
``Collection``  a container with children by arbitrary string key
``Row``         1-D container, keys ``0 .. length-1``
``Grid``        2-D container, keys ``(row, column)``
``VoxelGrid``   3-D container, keys ``(row, column, layer)``
``Slot``        holds zero or one child
``Stack``       LIFO: ``push`` / ``pop`` the newest
``Queue``       FIFO: ``push`` / ``pop`` the oldest
``Pool``        mixed consumables whose total quantity is bounded by ``capacity``
``Dataset``     an asset registered through :meth:`Registry.register_dataset`
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from ulid import ULID

from ..errors import RegistryValueError, ResourceKindError

__all__ = [
    "KINDS",
    "Asset",
    "Collection",
    "Consumable",
    "Container",
    "Dataset",
    "Grid",
    "Pool",
    "Queue",
    "Resource",
    "Row",
    "Slot",
    "Stack",
    "VoxelGrid",
    "new_id",
    "resource_from_dict",
]

MAX_NAME = 512
# Fields every kind stores in its own column (the rest live in ``dims``/quantity columns).
_TIME_FIELDS = ("created_at", "updated_at", "removed_at")


# -- ids ------------------------------------------------------------------------

_id_lock = threading.Lock()
_last_id = 0


def new_id() -> str:
    """A new ULID string, strictly increasing within this process.

    ULIDs sort by creation time; two made in the same millisecond would sort
    at random, so the second takes the first plus one. A forked child forgets
    the parent's last id, or both would hand out the same "plus one".
    """
    global _last_id
    with _id_lock:
        value = int(ULID())
        if value <= _last_id:
            value = _last_id + 1
        _last_id = value
    return str(ULID.from_int(value))


def _forget_last_id() -> None:
    global _last_id
    _last_id = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_last_id)


def to_datetime(value: float | None) -> _dt.datetime | None:
    """Epoch seconds (as stored) to an aware UTC datetime."""
    if value is None:
        return None
    return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc)


def to_epoch(value: Any, *, name: str = "time") -> float | None:
    """A datetime, ISO string or epoch number to epoch seconds (naive = local time)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RegistryValueError(f"{name}={value!r} is not a time; use a datetime or ISO string")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value)
        except ValueError:
            raise RegistryValueError(
                f"{name}={value!r} is not a time; use a datetime or an ISO string like "
                "'2024-01-31' or '2024-01-31T12:00:00+00:00'"
            ) from None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day).timestamp()
    raise RegistryValueError(f"{name}={value!r} is not a time; use a datetime or ISO string")


# -- the base class ---------------------------------------------------------------


@dataclasses.dataclass(eq=True, repr=False)
class Resource:
    """Fields common to every kind; use a concrete kind (``Asset``, ``Grid``...)."""

    kind: ClassVar[str] = "resource"
    #: kind-specific fields, stored in the quantity/capacity/unit/dims columns
    extra_fields: ClassVar[tuple[str, ...]] = ()

    name: str = ""
    resource_class: str = ""
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    owner: str | None = None
    # Set by the registry; leave them alone when creating a resource.
    id: str | None = None
    parent_id: str | None = None
    key: str | None = None
    version: int = 0
    created: float | None = None
    updated: float | None = None
    removed: float | None = None

    def __post_init__(self) -> None:
        if type(self) is Resource:
            raise ResourceKindError(
                "Resource is abstract; create an Asset, Consumable, Grid, Stack... instead"
            )

    # Times are stored as epoch floats (cheap to build thousands of objects);
    # these properties give the datetimes people want to see.
    @property
    def created_at(self) -> _dt.datetime | None:
        """When the resource was added (aware UTC datetime)."""
        return to_datetime(self.created)

    @property
    def updated_at(self) -> _dt.datetime | None:
        """When the resource last changed (aware UTC datetime)."""
        return to_datetime(self.updated)

    @property
    def removed_at(self) -> _dt.datetime | None:
        """When the resource was removed, or ``None`` while it is live."""
        return to_datetime(self.removed)

    @property
    def is_removed(self) -> bool:
        return self.removed is not None

    @property
    def is_container(self) -> bool:
        return isinstance(self, Container)

    def validate(self) -> None:
        """Raise :class:`RegistryValueError` when a field cannot be stored."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegistryValueError(f"a {self.kind} needs a name, e.g. name='sample 1'")
        if len(self.name) > MAX_NAME or "\x00" in self.name:
            raise RegistryValueError(
                f"name {self.name[:40]!r}... is too long or contains NUL; keep it under "
                f"{MAX_NAME} printable characters"
            )
        if not isinstance(self.resource_class, str):
            raise RegistryValueError(f"resource_class={self.resource_class!r} must be a string")
        if not isinstance(self.attributes, Mapping):
            raise RegistryValueError(
                f"attributes={self.attributes!r} must be a dict of JSON values"
            )

    # -- serialisation ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every field with times as epoch floats: what history and templates store."""
        data = {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "resource_class": self.resource_class,
            "owner": self.owner,
            "attributes": dict(self.attributes),
            "parent_id": self.parent_id,
            "key": self.key,
            "version": self.version,
            "created_at": self.created,
            "updated_at": self.updated,
            "removed_at": self.removed,
        }
        for name in self.extra_fields:
            data[name] = getattr(self, name)
        return data

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (times as ISO 8601 strings) for tables, trees and REST."""
        data = self.snapshot()
        for name in _TIME_FIELDS:
            when = to_datetime(data[name])
            data[name] = when.isoformat() if when is not None else None
        return data

    def definition(self) -> dict[str, Any]:
        """The fields that define a resource (no id, placement, times or version)."""
        data = self.snapshot()
        for name in ("id", "parent_id", "key", "version", *_TIME_FIELDS):
            del data[name]
        return data

    def copy(self, **changes: Any) -> Resource:
        """A copy with ``changes`` applied (attributes copied, not shared)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["attributes"] = dict(self.attributes)
        fields.update(changes)
        return type(self)(**fields)

    def __repr__(self) -> str:
        where = f", in {self.parent_id}[{self.key}]" if self.parent_id else ""
        gone = ", removed" if self.removed is not None else ""
        extra = "".join(f", {n}={getattr(self, n)!r}" for n in self.extra_fields)
        return (f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, "
                f"resource_class={self.resource_class!r}{extra}{where}{gone})")


# -- kinds -----------------------------------------------------------------------------


@dataclasses.dataclass(eq=True, repr=False)
class Asset(Resource):
    """A resource that is not used up: a sample, a plate, an instrument, a file."""

    kind: ClassVar[str] = "asset"


@dataclasses.dataclass(eq=True, repr=False)
class Dataset(Asset):
    """An asset registered as a dataset; its metadata lives in ``attributes``."""

    kind: ClassVar[str] = "dataset"


@dataclasses.dataclass(eq=True, repr=False)
class Consumable(Resource):
    """A resource with a quantity that is used up and refilled.

    ``capacity`` (``None`` = unbounded) caps the quantity; the registry refuses
    any change that would take it below zero or above the capacity.
    """

    kind: ClassVar[str] = "consumable"
    extra_fields: ClassVar[tuple[str, ...]] = ("quantity", "capacity", "unit")

    quantity: float = 0.0
    capacity: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        self.quantity = _number(self.quantity, "quantity")
        if self.capacity is not None:
            self.capacity = _number(self.capacity, "capacity")

    def validate(self) -> None:
        super().validate()
        if self.quantity < 0:
            raise RegistryValueError(f"{self.name}: quantity {self.quantity:g} is negative")
        if self.capacity is not None and self.quantity > self.capacity:
            raise RegistryValueError(
                f"{self.name}: quantity {self.quantity:g} is above its capacity "
                f"{self.capacity:g}; raise capacity or lower quantity"
            )


@dataclasses.dataclass(eq=True, repr=False)
class Container(Resource):
    """Base of the kinds that hold other resources; use a concrete container."""

    kind: ClassVar[str] = "container"
    #: how keys look for this kind, shown in error messages
    key_help: ClassVar[str] = "a key"

    def __post_init__(self) -> None:
        if type(self) is Container:
            raise ResourceKindError("Container is abstract; use Collection, Grid, Stack...")

    @property
    def capacity_slots(self) -> int | None:
        """How many children fit (``None`` = no limit)."""
        return None


@dataclasses.dataclass(eq=True, repr=False)
class _Bounded(Container):
    """A container that holds at most ``capacity`` children (``None`` = any number)."""

    extra_fields: ClassVar[tuple[str, ...]] = ("capacity",)

    capacity: int | None = None

    def __post_init__(self) -> None:
        self.capacity = _count(self.capacity, "capacity")

    @property
    def capacity_slots(self) -> int | None:
        return self.capacity


@dataclasses.dataclass(eq=True, repr=False)
class Collection(_Bounded):
    """Children by arbitrary string key (``capacity`` = most children, ``None`` = any)."""

    kind: ClassVar[str] = "collection"
    key_help: ClassVar[str] = "any non-empty string"


@dataclasses.dataclass(eq=True, repr=False)
class Row(Container):
    """A 1-D container: keys ``0 .. length-1``."""

    kind: ClassVar[str] = "row"
    extra_fields: ClassVar[tuple[str, ...]] = ("length",)
    key_help: ClassVar[str] = "an int index 0 <= i < length"

    length: int = 1

    def __post_init__(self) -> None:
        self.length = _size(self.length, "length")

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def capacity_slots(self) -> int:
        return self.length


@dataclasses.dataclass(eq=True, repr=False)
class Grid(Container):
    """A 2-D container (plates, racks): keys ``(row, column)``."""

    kind: ClassVar[str] = "grid"
    extra_fields: ClassVar[tuple[str, ...]] = ("rows", "columns")
    key_help: ClassVar[str] = "a (row, column) pair of ints"

    rows: int = 1
    columns: int = 1

    def __post_init__(self) -> None:
        self.rows = _size(self.rows, "rows")
        self.columns = _size(self.columns, "columns")

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.rows, self.columns)

    @property
    def capacity_slots(self) -> int:
        return self.rows * self.columns


@dataclasses.dataclass(eq=True, repr=False)
class VoxelGrid(Container):
    """A 3-D container: keys ``(row, column, layer)``."""

    kind: ClassVar[str] = "voxelgrid"
    extra_fields: ClassVar[tuple[str, ...]] = ("rows", "columns", "layers")
    key_help: ClassVar[str] = "a (row, column, layer) triple of ints"

    rows: int = 1
    columns: int = 1
    layers: int = 1

    def __post_init__(self) -> None:
        self.rows = _size(self.rows, "rows")
        self.columns = _size(self.columns, "columns")
        self.layers = _size(self.layers, "layers")

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.rows, self.columns, self.layers)

    @property
    def capacity_slots(self) -> int:
        return self.rows * self.columns * self.layers


@dataclasses.dataclass(eq=True, repr=False)
class Slot(Container):
    """Holds zero or one child (a plate nest, an instrument deck position)."""

    kind: ClassVar[str] = "slot"
    key_help: ClassVar[str] = "no key (a slot has one place)"

    @property
    def capacity_slots(self) -> int:
        return 1


@dataclasses.dataclass(eq=True, repr=False)
class Stack(_Bounded):
    """LIFO container: ``push`` puts on top, ``pop`` takes the newest."""

    kind: ClassVar[str] = "stack"
    key_help: ClassVar[str] = "no key (use push/pop)"


@dataclasses.dataclass(eq=True, repr=False)
class Queue(Stack):
    """FIFO container: ``push`` appends, ``pop`` takes the oldest."""

    kind: ClassVar[str] = "queue"


@dataclasses.dataclass(eq=True, repr=False)
class Pool(Container):
    """Mixed consumables in one place; their total quantity is bounded by ``capacity``."""

    kind: ClassVar[str] = "pool"
    extra_fields: ClassVar[tuple[str, ...]] = ("capacity", "unit")
    key_help: ClassVar[str] = "any non-empty string (default: the consumable's name)"

    capacity: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.capacity is not None:
            self.capacity = _number(self.capacity, "capacity")


KINDS: dict[str, type[Resource]] = {
    cls.kind: cls
    for cls in (Asset, Dataset, Consumable, Collection, Row, Grid, VoxelGrid, Slot, Stack,
                Queue, Pool)
}


def kind_class(kind: str) -> type[Resource]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ResourceKindError(
            f"unknown resource kind {kind!r}; use one of {', '.join(sorted(KINDS))}"
        ) from None


def resource_from_dict(data: Mapping[str, Any]) -> Resource:
    """Rebuild a resource from :meth:`Resource.snapshot` or :meth:`Resource.to_dict` output."""
    cls = kind_class(str(data.get("kind", "")))
    values: dict[str, Any] = {
        "name": data.get("name", ""),
        "resource_class": data.get("resource_class") or "",
        "attributes": dict(data.get("attributes") or {}),
        "owner": data.get("owner"),
        "id": data.get("id"),
        "parent_id": data.get("parent_id"),
        "key": data.get("key"),
        "version": int(data.get("version") or 0),
        "created": to_epoch(data.get("created_at")),
        "updated": to_epoch(data.get("updated_at")),
        "removed": to_epoch(data.get("removed_at")),
    }
    for name in cls.extra_fields:
        if name in data and data[name] is not None:
            values[name] = data[name]
    return cls(**values)


# -- field checks ------------------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise RegistryValueError(f"{name}={value!r} is not a number") from None
    value = float(value)
    if not math.isfinite(value):
        raise RegistryValueError(f"{name}={value!r} must be a finite number")
    return value


def _count(value: Any, name: str) -> int | None:
    """A limit: an int >= 0, or None for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RegistryValueError(f"{name}={value!r} must be an int >= 0 or None (no limit)")
    return value


def _size(value: Any, name: str) -> int:
    """A dimension: a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RegistryValueError(f"{name}={value!r} must be a positive int")
    return value
