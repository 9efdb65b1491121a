"""jupyter_resman: one place to manage what long notebook computations consume and produce.

Typical use (the default session lives in ``RESMAN_HOME``)::

    import jupyter_resman as resman
    s = resman.get_session()

    @resman.cached()
    def embed(texts): ...

    for epoch in resman.track(range(10), desc="epochs"): ...

The public API lives in :mod:`jupyter_resman.core`; this module re-exports it
and holds the Jupyter hooks (``%load_ext jupyter_resman``, the server
extension and the JupyterLab extension paths).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
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
    resumable,
    set_session,
    track,
)

__version__ = "0.1.0"

__all__ = sorted(["Progress", "ResmanError", "Session", "Settings", "dashboard", "errors",
                  "get_session", "progress", "resumable", "set_session", "track",
                  *core._LAZY])


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (REST API for the sidebar)."""
    return [{"module": "jupyter_resman.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the "Resources" sidebar)."""
    return [{"src": "labextension", "dest": "jupyter-resman"}]


def _in_widget_kernel() -> bool:
    """Whether progress bars should be widgets: inside a Jupyter kernel with ipywidgets.

    Looks only at modules already imported, so plain Python never imports
    IPython or ipywidgets here; a terminal IPython (no ``kernel``) keeps the
    console bars.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None and _has_ipywidgets()


@functools.lru_cache(maxsize=1)
def _has_ipywidgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def _notebook_renderer() -> Any:
    from .widgets.progress_panel import NotebookRenderer  # imported only inside a kernel

    return NotebookRenderer()


core.register_renderer("notebook", _notebook_renderer, detect=_in_widget_kernel)


def dashboard(session: Session | None = None, **options: Any) -> Any:
    """The live dashboard widget (monitor, progress, cache, checkpoints) of ``session``.

    The same as ``%resman``; see :func:`jupyter_resman.widgets.dashboard`.
    ipywidgets and plotly are imported only when this is called.
    """
    from .widgets import dashboard as make

    return make(session, **options)


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
