"""Resumable loops: an interrupted loop starts again where it stopped, with its results.

>>> import tempfile
>>> from jupyter_resman.core.session import Session
>>> s = Session(home=tempfile.mkdtemp())
>>> def run(stop_at=None):
...     with resumable(range(6), name="demo", every=2, session=s, progress=False) as loop:
...         for x in loop:
...             if x == stop_at:
...                 raise KeyboardInterrupt   # Ctrl-C, a crash, a dead kernel...
...             loop.record(x * 10)
...     return loop
>>> try:
...     run(stop_at=3)
... except KeyboardInterrupt:
...     pass
>>> loop = run()          # the same loop again: items 0-2 are not run a second time
>>> loop.start, loop.results
(3, [0, 10, 20, 30, 40, 50])
>>> run().start           # finished: nothing runs, the results come back at once
6
>>> s.close()

What is stored, and when: a checkpoint named ``name`` (see :mod:`.checkpoint`)
holding how many items are done and the results recorded for them. It is
saved every ``every`` items, when the loop is left early (an exception,
``KeyboardInterrupt``, ``break``), and at the end. A save pickles only the
results recorded since the previous one (a result is stored as it was then):
they ride in the checkpoint until about :data:`PART_BYTES` have gathered,
which then go to a *part* file the later versions refer to by name, so a
save costs the same at item 10 and at item 100 000. An item counts as done
once the loop body has finished with it and asks for the next one; results
recorded for an item that was interrupted are dropped and the item runs again,
so the final :attr:`Resumable.results` equal those of an uninterrupted run.

Progress is keyed by a fingerprint of the input, so different data starts
from the beginning (the progress of other inputs is kept, under the same
name). The input is iterated again from the start on resume, skipping items
already done, so it must yield the same items in the same order each time:
lists, tuples, ranges, arrays and pandas objects are used as they are; a
set is sorted (its order changes between processes); any other iterable (a
generator, a dict) is first read into a list. Pass ``key=`` to fingerprint
something small instead (then a generator is not read into memory, but it
must be re-created identically for a resume; the items already done are
still drawn from it, and skipped).

Periodic saves are pickled in the loop's thread (so a result changed after
it was recorded does not leak into an earlier save) and written by a
background thread, so the loop does not wait for ``fsync``; a process killed
while such a write is in flight resumes from the save before it. The save on
interruption and the last one are written before the loop returns.
"""

from __future__ import annotations

import functools
import itertools
import logging
import pickle
import secrets
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sized
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWarning,
    SerializationError,
)

if TYPE_CHECKING:
    from .checkpoint import CheckpointInfo, PendingSave
    from .session import Session

__all__ = ["Resumable", "resumable"]

log = logging.getLogger("jupyter_resman.resumable")

#: 2: results in pickled deltas and parts (1: one list of every result, still read).
STATE_FORMAT = 2
_READABLE_FORMATS = (1, 2)
#: Pickled results held in the checkpoint itself before they move to a part file.
PART_BYTES = 256 * 1024
_UNSET: Any = object()


