"""Finding legacy stores: which folders to search, and what is in them.

Without explicit folders, the legacy locations named by these environment
variables are searched (those that are set):

========================  ==========================================================
``RESMAN_LEGACY_DIRS``    any folders, separated by ``os.pathsep`` (``:`` on Linux)
``CLAM_BASE_DIR``         CLAM's resource folder (datasets, configs, caches)
``CLAM_CACHE_DIR``        CLAM's cache folder (embedding caches)
``JOBLIB_CACHE_DIR``      a ``joblib.Memory`` location
========================  ==========================================================

Inside each folder (recursively) we recognise ``joblib.Memory`` function
folders (one folder per call, named by its argument hash, holding
``output.pkl``; usually ``func_code.py`` beside them), diskcache folders
(a ``cache.db`` with diskcache's tables), ``.npy``/``.npz`` files and
``.csv`` files. Hidden folders, ``__pycache__``, ``node_modules``, virtual
environments and the jupyter_resman home itself are never searched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import MigrationError
from .stores import ArrayStore, CsvStore, DiskcacheStore, JoblibStore, LegacyStore

__all__ = ["LEGACY_ENV_VARS", "discover", "legacy_sources", "resolve_sources"]

#: Environment variables naming legacy locations, and what each one is.
LEGACY_ENV_VARS: dict[str, str] = {
    "RESMAN_LEGACY_DIRS": "folders of legacy caches, separated by os.pathsep",
    "CLAM_BASE_DIR": "CLAM's resource folder",
    "CLAM_CACHE_DIR": "CLAM's cache folder",
    "JOBLIB_CACHE_DIR": "a joblib.Memory location",
}

_SKIP_NAMES = {"__pycache__", "node_modules", "site-packages"}
_HEX = frozenset("0123456789abcdef")
_ORDER = {"joblib": 0, "diskcache": 1, "arrays": 2, "csv": 3}


def legacy_sources(environ: Mapping[str, str] | None = None) -> list[tuple[Path, str]]:
    """``(folder, variable)`` for each legacy location set in the environment."""
    env = os.environ if environ is None else environ
    found: list[tuple[Path, str]] = []
    for var in LEGACY_ENV_VARS:
        value = env.get(var, "").strip()
        if not value:
            continue
        parts = value.split(os.pathsep) if var == "RESMAN_LEGACY_DIRS" else [value]
        found.extend((Path(p.strip()).expanduser(), var) for p in parts if p.strip())
    return found


def resolve_sources(
    sources: Sequence[str | os.PathLike[str]] | None, *, home: Path,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Path], str, list[str]]:
    """The folders to search, where they came from, and notes for the person.

    Explicit ``sources`` must exist; environment locations that do not exist
    are only noted. Raises :class:`MigrationError` when there is nothing to
    search, saying to pass ``--source``.
    """
    notes: list[str] = []
    if sources:
        folders = [Path(s).expanduser() for s in sources]
        for folder in folders:
            if not folder.is_dir():
                raise MigrationError(f"--source {folder} is not a folder; pass folders that "
                                     "hold the legacy caches")
        origin = "--source"
    else:
        named = legacy_sources(environ)
        if not named:
            raise MigrationError(
                "nothing to migrate from: pass --source DIR (the folders holding joblib.Memory "
                "or diskcache caches, .npy/.npz embedding caches or CSV datasets), or set one of "
                + ", ".join(LEGACY_ENV_VARS) + " to legacy locations")
        folders = []
        used: list[str] = []
        for folder, var in named:
            if folder.is_dir():
                folders.append(folder)
                used.append(f"{var}={folder}")
            else:
                notes.append(f"{var}={folder} does not exist; skipped")
        origin = ", ".join(used) if used else "the environment (no existing folder)"
    home = home.resolve()
    resolved: list[Path] = []
    for folder in (f.resolve() for f in folders):
        if folder == home or home in folder.parents:
            raise MigrationError(f"{folder} is inside the jupyter_resman home {home}; "
                                 "migrate legacy folders from outside it")
        if folder not in resolved:
            resolved.append(folder)
    # A folder inside another one would be searched twice: keep the outer one.
    kept = [f for f in resolved if not any(o in f.parents for o in resolved)]
    for folder in resolved:
        if folder not in kept:
            notes.append(f"{folder} is inside another source folder; searched once")
    return kept, origin, notes


def discover(sources: Iterable[Path], *, exclude: Iterable[Path] = ()) -> list[LegacyStore]:
    """Every legacy store under ``sources`` (absolute, resolved folders).

    ``exclude`` folders (the home, the cache folder) are never entered.
    """
    skip = {Path(p).resolve() for p in exclude}
    stores: list[LegacyStore] = []
    for source in sources:
        arrays: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(source):
            folder = Path(dirpath)
            names = set(filenames)
            if "cache.db" in names and DiskcacheStore.looks_like(folder / "cache.db"):
                stores.append(DiskcacheStore(folder, source))
                dirnames[:] = []  # its shard folders hold value files, not stores
                continue
            if _is_joblib_function(folder, names, dirnames):
                stores.append(JoblibStore(folder, source, _joblib_root(folder, source)))
                dirnames[:] = []
                continue
            dirnames[:] = sorted(n for n in dirnames if not _skipped(folder / n, skip))
            for name in sorted(filenames):
                file = folder / name
                suffix = file.suffix.lower()
                if suffix not in (".npy", ".npz", ".csv") or file.is_symlink():
                    continue  # a link's target lives elsewhere: never import or delete through it
                if suffix == ".csv":
                    stores.append(CsvStore(file, source))
                else:
                    arrays.append(file)
        if arrays:
            stores.append(ArrayStore(source, source, arrays))
    stores.sort(key=lambda s: (_ORDER[s.kind], str(s.path)))
    return stores


def _is_joblib_function(folder: Path, names: set[str], dirnames: list[str]) -> bool:
    """A joblib function folder: ``func_code.py`` (joblib skips writing it when the
    function was checked earlier in the same process), or calls below it: folders
    named by a 32-hex-digit argument hash holding ``output.pkl``."""
    if "func_code.py" in names:
        return True
    return any(len(d) == 32 and all(c in _HEX for c in d)
               and (folder / d / "output.pkl").is_file() for d in dirnames)


def _skipped(folder: Path, exclude: set[Path]) -> bool:
    name = folder.name
    if name.startswith(".") or name in _SKIP_NAMES or folder.is_symlink():
        return True
    if (folder / "pyvenv.cfg").exists():  # a virtual environment: package data, not caches
        return True
    return folder.resolve() in exclude


def _joblib_root(function_folder: Path, source: Path) -> Path:
    """The folder of a Memory location that holds ``function_folder``.

    Function names are the path below it (``mypkg/features/embed`` →
    ``mypkg.features.embed``). joblib puts its folders in ``<location>/joblib``
    when the location is a string and straight in ``<location>`` (marked by the
    ``.gitignore`` joblib writes there) when it is a path; without either in
    sight, the source folder plays its part.
    """
    for parent in function_folder.parents:
        if parent.name == "joblib" or _joblib_gitignore(parent):
            return parent
        if parent == source:
            break
    return source if source != function_folder else function_folder.parent


def _joblib_gitignore(folder: Path) -> bool:
    try:
        with open(folder / ".gitignore", encoding="utf-8", errors="replace") as f:
            return "joblib" in f.read(200)
    except OSError:
        return False
