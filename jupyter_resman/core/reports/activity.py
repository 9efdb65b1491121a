"""Progress bars of every kernel, and the checkpoints of the home."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    CheckpointNotFoundError,
    RequestError,
)

if TYPE_CHECKING:

    from ..session import Session

from ._common import KernelInfo


def progress_report(session: Session,
                    kernels: Iterable[KernelInfo | Mapping[str, Any]]) -> dict[str, Any]:
    """Progress trees of every publishing process, matched to kernels by pid.

    Kernels come first, ordered by notebook path; other processes (scripts,
    the CLI) follow with ``kernel_id`` ``None``.
    """
    by_pid = {k.pid: k for k in map(KernelInfo.coerce, kernels) if k.pid is not None}
    rows = []
    for pid, trees in session.live.progress().items():
        kernel = by_pid.get(pid)
        rows.append({
            "pid": pid,
            "kernel_id": kernel.kernel_id if kernel else None,
            "path": kernel.path if kernel else None,
            "trees": trees,
        })
    rows.sort(key=lambda r: (r["kernel_id"] is None, r["path"] or "", r["pid"]))
    return {"kernels": rows}



def checkpoints_report(session: Session) -> dict[str, Any]:
    """One row per checkpoint name: versions, the newest one's time and description,
    and the bytes all versions and their parts take (what deleting it frees)."""
    checkpoints = session.checkpoints
    rows = []
    for name in checkpoints.names():
        versions = checkpoints.versions(name)
        if not versions:
            continue  # deleted by another process since names() listed it
        latest = versions[-1]
        rows.append({
            "name": name, "versions": len(versions), "latest_version": latest.version,
            "time": latest.time,
            # Parts (a resumable loop's results) go with the name: they count too.
            "bytes": sum(v.bytes for v in versions) + checkpoints.parts_bytes(name),
            "description": latest.description, "complete": latest.complete,
        })
    return {"checkpoints": rows}


def delete_checkpoint(session: Session, name: Any) -> dict[str, Any]:
    """Delete every version of ``name``; :class:`CheckpointNotFoundError` if it has none.

    The name is validated by the checkpoint store (a bad one raises
    :class:`~.errors.CheckpointNameError`); it maps to a hashed folder, so no
    name reaches outside the home.
    """
    if not isinstance(name, str):
        raise RequestError(f"a checkpoint name must be a string, not {type(name).__name__}")
    removed = session.checkpoints.delete(name)
    if not removed:
        raise CheckpointNotFoundError(f"no checkpoint named {name!r}; "
                                      "GET /resman/api/checkpoints lists them")
    return {"deleted": name, "versions": removed}