def resumable(iterable: Iterable[Any], name: str, every: int = 10, *, fresh: bool = False,
              key: Any = _UNSET, total: int | None = None, desc: str | None = None,
              keep: int = 2, max_overhead: float | None = 0.01,
              progress: bool | Mapping[str, Any] = True,
              session: Session | None = None) -> Resumable:
    """Iterate over ``iterable``, skipping the items a previous run of ``name`` finished.

    Use it as a plain iterator (``for x in resumable(items, "job"): ...``)
    or, to record results, as a context manager::

        with resumable(items, name="labeling", every=10) as loop:
            for item in loop:
                loop.record(label(item))
        labels = loop.results        # earlier runs' results + this run's, in input order

    ``every``: save progress after at least this many items. Saves are
    also spaced so that they take at most ``max_overhead`` (1 %) of the
    loop's time — a loop with huge results and tiny items saves less often
    instead of slowing down — and one due while the previous is still being
    written (a slow disk) waits for the next item instead of stalling the
    loop (``max_overhead=None``: strictly every ``every``, waiting if need be).
    ``fresh``: forget the stored progress of ``name`` and start over.
    ``key``: fingerprint this instead of the items. ``total``/``desc``: for
    the progress bar (:func:`~.progress.track`, nested under an active bar),
    which starts at the number of items already done; ``progress=False``
    hides it, a dict passes options to it (``{"renderer": "silent"}``).
    ``keep``: how many saved versions of this input's progress to keep (more
    than one, so a damaged newest file still leaves one to resume from).
    """
    return Resumable(iterable, name, every, fresh=fresh, key=key, total=total, desc=desc,
                     keep=keep, max_overhead=max_overhead, progress=progress, session=session)


