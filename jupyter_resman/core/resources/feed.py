"""Publishing what a manager holds to the home's live feed, and reading it back.

The Jupyter server and ``resman resources`` in a terminal are other
processes: they learn about a kernel's providers, owners and health only
from what the kernel wrote to ``<home>/live.sqlite`` (under its pid, in
the ``resources`` key of its process row; see :class:`~..live.LiveStore`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..errors import StoreError

if TYPE_CHECKING:
    from ..live import LiveStore

__all__ = ["Feed", "published"]

log = logging.getLogger("jupyter_resman.resources")

#: Acquire/release publish at most this often (each publish is one SQLite write).
PUBLISH_EVERY_S = 2.0


class Feed:
    """One manager's slot in the live feed: throttled, failure-tolerant writes."""

    def __init__(self, live: LiveStore) -> None:
        self.live = live
        self.published = False  # something was written that a later close must clear
        self.dirty = False  # the state changed since the last write
        self._last = 0.0
        self._failing = False

    def due(self) -> bool:
        return time.monotonic() - self._last >= PUBLISH_EVERY_S

    def write(self, snapshot: dict[str, Any] | None) -> None:
        """Store ``snapshot`` (``None`` clears it); a failure is logged, never raised.

        The resources work without the feed: a full disk or a locked feed must
        not turn an acquire into an error. The first failure in a row is a
        warning, the next ones are debug lines.
        """
        self._last = time.monotonic()
        self.dirty = False
        try:
            self.live.publish_process({"resources": snapshot})
        except (StoreError, sqlite3.Error, OSError) as exc:
            log.log(logging.DEBUG if self._failing else logging.WARNING,
                    "could not publish resources to the live feed: %s", exc)
            self._failing = True
            self.dirty = True
            return
        self._failing = False
        self.published = snapshot is not None or self.published


def published(live: LiveStore, *, include_self: bool = True) -> dict[int, dict[str, Any]]:
    """``{pid: snapshot}`` of every live process that published resources.

    A snapshot is what :meth:`ResourceManager.snapshot` returns: ``pid``,
    ``updated`` and ``providers`` (kind, target, pool, health, metrics, leases).
    """
    out = {}
    for pid, info in live.processes().items():
        snapshot = info.get("resources")
        if snapshot and (include_self or pid != os.getpid()):
            out[pid] = snapshot
    return out
