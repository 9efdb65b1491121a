"""Finding dataset files and managed configs; discovering CSV datasets in folders.

``find_csv("adult", search_dirs=["./data"])`` tries, in order: the file a
registered dataset ``adult`` points at, its workspace, then each search
folder (``adult.csv``, ``adult/adult.csv``, ``adult/data.csv``, the single
CSV inside ``adult/``, a case-insensitive ``Adult.csv``). The error names
every place it looked.

``discover_datasets(folders)`` describes every CSV it finds (pandas reads
the header and counts rows) without registering anything;
``register_discovered`` registers the lot in one transaction.

Configs live under ``<home>/configs/<kind>/``; ``find_config("jolt",
"adult")`` finds ``adult.json``, ``jolt_config_adult.json`` or
``templates_adult.yaml``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import RegistryValueError, ResourceNotFoundError
from ..home import ensure_private_dir
from .datasets import DatasetMetadata, DatasetOps, check_dataset_id

__all__ = ["FileOps", "describe_csv"]

log = logging.getLogger("jupyter_resman.registry")

CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".toml")
TARGET_NAMES = ("target", "class", "label", "labels", "y", "outcome")
_MAX_CLASSES = 50  # more distinct integer targets than this reads as regression
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")


def _plain_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise RegistryValueError(
            f"{what} {name!r} is not a plain name: use letters, digits, '.', '_', '-' or spaces, "
            "without '/' or '..' (it names a file inside a managed folder)"
        )
    return name


def describe_csv(path: str | Path, *, target_column: str | None = None,
                 dataset_id: str | None = None) -> DatasetMetadata:
    """Read a CSV's header and rows with pandas and describe it as a dataset.

    The target is ``target_column`` or the first column named like one
    (target, class, label, y...); from it come ``num_classes`` and
    ``task_type``. Quoted newlines are handled (pandas parses the file).
    """
    import pandas as pd

    file = Path(path)
    header = pd.read_csv(file, nrows=0)
    columns = [str(c) for c in header.columns]
    target = target_column
    if target is None:
        lowered = {c.lower(): c for c in columns}
        target = next((lowered[n] for n in TARGET_NAMES if n in lowered), None)
    elif target not in columns:
        raise RegistryValueError(f"{file} has no column {target!r}; its columns are {columns}")
    rows = 0
    values: set[Any] = set()
    numeric = True
    use = [target] if target is not None else ([columns[0]] if columns else None)
    if use:
        for chunk in pd.read_csv(file, usecols=use, chunksize=1 << 16):
            rows += len(chunk)
            if target is not None:
                series = chunk[target].dropna()
                numeric = numeric and pd.api.types.is_numeric_dtype(series)
                if len(values) <= _MAX_CLASSES:
                    values.update(series.unique().tolist())
    num_classes = task_type = None
    if target is not None:
        integral = numeric and all(float(v).is_integer() for v in values)
        if not numeric or (integral and len(values) <= _MAX_CLASSES):
            num_classes, task_type = len(values), "classification"
        else:
            task_type = "regression"
    return DatasetMetadata(
        id=dataset_id or dataset_id_for(file),
        name=file.stem,
        source_type="csv",
        file_path=str(file.absolute()),
        num_samples=rows,
        num_features=len(columns) - (1 if target is not None else 0),
        num_classes=num_classes,
        task_type=task_type,
        target_column=target,
    )


def dataset_id_for(file: Path, taken: set[str] | None = None) -> str:
    """A safe, unused dataset id from a file name (``"My Data.csv"`` -> ``"My_Data"``)."""

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:150] or "dataset"

    base = slug(file.stem)
    candidates = [base, f"{slug(file.parent.name)}_{base}"]
    taken = taken or set()
    for candidate in candidates:
        if candidate not in taken:
            return check_dataset_id(candidate)
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return check_dataset_id(f"{base}_{n}")


class FileOps(DatasetOps):
    """CSV lookup, dataset discovery and managed configs (mixed into Registry)."""

    def find_csv(self, name: str | Path, search_dirs: Iterable[str | Path] | None = None) -> Path:
        """The CSV file of dataset ``name``, trying the registry first, then folders.

        ``name`` may also be a path to an existing ``.csv`` file. Without
        ``search_dirs`` the current folder and its ``data/`` and ``datasets/``
        are searched. Raises :class:`ResourceNotFoundError` listing every
        place tried.
        """
        direct = Path(name)
        if direct.suffix.lower() == ".csv" and direct.is_file():
            return direct.absolute()
        text = str(name)
        tried: list[str] = []
        if _is_dataset_id(text):
            try:
                meta = self.get_dataset(text)
            except ResourceNotFoundError:
                meta = None
            if meta is not None and meta.file_path:
                tried.append(f"registered file {meta.file_path}")
                if Path(meta.file_path).is_file():
                    return Path(meta.file_path)
            folder = self._workspace_path(text)
            for candidate in (folder / f"{text}.csv", folder / "data.csv"):
                tried.append(str(candidate))
                if candidate.is_file():
                    return candidate
        stem = _plain_name(direct.stem if direct.suffix.lower() == ".csv" else text, "dataset name")
        dirs = [Path(d) for d in search_dirs] if search_dirs is not None else [
            Path.cwd(), Path.cwd() / "data", Path.cwd() / "datasets"]
        for folder in dirs:
            found = _search_folder(folder, stem, tried)
            if found is not None:
                return found
        raise ResourceNotFoundError(
            f"no CSV file for {text!r}; looked at: {'; '.join(tried)}. Register the dataset "
            "with its file_path, or pass search_dirs=[...] where it lives."
        )

    def discover_datasets(
        self, folders: Iterable[str | Path], *, recursive: bool = True,
        target_column: str | None = None,
    ) -> list[DatasetMetadata]:
        """Describe every CSV in ``folders`` (nothing is registered).

        Files pandas cannot parse are skipped and logged. Ids come from file
        names and never collide with each other or with registered datasets.
        """
        taken = {m.id for m in self.list_datasets()}  # type: ignore[union-attr]
        found: list[DatasetMetadata] = []
        for folder in folders:
            root = Path(folder)
            if not root.is_dir():
                raise ResourceNotFoundError(f"{root} is not a folder; pass folders of CSV files")
            files = sorted(root.rglob("*.csv") if recursive else root.glob("*.csv"))
            for file in files:
                if not file.is_file():
                    continue
                try:
                    meta = describe_csv(file, target_column=target_column,
                                        dataset_id=dataset_id_for(file, taken))
                except (ValueError, UnicodeDecodeError, OSError) as exc:
                    # pandas' ParserError and EmptyDataError are ValueErrors.
                    log.warning("skipped %s: pandas could not read it (%s)", file, exc)
                    continue
                taken.add(meta.id)
                found.append(meta)
        return found

    def register_discovered(
        self, folders: Iterable[str | Path], *, recursive: bool = True,
        target_column: str | None = None,
    ) -> list[DatasetMetadata]:
        """Discover the CSVs in ``folders`` and register them all in one transaction."""
        return self.register_datasets(
            self.discover_datasets(folders, recursive=recursive, target_column=target_column))

    # -- configs ---------------------------------------------------------------------

    def config_dir(self, kind: str) -> Path:
        """``<home>/configs/<kind>/``, created on first use."""
        folder = self._home.configs_dir / _plain_name(kind, "config kind")
        ensure_private_dir(folder)
        return folder

    def find_config(self, kind: str, name: str, *,
                    suffixes: Iterable[str] = CONFIG_SUFFIXES) -> Path:
        """The managed config ``name`` of ``kind``: an exact file name, ``name.json``,
        or a file ending in ``_name.json`` (``jolt_config_adult.json``)."""
        folder = self._home.configs_dir / _plain_name(kind, "config kind")
        _plain_name(name, "config name")
        ends = tuple(suffixes)
        patterns = [name] if name.endswith(ends) else []
        patterns += [f"{name}{s}" for s in ends] + [f"*_{name}{s}" for s in ends]
        if folder.is_dir():
            for pattern in patterns:
                matches = sorted(p for p in folder.glob(pattern) if p.is_file())
                if matches:
                    return matches[0]
        raise ResourceNotFoundError(
            f"no {kind!r} config named {name!r} in {folder} (tried {', '.join(patterns)}); "
            "add one with registry.store_config(kind, path)"
        )

    def list_configs(self, kind: str | None = None) -> dict[str, list[Path]]:
        """``{kind: [config files]}`` under ``<home>/configs`` (one kind if given)."""
        root = self._home.configs_dir
        kinds = [_plain_name(kind, "config kind")] if kind is not None else sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())
        return {k: sorted(p for p in (root / k).iterdir() if p.is_file())
                for k in kinds if (root / k).is_dir()}

    def store_config(self, kind: str, source: str | Path, *, name: str | None = None) -> Path:
        """Copy a config file into ``<home>/configs/<kind>/`` (atomically); returns its new path."""
        src = Path(source)
        if not src.is_file():
            raise ResourceNotFoundError(f"{src} is not a file")
        target = self.config_dir(kind) / _plain_name(name or src.name, "config name")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def _is_dataset_id(text: str) -> bool:
    try:
        check_dataset_id(text)
    except RegistryValueError:
        return False
    return True


def _search_folder(folder: Path, stem: str, tried: list[str]) -> Path | None:
    candidates = [folder / f"{stem}.csv", folder / stem / f"{stem}.csv", folder / stem / "data.csv"]
    for candidate in candidates:
        tried.append(str(candidate))
        if candidate.is_file():
            return candidate
    sub = folder / stem
    if sub.is_dir():
        inside = sorted(p for p in sub.glob("*.csv") if p.is_file())
        tried.append(f"the only CSV in {sub}")
        if len(inside) == 1:
            return inside[0]
    if folder.is_dir():
        tried.append(f"{folder}/{stem}.csv in any letter case")
        lowered = f"{stem}.csv".lower()
        for entry in sorted(folder.iterdir()):
            if entry.name.lower() == lowered and entry.is_file():
                return entry
    return None