class Resumable:
    """A loop whose progress and recorded results survive interruption; see :func:`resumable`.

    Attributes: ``name``, ``fingerprint``, ``total`` (None when unknown),
    ``start`` (items already done when this run began), ``done`` (items done
    now), ``finished``, ``version`` (the last checkpoint version saved or
    loaded, None before any).
    """

    def __init__(self, iterable: Iterable[Any], name: str, every: int = 10, *,
                 fresh: bool = False, key: Any = _UNSET, total: int | None = None,
                 desc: str | None = None, keep: int = 2, max_overhead: float | None = 0.01,
                 progress: bool | Mapping[str, Any] = True,
                 session: Session | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r}: save after a positive whole number of items")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep={keep!r}: keep at least 1 saved version")
        if max_overhead is not None and not 0 < max_overhead <= 1:
            raise ValueError(f"max_overhead={max_overhead!r}: a fraction in (0, 1], or None")
        if session is None:
            from .session import get_session

            session = get_session()
        self.name = name
        self.every = every
        self.keep = keep
        self.max_overhead = max_overhead
        self._store = session.checkpoints
        self._session = session
        self._bar_options: dict[str, Any] | None = (
            dict(progress) if isinstance(progress, Mapping) else {} if progress else None)
        self.bar: Any = None  # the Progress of the current (or last) iteration
        self.desc = desc if desc is not None else name
        self._items, self.fingerprint = _prepare(iterable, key)
        self._one_shot = isinstance(self._items, Iterator)
        self.total = total if total is not None else (
            len(self._items) if isinstance(self._items, Sized) else None)
        self._results: list[Any] = []
        # What earlier saves hold: results [0, _stored) are pickled, in parts (written, or
        # encoded and waiting in _unwritten) and in _tail (pickled deltas the checkpoint
        # itself carries until they make a part).
        self._stored = 0
        self._parts: list[dict[str, Any]] = []
        self._tail: list[tuple[int, int, bytes]] = []  # (done, results) at its end, pickle
        self._tail_bytes = 0
        self._unwritten: list[tuple[str, bytes]] = []
        # (items done, results belonging to them): one tuple, assigned in one step, so an
        # interrupt can never see a count that disagrees with its results.
        self._mark = (0, 0)
        self.finished = False
        self.version: int | None = None
        self._mine: list[int] | None = None  # versions holding this input's progress
        self._saved = (0, 0, False)
        self._since_save = 0
        self._not_before = 0.0
        self._gen: weakref.ref[Generator[Any, None, None]] | None = None
        self._iterating = False
        self._failure: BaseException | None = None
        self._entered = False
        self._held: Generator[Any, None, None] | None = None
        self._writer: _WriteBehind | None = None
        if fresh:
            self._forget()
        else:
            self._resume()
        self.start = self.done

    # -- public -------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """How many items are done (including those of earlier runs)."""
        return self._mark[0]

    @property
    def results(self) -> list[Any]:
        """Every recorded result so far, in input order (a copy)."""
        return self._results[:]

    def record(self, result: Any) -> None:
        """Record a result of the item being processed (call it any number of times per item).

        Results of an item the loop never finished are dropped on interruption;
        the item runs again on resume and records them again.
        """
        if not self._iterating:
            raise CheckpointError(f"record() of loop {self.name!r} was called outside the loop; "
                                  "call it in the loop body, for the current item")
        self._results.append(result)

    def save(self) -> CheckpointInfo | None:
        """Save progress now (items finished so far) and wait for it to be on disk.

        Returns the version's info, or None when nothing changed since the
        last save. (Inside the loop, periodic saves are written by a
        background thread, so the loop does not wait for ``fsync``.)
        """
        self._join_writer()
        begun = self._begin()
        return None if begun is None else self._commit(*begun)

    def __iter__(self) -> Iterator[Any]:
        if self._iterating:
            raise CheckpointError(f"loop {self.name!r} is already being iterated")
        if self._one_shot and self._gen is not None:
            raise CheckpointError(f"the iterator of loop {self.name!r} was used up; create a new "
                                  "resumable() with the iterator re-created to resume")
        gen = self._run()
        # A weak reference: the generator refers to self, and a cycle would delay its
        # cleanup (the save on interruption) until the garbage collector runs. Inside
        # `with`, __exit__ closes it for sure, and knows why: hold it strongly till then.
        self._gen = weakref.ref(gen)
        if self._entered:
            self._held = gen
        return gen

    def __enter__(self) -> Resumable:
        self._entered = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._entered = False
        gen = self._gen() if self._gen is not None else None
        if gen is not None:
            if self._iterating:
                self._failure = exc
            gen.close()
        self._held = None

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"loop {self.name!r} has no known length; pass total=")
        return self.total

    def __repr__(self) -> str:
        return (f"Resumable({self.name!r}, done={self.done}/{self.total or '?'}, "
                f"start={self.start}, finished={self.finished})")

    # -- internals ------------------------------------------------------------------------

    def _run(self) -> Generator[Any, None, None]:
        self._iterating = True
        self._failure = None
        # A finished run yields nothing; do not even draw the skipped items.
        items: Iterable[Any] = () if self.finished else itertools.islice(self._items, self.done,
                                                                         None)
        tracked = self._track(items)
        completed = False
        try:
            for item in items if tracked is None else tracked:
                yield item
                # The body asked for the next item: this one is done.
                done, _ = self._mark
                self._mark = (done + 1, len(self._results))
                self._since_save += 1
                # (At the last item the final save follows at once: skip this one.)
                if self._since_save >= self.every and done + 1 != self.total and self._due():
                    self._save_timed()
            self.finished = True
            completed = True
            self._save_safely()
        except GeneratorExit:
            raise  # closed early; the cause, if known, was set by __exit__
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._iterating = False
            try:
                if not completed:
                    # Left early: the current item is not done, nor are its results.
                    del self._results[self._mark[1]:]
                    self._save_safely(interrupted=True)
            finally:
                self._stop_writer()
            if tracked is not None:
                if not completed:
                    tracked.bar.fail(self._failure)  # a failed bar stays failed once closed
                tracked.__exit__(None, None, None)

    def _due(self) -> bool:
        if self.max_overhead is None:
            return True  # strict: every `every` items, waiting for the disk if need be
        # A write still in flight (a slow disk: fsync can take 100+ ms) defers this save
        # rather than making the loop wait; the next one carries these items too.
        writer = self._writer
        return time.monotonic() >= self._not_before and (writer is None or not writer.busy())

    def _save_timed(self) -> None:
        """A periodic save: encoded here, written behind; spaced to bound its cost."""
        started = time.monotonic()
        self._save_safely(background=True)
        ended = time.monotonic()
        if self.max_overhead is not None:
            # What the loop paid (encoding, and waiting for a previous write still in
            # flight) stays under max_overhead of its time: cost / (cost + gap) <= max.
            self._not_before = ended + (ended - started) * (1 / self.max_overhead - 1)

    def _save_safely(self, *, interrupted: bool = False, background: bool = False) -> None:
        """Save, but let a failing disk cost a warning, not the user's computation."""
        try:
            if background:
                self._save_in_background()
            else:
                self.save()
        except SerializationError:
            if not interrupted:
                raise  # a result cannot be pickled: it never will be, say so at once
            warnings.warn(f"could not save the progress of loop {self.name!r}: a recorded "
                          "result cannot be pickled", CheckpointWarning, stacklevel=4)
        except (CheckpointError, OSError) as exc:
            self._warn_failed(exc)

    def _warn_failed(self, exc: BaseException) -> None:
        warnings.warn(f"could not save the progress of loop {self.name!r} ({exc}); the loop "
                      "goes on and will try again", CheckpointWarning, stacklevel=5)

    def _begin(self) -> tuple[PendingSave, tuple[int, int, bool]] | None:
        """Encode the progress (in the loop's thread: later changes to recorded results
        must not leak into this save); the version is taken when it is written."""
        done, committed = self._mark
        marker = (done, committed, self.finished)
        if self._saved == marker:
            return None
        if committed > self._stored:
            from .serialize import plain_pickle  # (numpy-heavy: imported when first needed)

            # Only the new results are pickled: earlier ones are in the tail or a part.
            delta = plain_pickle(self._results[self._stored:committed])
            self._tail.append((done, committed, delta))
            self._tail_bytes += len(delta)
            self._stored = committed
            if self._tail_bytes >= PART_BYTES:
                self._seal_tail(done, committed)
        state = {"format": STATE_FORMAT, "fingerprint": self.fingerprint, "done": done,
                 "total": self.total, "finished": self.finished, "parts": list(self._parts),
                 "tail": list(self._tail)}
        meta = {"resumable": STATE_FORMAT, "fingerprint": self.fingerprint, "done": done,
                "total": self.total, "finished": self.finished}
        if self._mine is None:
            self._mine = [i.version for i in self._store.versions(self.name) if _ours(i, self)]
        described = "finished" if self.finished else f"{done}/{self.total or '?'} done"
        pending = self._store.begin_save(self.name, state, f"resumable loop: {described}",
                                         meta=meta)
        self._since_save = 0
        return pending, marker

    def _seal_tail(self, done: int, count: int) -> None:
        """Move the tail's pickled results into a new part (written before the next version)."""
        part = f"r-{self.fingerprint[:16]}-{done}-{secrets.token_hex(4)}"
        blob = self._store.encode_part(self.name, part, [delta for _, _, delta in self._tail])
        self._unwritten.append((part, blob))
        self._parts.append({"part": part, "done": done, "count": count})
        self._tail, self._tail_bytes = [], 0

    def _commit(self, pending: PendingSave, marker: tuple[int, int, bool]) -> CheckpointInfo:
        """Write a begun save (any thread), then drop this input's versions beyond ``keep``.

        Parts it refers to are written first; one that fails stays queued and the
        version is not written (the next save tries both again).
        """
        while self._unwritten:
            part, blob = self._unwritten[0]
            self._store.write_part(self.name, part, blob)
            self._unwritten.pop(0)
        info = pending.commit()
        mine = [*(self._mine or ()), info.version]
        self._mine, self._saved, self.version = mine[-self.keep:], marker, info.version
        if len(mine) > self.keep:
            try:
                self._store.delete(self.name, mine[:-self.keep])
            except (CheckpointError, OSError) as exc:  # the save itself worked
                log.warning("loop %r: could not delete old versions %s: %s", self.name,
                            mine[:-self.keep], exc)
        return info

    def _save_in_background(self) -> None:
        self._join_writer()  # at most one write in flight, in order
        begun = self._begin()
        if begun is None:
            return
        if self._writer is None:
            self._writer = _WriteBehind(f"resman-checkpoint-{self.name}")
        self._writer.submit(functools.partial(self._commit, *begun))

    def _join_writer(self) -> None:
        """Wait for the write in flight; a failed one costs a warning."""
        if self._writer is None:
            return
        exc = self._writer.wait()
        if isinstance(exc, (CheckpointError, OSError)):
            self._warn_failed(exc)  # that save is lost; the next one is still worth trying
        elif exc is not None:
            raise exc

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()

    def _track(self, items: Iterable[Any]) -> Any:
        """The remaining items wrapped in a progress bar that starts at :attr:`done`."""
        if self._bar_options is None:
            return None
        from .progress import track

        options = {"session": self._session, **self._bar_options}
        tracked = track(items, total=self.total, desc=self.desc, initial=self.done, **options)
        tracked.__enter__()  # we, not the frame that drops the iterator, tell how it ended
        self.bar = tracked.bar
        return tracked

    def _resume(self) -> None:
        try:
            state, info = self._store.restore(self.name, where=lambda i: _ours(i, self))
        except CheckpointNotFoundError:
            if self.name in self._store:
                log.info("loop %r: no saved progress for this input; starting from the beginning",
                         self.name)
            return
        if (not isinstance(state, dict) or state.get("format") not in _READABLE_FORMATS
                or state.get("fingerprint") != self.fingerprint):
            warnings.warn(f"checkpoint {self.name!r} version {info.version} does not hold the "
                          "progress of this loop; starting from the beginning",
                          CheckpointWarning, stacklevel=4)
            return
        done, finished = int(state["done"]), bool(state["finished"])
        if state["format"] == 1:
            self._results = list(state["results"])
            self._tail, self._tail_bytes, self._stored = [], 0, 0  # re-saved in format 2
        else:
            loaded = self._load_results(state)
            if loaded is not None:  # a damaged part: resume where the parts before it end
                done, finished = loaded
        self._mark = (done, len(self._results))
        self.finished = finished
        self._saved = (self._mark[0], self._mark[1], self.finished)
        self.version = info.version
        self._drop_orphan_parts()
        log.info("loop %r: resuming after %d items (checkpoint version %d)", self.name,
                 self.done, info.version)

    def _load_results(self, state: dict[str, Any]) -> tuple[int, bool] | None:
        """Results from a format-2 state's parts and tail.

        Returns None when all loaded, or ``(done, finished)`` to resume from
        when a part is missing or damaged (a warning says which).
        """
        results: list[Any] = []
        parts: list[dict[str, Any]] = []
        for ref in state["parts"]:
            try:
                deltas = self._store.read_part(self.name, ref["part"])
            except CheckpointError as exc:  # missing (CheckpointNotFoundError) or damaged
                warnings.warn(f"loop {self.name!r}: {exc}; resuming after the {len(results)} "
                              "results before it instead", CheckpointWarning, stacklevel=5)
                self._results, self._parts, self._stored = results, parts, len(results)
                self._tail, self._tail_bytes = [], 0
                return (parts[-1]["done"] if parts else 0), False
            for delta in deltas:  # signed with the part: safe to unpickle
                results.extend(pickle.loads(delta))
            parts.append(ref)
        tail = [tuple(entry) for entry in state["tail"]]
        for _done, _count, delta in tail:
            results.extend(pickle.loads(delta))
        self._results, self._parts, self._stored = results, parts, len(results)
        self._tail = tail  # type: ignore[assignment]
        self._tail_bytes = sum(len(delta) for _, _, delta in tail)
        return None

    def _drop_orphan_parts(self) -> None:
        """Parts of this input no loadable version refers to (a crash between writing a
        part and its version; a damaged newer version) are removed."""
        prefix = f"r-{self.fingerprint[:16]}-"
        keep = {ref["part"] for ref in self._parts}
        orphans = [p for p in self._store.parts(self.name) if p.startswith(prefix) and p not in keep]
        if orphans:
            try:
                self._store.delete_parts(self.name, orphans)
            except (CheckpointError, OSError) as exc:
                log.warning("loop %r: could not remove unused parts %s: %s", self.name, orphans,
                            exc)

    def _forget(self) -> None:
        stale = [i.version for i in self._store.versions(self.name) if "resumable" in i.meta]
        if stale:
            self._store.delete(self.name, stale)
        loops_parts = [p for p in self._store.parts(self.name) if p.startswith("r-")]
        if loops_parts:
            self._store.delete_parts(self.name, loops_parts)
        self._mine = []


