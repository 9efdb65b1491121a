"""Nested, thread-safe progress trees: tqdm-like bars whose state is a plain snapshot.

A :class:`Progress` owns numbers (count, total, timing, status, children);
drawing is someone else's job. :meth:`Progress.snapshot` turns a tree into a
JSON-able dict that every front end draws the same way: the console renderer
(:mod:`~jupyter_resman.core.progress_render`), the notebook widget, and the
JupyterLab sidebar, which reads snapshots every kernel publishes to the shared
live store.

>>> with progress(total=3, desc="files", renderer="silent", publish=False) as p:
...     for name in track(["a", "b"], desc="a.txt"):
...         p.children[0].desc
...     p.update(3)
'a.txt'
'a.txt'
>>> p.status, p.n, p.children
('done', 3, [])

:func:`track` and :func:`progress` nest automatically under the bar that is
active in the current thread or asyncio task (a :mod:`contextvars` variable):
a loop inside a ``track`` loop becomes its child; a thread does not inherit
the bar unless it runs in a copied context (``contextvars.copy_context()``).

The per-item cost of :func:`track` is a counter increment and a comparison;
every few items (a stride adapted to the loop's speed, like tqdm's
``miniters``) it reads the clock, and at most every ``mininterval`` seconds
the tree is snapshotted, drawn, published and its callbacks run.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from types import CodeType, FrameType
from typing import Any, Generic, TypeVar

from .errors import ProgressError
from .progress_publish import DEFAULT_PUBLISH_INTERVAL, Publisher
from .progress_render import Renderer, SilentRenderer, format_line, make_renderer

__all__ = ["Progress", "Tracked", "current", "format_line", "open_trees", "progress", "track"]

log = logging.getLogger("jupyter_resman.progress")

T = TypeVar("T")
Callback = Callable[["Progress"], Any]

#: Seconds between two refreshes (draw, publish, callbacks) of one tree.
DEFAULT_MININTERVAL = 0.1
#: The smoothed rate forgets older speed with this time constant (seconds of activity).
RATE_WINDOW = 5.0
# The clock is read about four times per refresh interval, at most every
# _MAX_STRIDE items: cheap for fast loops, and a loop that suddenly slows
# down is noticed within a bounded number of items.
_CHECKS_PER_REFRESH = 4
_MAX_STRIDE = 256

_current: ContextVar[Progress | None] = ContextVar("jupyter_resman_progress", default=None)
_ids = itertools.count(1)
_open_roots: weakref.WeakSet[Progress] = weakref.WeakSet()
#: The error of a tracked loop that stopped early for a reason Python does not
#: tell (its body raised, or its iterator was dropped unfinished).
INTERRUPTED = "interrupted"
_EARLY = object()  # sentinel: a tracked loop stopped before its iterable was exhausted


class _Tree:
    """What every bar of one tree shares: locks, clock, renderer, publisher, throttle."""

    __slots__ = ("root", "lock", "refresh_lock", "clock", "renderer", "publisher",
                 "mininterval", "next_refresh", "watchers", "drawing")

    def __init__(self, root: Progress, clock: Callable[[], float], renderer: Renderer,
                 publisher: Publisher | None, mininterval: float, now: float) -> None:
        self.root = root
        self.lock = threading.RLock()  # guards counts, status and the children lists
        # Held while drawing/publishing; re-entrant so a callback may close its bar.
        self.refresh_lock = threading.RLock()
        self.clock = clock
        self.renderer = renderer
        self.publisher = publisher
        self.mininterval = mininterval
        self.next_refresh = now + mininterval
        self.watchers: list[Progress] = []  # bars with on_update callbacks
        self.drawing = not isinstance(renderer, SilentRenderer)

    def refresh(self, now: float, *, force: bool = False) -> None:
        """Draw, publish when due, run update callbacks. Never blocks a loop for another."""
        if not self.refresh_lock.acquire(blocking=force):
            return  # another thread is refreshing this tree right now; it shows our count
        try:
            self.next_refresh = now + self.mininterval
            publish = self.publisher is not None and self.publisher.due(now)
            if self.drawing or publish:
                snap = self.root.snapshot()
                if self.drawing:
                    self._draw(snap)
                if publish:
                    self.publisher.publish(snap, now=now)  # type: ignore[union-attr]
            for bar in list(self.watchers):
                bar._fire_update()
        finally:
            self.refresh_lock.release()

    def finish(self, now: float) -> None:
        """The root finished: final drawing and final publication."""
        with self.refresh_lock:
            snap = self.root.snapshot()
            if self.drawing:
                try:
                    self.renderer.close(snap)
                except Exception as exc:  # a closed stream must not turn a finished loop into an error
                    log.warning("progress renderer %r failed at close: %r", self.renderer, exc)
            if self.publisher is not None:
                self.publisher.publish(snap, now=now, finished=True)

    def _draw(self, snap: dict[str, Any]) -> None:
        try:
            self.renderer.draw(snap)
        except Exception as exc:  # e.g. stderr closed: stop drawing, keep the loop running
            log.warning("progress renderer %r failed (%r); this tree is no longer drawn",
                        self.renderer, exc)
            self.drawing = False


class Progress:
    """One bar of a progress tree; thread-safe.

    ``Progress(total, desc)`` makes a root (a tree of its own); ``child()``,
    :func:`progress` and :func:`track` make nested bars. Only a root takes
    ``renderer`` (a name, an object with ``draw``/``close``, or ``None`` to
    auto-detect), ``session`` (whose live store it publishes to; the default
    session if ``None``), ``publish`` (``False`` keeps it off the store),
    ``clock`` (injectable for tests), ``mininterval`` and ``publish_interval``;
    children share their root's.

    Times (``elapsed``, the rate) leave out paused time. ``rate`` is a
    smoothed items-per-second while running, the average once finished.
    A finished child leaves its parent's ``children`` unless ``leave=True``.
    """

    __slots__ = (
        "n", "total", "desc", "unit", "initial", "status", "error", "children", "parent", "id",
        "_tree", "_closed", "_start", "_end", "_paused_at", "_paused_total",
        "_rate_sn", "_rate_st", "_rate_t", "_rate_n", "_leave", "_on_update", "_on_finish",
        "_cb_n", "_stride", "_pace_t", "_pace_c", "_token",
        "_placeholder", "_managed", "__weakref__",
    )

    def __init__(
        self,
        total: float | None = None,
        desc: str | None = None,
        unit: str = "it",
        *,
        initial: float = 0,
        parent: Progress | None = None,
        renderer: Renderer | str | None = None,
        session: Any = None,
        clock: Callable[[], float] = time.monotonic,
        leave: bool | None = None,
        mininterval: float = DEFAULT_MININTERVAL,
        publish: bool = True,
        publish_interval: float = DEFAULT_PUBLISH_INTERVAL,
    ) -> None:
        if initial < 0:
            raise ProgressError(f"initial={initial!r} is negative; a bar starts at 0 or more")
        if total is not None and total < 0:
            raise ProgressError(f"total={total!r} is negative; pass a count >= 0, or None")
        self.n = initial
        self.initial = initial
        self.total = total
        self.desc = None if desc is None else str(desc)
        self.unit = str(unit)
        self.status = "running"
        self.error: str | None = None
        self.children: list[Progress] = []
        self.parent = parent
        self.id = f"{os.getpid()}-{next(_ids)}"
        self._closed = False
        self._paused_total = 0.0
        self._paused_at = 0.0
        self._rate_sn = self._rate_st = self._rate_t = 0.0
        self._rate_n = initial
        self._leave = (parent is None) if leave is None else bool(leave)
        self._on_update: list[Callback] | None = None
        self._on_finish: list[Callback] | None = None
        self._cb_n = initial
        self._stride = 1
        self._pace_c: float = 0
        self._token: Token[Progress | None] | None = None
        self._placeholder = False
        self._managed = False
        if parent is None:
            if mininterval < 0 or publish_interval < 0:
                raise ProgressError("mininterval and publish_interval must be >= 0 seconds")
            now = clock()
            publisher = (Publisher(self.id, start=now, session=session,
                                   interval=publish_interval) if publish else None)
            tree = _Tree(self, clock, make_renderer(renderer), publisher, mininterval, now)
            self._tree = tree
            self._start = self._pace_t = now
            _open_roots.add(self)
            if tree.drawing:
                tree.refresh(now, force=True)  # show the bar at once, like tqdm
        else:
            tree = parent._tree
            with tree.lock:
                if parent._closed:
                    raise ProgressError(
                        f"cannot add a child to {parent!r}: it has finished ({parent.status})")
                now = tree.clock()
                self._tree = tree
                self._start = self._pace_t = now
                parent.children.append(self)

    # -- counting ------------------------------------------------------------------

    def update(self, n: float = 1) -> None:
        """Count ``n`` more items (``n >= 0``)."""
        if n < 0:
            raise ProgressError(
                f"update({n!r}): progress only moves forward; to restart, create a new bar")
        tree = self._tree
        with tree.lock:
            if self._closed:
                raise ProgressError(f"update() on {self!r}, which has finished; create a new bar")
            self.n += n
        # A manual update already pays for a lock; one clock read more keeps it exact.
        now = tree.clock()
        if now >= tree.next_refresh:
            tree.refresh(now)

    def _tick(self, count: float) -> int:
        """Every few items of a tracked loop: read the clock, refresh if due.

        Returns the stride: how many items to let pass before the next look,
        adapted so the clock is read a few times per refresh interval. The
        stride at most doubles per look (a loop whose first items are quick
        but whose later ones are slow is still noticed soon) and drops at once
        when items get slower.
        """
        tree = self._tree
        now = tree.clock()
        if now >= tree.next_refresh:
            tree.refresh(now)
        dt = now - self._pace_t
        done = count - self._pace_c
        self._pace_t, self._pace_c = now, count
        limit = self._stride * 2
        if dt > 0:
            stride = int(done * tree.mininterval / (_CHECKS_PER_REFRESH * dt))
            stride = 1 if stride < 1 else limit if stride > limit else stride
        else:  # a coarse clock did not move: look less often
            stride = limit
        if stride > _MAX_STRIDE:
            stride = _MAX_STRIDE
        self._stride = stride
        return stride

    def refresh(self) -> None:
        """Draw the tree now (and publish it if the publish interval has passed)."""
        tree = self._tree
        tree.refresh(tree.clock(), force=True)

    # -- pausing and finishing ---------------------------------------------------------

    def pause(self) -> None:
        """Stop the clock of this bar and its running descendants (time, rate, ETA)."""
        self._set_paused(True)

    def resume(self) -> None:
        """Restart the clock of this bar and its paused descendants."""
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        tree = self._tree
        with tree.lock:
            if self._closed:
                raise ProgressError(f"cannot pause or resume {self!r}: it has finished")
            now = tree.clock()
            for bar in self._walk():
                if paused and bar.status == "running":
                    bar.status, bar._paused_at = "paused", now
                elif not paused and bar.status == "paused":
                    bar._paused_total += now - bar._paused_at
                    bar.status = "running"
        tree.refresh(now, force=True)

    def close(self) -> None:
        """Finish the bar: status ``done`` (a failed bar stays failed). Idempotent."""
        self._finish("done", None)

    def fail(self, exc: BaseException | None = None) -> None:
        """Finish the bar as ``failed``; ``exc`` (if any) is recorded as its error."""
        self._finish("failed", exc)

    def _finish(self, status: str, exc: BaseException | None, *, placeholder: bool = False
                ) -> None:
        tree = self._tree
        finished: list[Progress] = []
        with tree.lock:
            if self._closed:
                if status == "failed" and exc is not None and self._placeholder:
                    # We guessed "failed" when the loop stopped; now the real error is known.
                    self.error, self._placeholder = _describe(exc), False
                return
            now = tree.clock()
            self._finish_locked(status, exc, placeholder, now, finished)
        for bar in finished:
            bar._fire_finish()
        if self.parent is None:
            _open_roots.discard(self)
            tree.finish(now)

    def _finish_locked(self, status: str, exc: BaseException | None, placeholder: bool,
                       now: float, finished: list[Progress]) -> None:
        # Open children end with their parent: done if it is done, failed if it failed.
        for child in list(self.children):
            if not child._closed:
                child._finish_locked(status, None, False, now, finished)
        if self.status == "paused":
            self._paused_total += now - self._paused_at
        self._end = now
        self.status = status
        self._closed = True
        if exc is not None:
            self.error = _describe(exc)
        elif placeholder:
            self.error = INTERRUPTED
        self._placeholder = placeholder
        parent = self.parent
        if parent is not None and not self._leave:
            with contextlib.suppress(ValueError):  # a parent may have dropped it already
                parent.children.remove(self)
        finished.append(self)

    def _stopped_early(self, frame: FrameType | None) -> None:
        """A tracked loop ended before its iterable did: ``break``, or an exception?

        Python does not tell a generator why it is closed. The frame that drops
        the generator does: at a ``break``/``return`` it is discarding the
        iterator (``POP_TOP``...), while an exception unwinds from the
        instruction that raised. Anything we cannot recognise counts as a
        failure: a bar that claims success for an interrupted loop is worse.
        """
        if frame is not None and _is_clean_stop(frame.f_code, frame.f_lasti):
            self.close()
        else:
            self._finish("failed", None, placeholder=True)

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> Progress:
        self._token = _current.set(self)
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        token, self._token = self._token, None
        if token is not None:
            # Exiting in another context (a different thread) leaves nothing to restore here.
            with contextlib.suppress(ValueError):
                _current.reset(token)
        if exc is None or isinstance(exc, GeneratorExit):
            self.close()
        else:
            self.fail(exc)

    def child(self, total: float | None = None, desc: str | None = None, unit: str = "it",
              **kw: Any) -> Progress:
        """A new bar nested under this one (use it with ``with``)."""
        return Progress(total, desc, unit, parent=self, **kw)

    # -- callbacks ---------------------------------------------------------------------

    def on_update(self, callback: Callback) -> Callback:
        """Call ``callback(bar)`` when the count changed, at most once per refresh interval.

        It also runs once more when the bar finishes, if the count changed
        since. A callback that raises is logged and stays registered: a
        logging hook must not kill the loop it watches. Returns ``callback``
        (usable as a decorator).
        """
        with self._tree.lock:
            if self._on_update is None:
                self._on_update = []
                self._tree.watchers.append(self)
            self._on_update.append(callback)
        return callback

    def on_finish(self, callback: Callback) -> Callback:
        """Call ``callback(bar)`` once, when the bar is done or failed."""
        with self._tree.lock:
            if self._closed:
                fire_now = True
            else:
                fire_now = False
                self._on_finish = [*(self._on_finish or ()), callback]
        if fire_now:
            _call(callback, self)
        return callback

    def _fire_update(self) -> None:
        n = self.n
        if n != self._cb_n and self._on_update:
            self._cb_n = n
            for callback in list(self._on_update):
                _call(callback, self)

    def _fire_finish(self) -> None:
        self._fire_update()
        if self._on_update is not None:
            with self._tree.lock, contextlib.suppress(ValueError):
                self._tree.watchers.remove(self)
        for callback in self._on_finish or ():
            _call(callback, self)

    # -- reading -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the bar has finished (``done`` or ``failed``)."""
        return self._closed

    @property
    def root(self) -> Progress:
        """The top bar of this tree (its id is the tree's id in the live store)."""
        return self._tree.root

    @property
    def elapsed(self) -> float:
        """Seconds spent running (paused time left out)."""
        return self.snapshot()["elapsed"]

    @property
    def rate(self) -> float | None:
        """Items per second: smoothed while running, the average once finished."""
        return self.snapshot()["rate"]

    def snapshot(self) -> dict[str, Any]:
        """This bar and its descendants as plain, JSON-able values.

        Keys: ``id``, ``desc``, ``n``, ``total``, ``unit``, ``initial``,
        ``rate``, ``elapsed``, ``eta``, ``status``, ``percent``, ``error``,
        ``children`` (a list of the same dicts).
        """
        tree = self._tree
        with tree.lock:
            return self._snapshot(tree.clock())

    def _snapshot(self, now: float) -> dict[str, Any]:
        end = self._end if self._closed else now
        paused = self._paused_total + (end - self._paused_at if self.status == "paused" else 0.0)
        elapsed = max(end - self._start - paused, 0.0)
        n, total = _plain(self.n), _plain(self.total)
        if self._closed:
            rate = (n - self.initial) / elapsed if elapsed > 0 else None
        else:
            rate = self._sample_rate(elapsed, n)
        eta = None
        if total is not None:
            percent: float | None = 100.0 * n / total if total else 100.0
            if self.status == "done":
                eta = 0.0
            elif not self._closed and rate:
                eta = max(total - n, 0) / rate
        else:
            percent = None
        return {
            "id": self.id, "desc": self.desc, "n": n, "total": total, "unit": self.unit,
            "initial": _plain(self.initial), "rate": rate, "elapsed": elapsed, "eta": eta,
            "status": self.status, "percent": percent, "error": self.error,
            "children": [child._snapshot(now) for child in self.children],
        }

    def _sample_rate(self, active: float, n: float) -> float | None:
        # A time-weighted moving average: items and seconds both decay with
        # exp(-dt / RATE_WINDOW), so a burst of quick samples (or one noisy
        # sample at start-up) weighs by the time it covers, not by its count.
        dt = active - self._rate_t
        if dt > 0:
            decay = math.exp(-dt / RATE_WINDOW)
            self._rate_sn = self._rate_sn * decay + (n - self._rate_n)
            self._rate_st = self._rate_st * decay + dt
            self._rate_t, self._rate_n = active, n
        if self._rate_st <= 0 or n == self.initial:
            return None  # nothing counted yet: "?" reads better than 0 it/s
        return self._rate_sn / self._rate_st

    def _walk(self) -> Iterator[Progress]:
        yield self
        for child in list(self.children):
            yield from child._walk()

    def __str__(self) -> str:
        return format_line(self.snapshot())

    def __repr__(self) -> str:
        total = "?" if self.total is None else self.total
        return f"<Progress {self.desc!r} {self.n}/{total} {self.status}>"


