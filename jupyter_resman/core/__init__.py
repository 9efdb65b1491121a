"""The pure-Python core of jupyter_resman.

Nothing here imports IPython, ipywidgets, traitlets, tornado or
jupyter_server (``tests/core/test_boundary.py`` proves it in a subprocess):
the magics, widgets, CLI and server extension are thin layers over these
objects, and the core runs the same in a script, a kernel or the server.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from . import errors
from .errors import ResmanError

# Imported eagerly (it is light): importing the submodule would otherwise bind the
# *module* to `core.progress`, hiding the function of the same name.
from .progress import Progress, progress, track
from .resumable import resumable
from .session import Session, get_session, set_session
from .settings import Settings, parse_duration, parse_size

# Heavier parts load on first use, so `import jupyter_resman` stays cheap.
_LAZY = {
    "Cache": "cache",
    "CacheStats": "cache_stats",
    "cached": "cache",
    "fingerprint": "fingerprints",
    "Monitor": "monitor",
    "Sample": "monitor",
    "format_line": "progress_render",
    "register_renderer": "progress_render",
    "set_default_renderer": "progress_render",
    "Checkpoints": "checkpoint",
    "Registry": "registry",
    "DatasetMetadata": "registry",
    "ResourceManager": "resources",
    "PoolConfig": "resources",
    "LogManager": "logs",
}

__all__ = sorted(
    ["Progress", "ResmanError", "Session", "Settings", "errors", "get_session", "parse_duration",
     "parse_size", "progress", "resumable", "set_session", "track", *_LAZY]
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
