"""The Jupyter server extension: a JSON REST API over the shared home, for the sidebar.

Enabled by ``pip install`` alone (``jupyter-config/`` puts
``{"ServerApp": {"jpserver_extensions": {"jupyter_resman": true}}}`` in place).
This module holds only the hooks; the handlers are in :mod:`.routes`, the
per-server state and configuration in :mod:`.extension`, and every figure is
computed by :mod:`jupyter_resman.core.reports`.

Configure it like any server option, e.g. in ``jupyter_server_config.py``::

    c.ResmanExtension.home = "/srv/team/resman"   # default: RESMAN_HOME or the user's data dir
    c.ResmanExtension.workers = 4                 # threads doing psutil and SQLite work
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_resman.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Build the extension's state, register the routes, and stop with the server."""
    from .extension import ResmanExtension, close_on_cleanup
    from .routes import setup_route_handlers

    extension = ResmanExtension(serverapp)
    setup_route_handlers(serverapp.web_app, extension)
    close_on_cleanup(serverapp, extension.close)
    serverapp.log.info("jupyter_resman | REST API at %sresman/api/ (home %s)",
                       serverapp.base_url, extension.session.home.root)