# -- module-level API --------------------------------------------------------------------


def current() -> Progress | None:
    """The innermost unfinished bar active in this thread / asyncio task, if any."""
    bar = _current.get()
    while bar is not None and bar._closed:
        bar = bar.parent
    return bar


def open_trees() -> list[Progress]:
    """Roots of this process that have not finished (front ends may close stale ones)."""
    return [root for root in list(_open_roots) if not root._closed]


def progress(total: float | None = None, desc: str | None = None, unit: str = "it", *,
             initial: float = 0, **kw: Any) -> Progress:
    """A bar for manual updates, nested under the active bar of this thread/task.

    >>> with progress(total=2, desc="steps", renderer="silent", publish=False) as p:
    ...     p.update(); p.update()
    >>> p.n, p.status
    (2, 'done')
    """
    parent = kw.pop("parent", None) or current()
    return Progress(total, desc, unit, initial=initial, parent=parent, **kw)


def track(iterable: Iterable[T], total: float | None = None, desc: str | None = None,
          unit: str = "it", *, initial: float = 0, **kw: Any) -> Tracked[T]:
    """Iterate over ``iterable`` with a bar; nests inside another ``track``/``progress``.

    ``total`` defaults to ``initial + len(iterable)`` when the iterable has a
    length: with ``initial=k`` the iterable holds what is *left*, and the bar
    starts at ``k`` ("resumes where it stopped"). A loop that raises marks
    the bar failed (for a bare ``for`` the frame is inspected to tell
    ``break`` from an exception; ``with track(...) as it: for x in it:``
    knows for sure). A loop left suspended (the iterator kept in a variable
    after a ``break``) stays the active bar, and later bars nest under it,
    until the iterator is closed or dropped.

    >>> [x * 2 for x in track(range(3), renderer="silent", publish=False)]
    [0, 2, 4]
    """
    if total is None:
        try:
            total = initial + len(iterable)  # type: ignore[arg-type]
        except (TypeError, AttributeError):
            total = None
    bar = progress(total, desc, unit, initial=initial, **kw)
    return Tracked(bar, iterable)


