"""Throttled publishing of progress trees to the shared live store.

The JupyterLab sidebar shows every kernel's running bars by reading
``<home>/live.sqlite`` from the Jupyter server process. A tree publishes its
snapshot from its throttled refresh path (never per update), at most once per
``interval`` seconds; a tree that finishes before its first publication never
touches the store at all, so short loops cost nothing. A tree that did
publish publishes its final snapshot once more, marked finished; the store
keeps finished trees briefly, then drops them.

Publishing is a side show: a full disk, a locked or broken database must
never surface in the user's loop. The first failure is logged (once per
process until publishing works again) and the publisher backs off before
trying again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session

__all__ = ["DEFAULT_PUBLISH_INTERVAL", "Publisher"]

log = logging.getLogger("jupyter_resman.progress")

#: Seconds between two publications of one tree ("a few writes per second" at most).
DEFAULT_PUBLISH_INTERVAL = 0.5
#: After a failure, wait this long before the next try, doubling up to the maximum.
_BACKOFF_START, _BACKOFF_MAX = 2.0, 60.0

# One warning per process for a run of failures: a loop creating a thousand
# small trees against a full disk must not write a thousand warnings.
_warned = False
_warned_lock = threading.Lock()


class Publisher:
    """Publishes one tree's snapshots to ``session.live`` (the default session if none).

    ``due(now)`` says whether the throttle allows a publication at ``now``
    (the tree's clock); ``publish`` never raises.
    """

    __slots__ = ("_session", "interval", "_next", "_published", "_failures", "_tree_id")

    def __init__(self, tree_id: str, *, start: float, session: Session | None = None,
                 interval: float = DEFAULT_PUBLISH_INTERVAL) -> None:
        self._tree_id = tree_id
        self._session = session
        self.interval = interval
        # The first publication waits one interval: a tree finished by then
        # (most loops in a notebook) is never written to the store.
        self._next = start + interval
        self._published = False
        self._failures = 0

    @property
    def published(self) -> bool:
        """Whether any snapshot of this tree reached the store."""
        return self._published

    def due(self, now: float) -> bool:
        return now >= self._next

    def publish(self, snapshot: dict[str, Any], *, now: float, finished: bool = False) -> bool:
        """Store ``snapshot``; returns whether it worked. Never raises an ``Exception``.

        A final (``finished=True``) snapshot is only written for a tree that
        published before: the sidebar never saw the others.
        """
        global _warned
        if finished and not self._published:
            return False
        try:
            session = self._session
            if session is None:
                from .session import get_session  # lazy: a silent bar never builds a session

                session = self._session = get_session()
            session.live.publish_progress(self._tree_id, snapshot, finished=finished)
        except Exception as exc:  # the user's loop must go on whatever the store does
            self._failures += 1
            self._next = now + min(_BACKOFF_START * 2 ** (self._failures - 1), _BACKOFF_MAX)
            with _warned_lock:
                first, _warned = not _warned, True
            if first:
                log.warning(
                    "progress of this kernel could not be published to the shared store "
                    "(%s: %s); the loop goes on, but the JupyterLab sidebar will not show it. "
                    "Free disk space or check the jupyter_resman home; retrying with backoff.",
                    type(exc).__name__, exc,
                )
            else:
                log.debug("progress publish failed again: %r", exc)
            return False
        if _warned:
            with _warned_lock:
                _warned = False  # working again: warn anew if it breaks later
        self._failures = 0
        self._published = True
        self._next = now + self.interval
        return True