class _WriteBehind:
    """A thread that writes begun saves while the loop goes on; one job at a time.

    One thread for the whole loop: starting a thread per save costs a
    handshake with the scheduler, which on a busy machine is slower than the
    write itself. It is not a daemon (an exiting interpreter lets it finish
    its write), so when idle it ends by itself and is restarted on demand: an
    abandoned loop never keeps the interpreter from exiting.
    """

    IDLE_EXIT_S = 2.0

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._job: Callable[[], Any] | None = None
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], Any]) -> None:
        """Run ``job`` in the thread (call :meth:`wait` first: one job at a time)."""
        with self._cond:
            self._job = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name)
                try:
                    self._thread.start()
                except BaseException:
                    self._job = self._thread = None
                    raise
            self._cond.notify()

    def busy(self) -> bool:
        """Whether a job is in flight (a hint: it may finish right after)."""
        return self._job is not None

    def wait(self) -> BaseException | None:
        """Block until the job in flight is done; return (and forget) its error."""
        with self._cond:
            while self._job is not None:
                self._cond.wait()
            error, self._error = self._error, None
        return error

    def stop(self) -> None:
        """Finish the job in flight, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.IDLE_EXIT_S
                while self._job is None and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                job = self._job
                if job is None:  # idle too long, or stopping: a later submit starts anew
                    self._thread = None
                    return
            try:
                job()
            except BaseException as exc:  # handed to the loop's thread by wait()
                self._error = exc
            with self._cond:
                self._job = None
                self._cond.notify_all()


def _ours(info: CheckpointInfo, loop: Resumable) -> bool:
    """Whether a version holds this loop's progress (judged from its header alone)."""
    meta = info.meta
    return (meta.get("resumable") in _READABLE_FORMATS
            and meta.get("fingerprint") == loop.fingerprint)


