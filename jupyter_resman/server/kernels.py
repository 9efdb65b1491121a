"""What the server knows about its kernels, as plain records for the core.

A kernel's pid comes from its provisioner (``LocalProvisioner.pid``; a remote
provisioner — Enterprise Gateway, a kernel in another pod — has none, and
such kernels are listed without usage). Its notebook path comes from the
session manager, which maps kernels to the documents that opened them.
Both are cheap enough for the event loop: the paths are one query of the
session table (``list_sessions`` would build a full model of every kernel,
a third of a metrics request), falling back to ``list_sessions`` for a
session manager that keeps no such table.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from tornado.web import HTTPError

from ..core.reports import KernelInfo

__all__ = ["kernel_paths", "kernel_pid", "running_kernels"]

log = logging.getLogger("jupyter_resman.server")


def kernel_pid(kernel: Any) -> int | None:
    """The pid of a kernel manager's kernel process, or ``None`` if not local."""
    provisioner = getattr(kernel, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None:  # older jupyter_client, or a provisioner that only keeps the process
        process = getattr(provisioner, "process", None) or getattr(kernel, "kernel", None)
        pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) and pid > 0 else None


async def kernel_paths(session_manager: Any | None) -> dict[str, str]:
    """``{kernel_id: notebook path}`` of the sessions the server knows."""
    paths: dict[str, str] = {}
    if session_manager is None:
        return paths
    cursor = getattr(session_manager, "cursor", None)
    if isinstance(cursor, sqlite3.Cursor):  # jupyter_server's SessionManager
        try:
            rows = cursor.execute("SELECT kernel_id, path FROM session").fetchall()
        except sqlite3.Error as exc:  # a table of another shape: ask the public way
            log.debug("session table unreadable (%s); using list_sessions", exc)
        else:
            for kernel_id, path in rows:
                if kernel_id and path is not None:
                    paths.setdefault(kernel_id, path)
            return paths
    for model in await session_manager.list_sessions():
        kernel_id = (model.get("kernel") or {}).get("id")
        if kernel_id and model.get("path") is not None:
            paths.setdefault(kernel_id, model["path"])
    return paths


async def running_kernels(kernel_manager: Any, session_manager: Any | None) -> list[KernelInfo]:
    """Every kernel of ``kernel_manager``, with its pid and notebook path.

    Sessions whose kernel is gone are simply not matched: only kernels the
    kernel manager still runs are listed.
    """
    paths = await kernel_paths(session_manager)
    out = []
    for kernel_id in kernel_manager.list_kernel_ids():
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except (KeyError, HTTPError):  # jupyter_server raises a 404 for an unknown id
            continue  # shut down since we listed it
        out.append(KernelInfo(
            kernel_id=kernel_id,
            name=getattr(kernel, "kernel_name", None),
            pid=kernel_pid(kernel),
            path=paths.get(kernel_id),
            execution_state=getattr(kernel, "execution_state", None),
        ))
    return out