class Tracked(Generic[T]):
    """What :func:`track` returns: an iterator over the items, with its ``bar``.

    Usable as a context manager so an exception in the loop body is known
    exactly: ``with track(items) as it: for x in it: ...``.
    """

    __slots__ = ("bar", "_iterable", "_gen")

    def __init__(self, bar: Progress, iterable: Iterable[T]) -> None:
        self.bar = bar
        self._iterable = iterable
        self._gen: Iterator[T] | None = None

    def __iter__(self) -> Iterator[T]:
        gen = self._gen
        if gen is None:
            # The generator must not refer back to this object: a reference cycle
            # would keep it alive after a `for` loop drops it, delaying its close.
            gen = self._gen = _iterate(self.bar, self._iterable)
        return gen

    def __next__(self) -> T:
        return next(self.__iter__())

    def __enter__(self) -> Tracked[T]:
        self.bar._managed = True  # the generator leaves the verdict to __exit__
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.bar._managed = True
        if self._gen is not None:
            self._gen.close()  # type: ignore[attr-defined]
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.bar.fail(exc)
        else:
            self.bar.close()

    def close(self) -> None:
        """Stop iterating; the bar is done unless it failed."""
        self.__exit__(None, None, None)

    def __repr__(self) -> str:
        return f"<Tracked {self.bar!r}>"


