"""Who holds what: leases, and the owner a resource is charged to by default.

Every resource the manager hands out is recorded as a :class:`Lease`: which
provider, which owner, since when, and from which line of code. The owner is
whatever the caller passes; when it passes nothing, it is, in order:

1. the owner of the innermost :func:`owner_scope` in this thread or task;
2. the process-wide default owner, which the notebook integration sets to
   the running cell before each cell runs (:func:`set_default_owner`), so
   threads a cell starts are charged to that cell as well;
3. ``"main"`` on the main thread, or ``"thread:<name>"`` on another.

>>> with owner_scope("step-1"):
...     current_owner()
'step-1'
>>> current_owner()
'main'
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["Lease", "current_owner", "owner_scope", "set_default_owner"]

_scoped_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jupyter_resman_owner", default=None)
_default_owner: str | None = None
_default_lock = threading.Lock()
_ids = itertools.count(1)

# Frames of these modules are skipped when recording where a resource was taken.
_OUR_MODULES = ("jupyter_resman.core.resources", "contextlib", "asyncio")


def set_default_owner(owner: str | None) -> str | None:
    """Charge resources taken without an owner to ``owner``; returns the previous default.

    The notebook integration calls this with the cell's name before each cell
    and with ``None`` after it.
    """
    global _default_owner
    with _default_lock:
        previous, _default_owner = _default_owner, None if owner is None else str(owner)
    return previous


def default_owner() -> str | None:
    """The process-wide default set by :func:`set_default_owner`, if any."""
    return _default_owner


@contextlib.contextmanager
def owner_scope(owner: str) -> Iterator[str]:
    """Charge resources taken without an owner in this block (thread, task) to ``owner``."""
    token = _scoped_owner.set(str(owner))
    try:
        yield str(owner)
    finally:
        _scoped_owner.reset(token)


def current_owner() -> str:
    """The owner a resource taken here without ``owner=`` is charged to."""
    owner = _scoped_owner.get()
    if owner is not None:
        return owner
    owner = _default_owner
    if owner is not None:
        return owner
    thread = threading.current_thread()
    return "main" if thread is threading.main_thread() else f"thread:{thread.name}"


def caller_location(skip: int = 2) -> str:
    """``file:line`` of the first frame outside the resource manager (for leak reports)."""
    try:
        frame = sys._getframe(skip)
    except ValueError:
        return ""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_OUR_MODULES):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


@dataclasses.dataclass(eq=False)
class Lease:
    """One resource handed to one owner (compared by identity)."""

    name: str
    owner: str
    resource: Any = dataclasses.field(repr=False)
    where: str = ""
    thread: str = dataclasses.field(default_factory=lambda: threading.current_thread().name)
    acquired_at: float = dataclasses.field(default_factory=time.time)
    started: float = dataclasses.field(default_factory=time.monotonic, repr=False)
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    #: Set once a leak warning named this lease, so it is reported only once.
    reported: bool = dataclasses.field(default=False, repr=False)

    def held_s(self, now: float | None = None) -> float:
        """Seconds since the resource was handed out."""
        return (time.monotonic() if now is None else now) - self.started

    def to_dict(self) -> dict[str, Any]:
        """JSON-able facts (never the resource itself)."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "where": self.where,
                "thread": self.thread, "acquired_at": self.acquired_at,
                "held_s": self.held_s()}