#: Types iterated again as they are: re-iterable and ordered the same in every process.
_REITERABLE = (list, tuple, range, str, bytes)


def _prepare(iterable: Iterable[Any], key: Any) -> tuple[Iterable[Any], str]:
    # Imported here: this module stays light enough for `core` to import eagerly
    # (a lazily imported submodule named like its function would hide the function).
    from .fingerprints import fingerprint

    if key is not _UNSET:
        return iterable, fingerprint(("resumable-key", key))
    if isinstance(iterable, (set, frozenset)):
        # A set's order changes from one process to the next (string hashing is
        # salted): sorted, it is the same input every time.
        try:
            iterable = sorted(iterable)
        except TypeError:
            iterable = list(iterable)
    elif not isinstance(iterable, _REITERABLE) and not _is_array_like(iterable):
        # A generator can be read only once, and a dict's fingerprint ignores
        # order: read it into a list, whose fingerprint follows the order.
        iterable = list(iterable)
    return iterable, fingerprint(iterable)


def _is_array_like(obj: Any) -> bool:
    # Only objects of an already imported numpy or pandas can be arrays or frames.
    np, pd = sys.modules.get("numpy"), sys.modules.get("pandas")
    return ((np is not None and isinstance(obj, np.ndarray))
            or (pd is not None and isinstance(obj, (pd.Series, pd.Index, pd.DataFrame))))
