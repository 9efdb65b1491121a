"""Resource objects to and from ``resources`` rows.

Every query that returns resources goes through :func:`from_row`, so it is
written for speed; :func:`to_columns` is its inverse for inserts and updates.
"""

from __future__ import annotations

import json
from typing import Any

from .resources import (
    KINDS,
    Collection,
    Consumable,
    Grid,
    Pool,
    Resource,
    Row,
    Stack,
    VoxelGrid,
    kind_class,
)

__all__ = ["from_row", "to_columns"]

_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    """``json.loads`` without its two whitespace regex scans (the text is ours: compact)."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace (a hand edit), or a real error
    return value if end == len(text) else json.loads(text)


def to_columns(resource: Resource) -> dict[str, Any]:
    """The column values of ``resource`` (without id, placement, times or version)."""
    values: dict[str, Any] = {
        "kind": resource.kind,
        "name": resource.name,
        "resource_class": resource.resource_class,
        "owner": resource.owner,
        "attributes": dict(resource.attributes),
        "quantity": None,
        "capacity": None,
        "unit": None,
        "dims": None,
    }
    if isinstance(resource, Consumable):
        values.update(quantity=resource.quantity, capacity=resource.capacity, unit=resource.unit)
    elif isinstance(resource, (Row, Grid, VoxelGrid)):
        values["dims"] = list(resource.dims)
    elif isinstance(resource, Pool):
        values.update(capacity=resource.capacity, unit=resource.unit)
    elif isinstance(resource, (Collection, Stack)):
        values["capacity"] = resource.capacity
    return values


_ROW_WIDTH = 16  # the columns of ``resources``, in table order (schema.RESOURCE_ROW)


def from_row(row: Any) -> Resource:
    """Build the right kind from a row of ``schema.select_resources()``.

    Hot path of every query (a 1,000-row result calls it 1,000 times): the
    row is unpacked by position, JSON text decoded with one ``json.loads``,
    and the object filled in directly instead of going through ``__init__``
    and validation, which a stored row has already passed.
    """
    (rid, kind, name, resource_class, owner, attributes, parent_id, key, quantity, capacity,
     unit, dims, created, updated, removed, version) = (
        row if len(row) == _ROW_WIDTH else row[:_ROW_WIDTH])
    try:
        cls, shape = _SHAPES[kind]
    except KeyError:
        kind_class(kind)  # raises the helpful error
        raise
    obj = object.__new__(cls)
    if type(attributes) is str:
        attributes = _loads(attributes)
    obj.__dict__.update(
        name=name, resource_class=resource_class, attributes=attributes, owner=owner, id=rid,
        parent_id=parent_id, key=key, version=version, created=created, updated=updated,
        removed=removed,
    )
    if shape:
        d = obj.__dict__
        if shape == _CONSUMABLE:
            d["quantity"] = quantity
            d["capacity"] = capacity
            d["unit"] = unit
        elif shape == _POOL:
            d["capacity"] = capacity
            d["unit"] = unit
        elif shape == _COUNTED:
            d["capacity"] = None if capacity is None else int(capacity)
        else:
            if type(dims) is str:
                dims = _loads(dims)
            for field, value in zip(cls.extra_fields, dims or ()):
                d[field] = int(value)
    return obj


_PLAIN, _CONSUMABLE, _POOL, _COUNTED, _DIMS = range(5)


def _shape(cls: type[Resource]) -> int:
    if not cls.extra_fields:
        return _PLAIN
    if issubclass(cls, Consumable):
        return _CONSUMABLE
    if issubclass(cls, Pool):
        return _POOL
    if issubclass(cls, (Collection, Stack)):
        return _COUNTED
    return _DIMS


_SHAPES = {kind: (cls, _shape(cls)) for kind, cls in KINDS.items()}
