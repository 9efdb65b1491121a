"""Datasets: registered on top of the resource registry, each with a managed workspace.

A dataset is a resource of kind ``dataset`` (so it has history, soft delete,
locks and queries like any other) whose ``attributes`` hold its metadata;
the ``datasets`` table maps the user's dataset id (``"adult"``) to it.

Its workspace is ``<home>/datasets/<id>/`` with ``metadata.json``,
``embeddings/`` and ``cache/``. Dataset ids are checked before they touch the
file system: one id, one folder directly inside ``datasets/``, never a path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import RegistryValueError, ResourceNotFoundError
from ..home import Home, ensure_private_dir
from ._core import ChangeType, RegistryCore
from .resources import Dataset, Resource, to_datetime
from .rows import from_row
from .schema import datasets as datasets_table
from .schema import resources as resources_table
from .schema import select_resources

if TYPE_CHECKING:
    import pandas

__all__ = ["DatasetMetadata", "DatasetOps", "check_dataset_id"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
WORKSPACE_PARTS = ("embeddings", "cache")
_META_KEYS = ("source_type", "file_path", "num_samples", "num_features", "num_classes",
              "task_type", "target_column", "description", "tags", "extra")


def check_dataset_id(dataset_id: Any) -> str:
    """Return ``dataset_id`` if it is a safe folder name, else raise :class:`RegistryValueError`.

    >>> check_dataset_id("adult_1590")
    'adult_1590'
    >>> check_dataset_id("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jupyter_resman.core.errors.RegistryValueError: dataset id '../etc' is not allowed...
    """
    if not isinstance(dataset_id, str) or not _ID.match(dataset_id) or ".." in dataset_id:
        raise RegistryValueError(
            f"dataset id {dataset_id!r} is not allowed: use 1-200 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, without '..' (e.g. 'adult_1590'); an id "
            "names one folder inside the datasets folder and can never be a path"
        )
    return dataset_id


@dataclasses.dataclass
class DatasetMetadata:
    """What the registry knows about a dataset.

    ``id`` names it (and its workspace folder); the rest describes it. The
    registry fills in ``resource_id``, ``registered`` and ``updated``.
    """

    id: str
    name: str
    source_type: str = "csv"
    file_path: str | None = None
    num_samples: int | None = None
    num_features: int | None = None
    num_classes: int | None = None
    task_type: str | None = None
    target_column: str | None = None
    description: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    resource_id: str | None = None
    registered: float | None = None
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.file_path is not None:
            self.file_path = str(self.file_path)

    @property
    def registered_at(self) -> _dt.datetime | None:
        return to_datetime(self.registered)

    @property
    def updated_at(self) -> _dt.datetime | None:
        return to_datetime(self.updated)

    def attributes(self) -> dict[str, Any]:
        """The metadata as stored in the resource's attributes."""
        data = {key: getattr(self, key) for key in _META_KEYS}
        data["dataset_id"] = self.id
        data["tags"] = list(self.tags)
        data["extra"] = dict(self.extra)
        return data

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (also what ``metadata.json`` holds)."""
        data = {"id": self.id, "name": self.name, **self.attributes()}
        del data["dataset_id"]
        data["resource_id"] = self.resource_id
        for key in ("registered_at", "updated_at"):
            when = getattr(self, key)
            data[key] = when.isoformat() if when is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetMetadata:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    @classmethod
    def from_resource(cls, resource: Resource, dataset_id: str | None = None) -> DatasetMetadata:
        attrs = resource.attributes
        return cls(
            id=dataset_id or attrs.get("dataset_id"),  # type: ignore[arg-type]
            name=resource.name,
            **{key: attrs[key] for key in _META_KEYS if key in attrs},
            resource_id=resource.id,
            registered=resource.created,
            updated=resource.updated,
        )


class DatasetOps(RegistryCore):
    """Dataset registration and workspaces (mixed into Registry)."""

    _home: Home

    def register_dataset(
        self, metadata: DatasetMetadata, *, owner: str | None = None
    ) -> DatasetMetadata:
        """Register (or update) a dataset; writes its workspace's ``metadata.json``.

        Registering an id again updates the metadata (recorded in history);
        a removed dataset comes back.
        """
        return self.register_datasets([metadata], owner=owner)[0]

    def register_datasets(
        self, items: Iterable[DatasetMetadata], *, owner: str | None = None
    ) -> list[DatasetMetadata]:
        """Register many datasets in one transaction (all or none)."""
        metas = list(items)
        for meta in metas:
            check_dataset_id(meta.id)
            if not isinstance(meta.name, str) or not meta.name.strip():
                raise RegistryValueError(f"dataset {meta.id!r} needs a name")

        def apply(conn: sa.Connection) -> list[DatasetMetadata]:
            return [self._register(conn, meta, owner) for meta in metas]

        saved = self._write(apply)
        for meta in saved:
            self._write_metadata_file(meta)
        return saved

    def _register(
        self, conn: sa.Connection, meta: DatasetMetadata, owner: str | None
    ) -> DatasetMetadata:
        self._advisory_lock(conn, f"dataset\x00{meta.id}")
        row = conn.execute(sa.select(datasets_table.c.resource_id)
                           .where(datasets_table.c.id == meta.id)).first()
        wanted = Dataset(name=meta.name, resource_class="dataset", attributes=meta.attributes(),
                         owner=owner)
        if row is None:
            saved = self._insert(conn, wanted, detail=f"registered dataset {meta.id}")
            conn.execute(datasets_table.insert().values(id=meta.id, resource_id=saved.id))
            return DatasetMetadata.from_resource(saved, meta.id)
        current = self._fetch(conn, row.resource_id, for_update=True, include_removed=True)
        self._guard(conn, [current], None)
        after = current.copy(name=wanted.name, attributes=wanted.attributes, removed=None,
                             owner=owner if owner is not None else current.owner)
        if after == current:
            return DatasetMetadata.from_resource(current, meta.id)
        change = ChangeType.RESTORED if current.removed is not None else ChangeType.UPDATED
        saved = self._save(conn, current, after, change, detail=f"re-registered dataset {meta.id}")
        return DatasetMetadata.from_resource(saved, meta.id)

    def get_dataset(self, dataset_id: str) -> DatasetMetadata:
        """The metadata of a registered dataset (:class:`ResourceNotFoundError` if none)."""
        check_dataset_id(dataset_id)

        def read(conn: sa.Connection) -> DatasetMetadata:
            row = conn.execute(sa.select(datasets_table.c.resource_id)
                               .where(datasets_table.c.id == dataset_id)).first()
            if row is None:
                raise ResourceNotFoundError(
                    f"no dataset {dataset_id!r} is registered; see registry.list_datasets() or "
                    "register it with registry.register_dataset(DatasetMetadata(...))"
                )
            return DatasetMetadata.from_resource(self._fetch(conn, row.resource_id), dataset_id)

        return self._read(read)

    def list_datasets(
        self, *, task_type: str | None = None, source_type: str | None = None,
        as_frame: bool = False,
    ) -> list[DatasetMetadata] | pandas.DataFrame:
        """Registered (live) datasets by id, optionally filtered."""
        r = resources_table.c
        query = (select_resources(datasets_table.c.id.label("dataset_id"))
                 .join(datasets_table, r.id == datasets_table.c.resource_id)
                 .where(r.removed_at.is_(None)).order_by(datasets_table.c.id))
        rows = self._read(lambda conn: conn.execute(query).all())
        found = [DatasetMetadata.from_resource(from_row(row), row.dataset_id) for row in rows]
        if task_type is not None:
            found = [m for m in found if m.task_type == task_type]
        if source_type is not None:
            found = [m for m in found if m.source_type == source_type]
        if not as_frame:
            return found
        import pandas as pd

        columns = ["id", "name", "source_type", "task_type", "num_samples", "num_features",
                   "num_classes", "file_path", "registered_at", "updated_at"]
        return pd.DataFrame([{c: m.to_dict()[c] for c in columns} for m in found], columns=columns)

    def remove_dataset(self, dataset_id: str, *, token: str | None = None) -> DatasetMetadata:
        """Soft-delete a dataset's registration; its workspace folder is kept on disk."""
        meta = self.get_dataset(dataset_id)
        removed = self.remove(meta.resource_id, token=token)  # type: ignore[attr-defined]
        return DatasetMetadata.from_resource(removed, dataset_id)

    def workspace(self, dataset_id: str) -> Path:
        """The dataset's managed folder (created on first use): metadata.json, embeddings/, cache/.

        ``metadata.json`` is written when the dataset is registered; the folder
        may be used before that.
        """
        folder = self._workspace_path(dataset_id)
        ensure_private_dir(folder)
        for part in WORKSPACE_PARTS:
            ensure_private_dir(folder / part)
        if not (folder / "metadata.json").exists():
            with contextlib.suppress(ResourceNotFoundError):
                self._write_metadata_file(self.get_dataset(dataset_id))
        return folder

    def _workspace_path(self, dataset_id: str) -> Path:
        root = self._home.datasets_dir
        folder = root / check_dataset_id(dataset_id)
        # The id rules already forbid separators and '..'; this holds even if they change.
        if folder.parent != root or os.path.normpath(folder) != str(folder):
            raise RegistryValueError(f"dataset id {dataset_id!r} would leave {root}")
        return folder

    def _write_metadata_file(self, meta: DatasetMetadata) -> None:
        folder = self._workspace_path(meta.id)
        ensure_private_dir(folder)
        for part in WORKSPACE_PARTS:
            ensure_private_dir(folder / part)
        atomic_write_text(folder / "metadata.json", json.dumps(meta.to_dict(), indent=2) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
