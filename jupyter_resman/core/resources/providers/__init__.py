"""Built-in providers: SQL (SQLAlchemy), filesystem, HTTP (httpx) and plain factories.

Each lives in its own module and imports its library only when used, so
``import jupyter_resman`` never pays for SQLAlchemy or httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "FactoryProvider": "factory",
    "FileSystemProvider": "filesystem",
    "HTTPProvider": "http",
    "SQLProvider": "sql",
    "Workspace": "filesystem",
}

__all__ = ["FactoryProvider", "FileSystemProvider", "HTTPProvider", "SQLProvider", "Workspace"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