def _iterate(bar: Progress, iterable: Iterable[T]) -> Iterator[T]:
    # The hot path: per item, one increment and one comparison. Generators run
    # in their caller's context, so setting the variable here makes `bar` the
    # active one inside the caller's loop body (where nested tracks look).
    token = _current.set(bar)
    i = bar._pace_c = bar.n
    outcome: Any = _EARLY
    try:
        check_at = i + 1
        for obj in iterable:
            yield obj
            i += 1
            if i >= check_at:
                bar.n = i
                check_at = i + bar._tick(i)
        outcome = None
    except GeneratorExit:
        raise  # closed early: decided in `finally`
    except BaseException as exc:  # raised by the iterable, or thrown in
        outcome = exc
        raise
    finally:
        bar.n = i
        with contextlib.suppress(ValueError):  # closed from another context: nothing to restore
            _current.reset(token)
        if outcome is None:
            bar.close()
        elif outcome is not _EARLY:
            bar.fail(outcome)
        elif not bar._managed:
            bar._stopped_early(sys._getframe(1) if hasattr(sys, "_getframe") else None)


# Opcodes at which a frame drops a loop's iterator *without* an exception:
# popping it after `break`/`return` (POP_TOP, POP_ITER in 3.14, SWAP), the end
# of an enclosing loop (FOR_ITER, END_FOR: e.g. zip() stopped by a shorter
# iterable), or an enclosing generator being closed at its `yield`.
_CLEAN_STOP_OPS = frozenset({
    "POP_TOP", "POP_ITER", "SWAP", "FOR_ITER", "END_FOR", "YIELD_VALUE", "RETURN_VALUE",
    "RETURN_CONST", "JUMP_BACKWARD", "JUMP_ABSOLUTE", "JUMP_FORWARD", "POP_BLOCK",
})


@functools.lru_cache(maxsize=512)
def _is_clean_stop(code: CodeType, lasti: int) -> bool:
    import dis  # only needed when a loop stops early; keeps `import` of this module cheap

    opname = None
    for ins in dis.get_instructions(code):
        if ins.offset > lasti:
            break
        opname = ins.opname
    return opname in _CLEAN_STOP_OPS


_noisy_callbacks: set[int] = set()


def _call(callback: Callback, bar: Progress) -> None:
    try:
        callback(bar)
    except Exception:  # a logging/checkpoint hook must not kill the loop it watches
        key = id(callback)
        if key in _noisy_callbacks:
            log.debug("progress callback %r on %r failed again", callback, bar, exc_info=True)
        else:
            _noisy_callbacks.add(key)
            log.exception("progress callback %r on %r failed; the loop goes on", callback, bar)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    described = f"{name}: {text}" if text else name
    return described if len(described) <= 200 else described[:199] + "…"


def _plain(value: Any) -> Any:
    # numpy scalars (and other number-likes) become plain numbers: snapshots go through JSON.
    if value is None or type(value) in (int, float):
        return value
    if hasattr(value, "item"):
        return value.item()
    return float(value)
