"""jupyter_resman: one place to manage what long notebook computations consume and produce.

>>> import jupyter_resman as resman
>>> s = resman.get_session()                     # doctest: +SKIP
>>> @resman.cached()                             # doctest: +SKIP
... def embed(texts): ...

The public API lives in :mod:`jupyter_resman.core`; this module re-exports it
and holds the Jupyter hooks (``%load_ext jupyter_resman``, the server
extension and the JupyterLab extension paths).
"""

from __future__ import annotations

from typing import Any

from . import core
from .core import (
    Progress,
    ResmanError,
    Session,
    Settings,
    errors,
    get_session,
    progress,
    set_session,
    track,
)

__version__ = "0.1.0"

__all__ = sorted(["Progress", "ResmanError", "Session", "Settings", "errors", "get_session",
                  "progress", "set_session", "track", *core._LAZY])


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (REST API for the sidebar)."""
    return [{"module": "jupyter_resman.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the "Resources" sidebar)."""
    return [{"src": "labextension", "dest": "jupyter-resman"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_resman``: register the magics (imported only now)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_resman``: remove exactly what loading added."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    if name in core._LAZY:
        value = getattr(core, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
