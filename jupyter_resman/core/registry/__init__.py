"""The registry of datasets, artifacts and lab resources (``session.registry``).

SQLAlchemy Core over SQLite in the home by default, PostgreSQL with
``RESMAN_REGISTRY_URL``; schema migrations (Alembic) run on open.

What front ends (magics, CLI, dashboard, REST) need, each JSON-able via ``to_dict()``:

=====================================  =================================================
``query(..., as_frame=True)``          a table of resources (or objects without it)
``get(id).to_dict()``                  one resource
``hierarchy(id, details=True).tree()`` a nested tree view; ``.to_dict()`` the id maps
``history(id, as_frame=True)``         a change log (``HistoryEntry.to_dict()`` each)
``list_templates(as_frame=True)``      templates; ``template_info(name)`` one of them
``list_datasets(as_frame=True)``       datasets; ``get_dataset(id).to_dict()`` one
``locks()``                            who holds what (``LockInfo.to_dict()``)
``describe()``                         counts by kind, backend, schema revision
=====================================  =================================================

>>> import tempfile, jupyter_resman as rm
>>> from jupyter_resman.core.registry import Asset, Grid
>>> with rm.Session(home=tempfile.mkdtemp()) as s:
...     reg = s.registry
...     plate = reg.add(Grid(name="plate 1", resource_class="plate", rows=8, columns=12))
...     well = reg.set_child(plate, (0, 0), Asset(name="A1", resource_class="sample"))
...     reg.hierarchy(well).ancestor_ids == [plate.id]
True
"""

from __future__ import annotations

from .datasets import DatasetMetadata, check_dataset_id
from .files import describe_csv
from .history import ChangeType, HistoryEntry
from .locks import Lease, LockedResource, LockInfo
from .query import Hierarchy
from .registry import Registry
from .resources import (
    KINDS,
    Asset,
    Collection,
    Consumable,
    Container,
    Dataset,
    Grid,
    Pool,
    Queue,
    Resource,
    Row,
    Slot,
    Stack,
    VoxelGrid,
    resource_from_dict,
)
from .templates import Template

__all__ = [
    "KINDS",
    "Asset",
    "ChangeType",
    "Collection",
    "Consumable",
    "Container",
    "Dataset",
    "DatasetMetadata",
    "Grid",
    "Hierarchy",
    "HistoryEntry",
    "Lease",
    "LockInfo",
    "LockedResource",
    "Pool",
    "Queue",
    "Registry",
    "Resource",
    "Row",
    "Slot",
    "Stack",
    "Template",
    "VoxelGrid",
    "check_dataset_id",
    "describe_csv",
    "resource_from_dict",
]
