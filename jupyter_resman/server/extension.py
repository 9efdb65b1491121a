"""The extension's configuration and its state in one Jupyter server.

One :class:`ResmanExtension` per server holds the session it reads, the
thread pool doing every psutil and SQLite call (so the event loop never
waits on a disk or ``/proc``), and the one :class:`~jupyter_resman.core.reports.MetricsSampler`
that keeps CPU % between requests.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from traitlets import Bool, Float, Integer, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from ..core.reports import MetricsSampler
from ..core.session import Session, get_session

__all__ = ["ResmanExtension", "close_on_cleanup"]

T = TypeVar("T")


class ResmanExtension(LoggingConfigurable):
    """Settings (``c.ResmanExtension.*``) and per-server state of the REST API."""

    home = Unicode(
        None, allow_none=True, config=True,
        help="The jupyter_resman home the API reads (cache, live feed, checkpoints). "
             "Default: the process's default session (RESMAN_HOME, else the user's data dir). "
             "Kernels must use the same home for their samples and progress to show.",
    )
    workers = Integer(
        4, config=True,
        help="Threads running the psutil and SQLite work of requests, off the event loop.",
    )
    warning_threshold = Float(
        0.8, config=True,
        help="Fraction of a limit at which the sidebar shows a warning (reported to clients).",
    )
    gpu = Bool(True, config=True,
               help="Report NVIDIA GPUs (through NVML) when a driver is present.")

    @validate("workers")
    def _valid_workers(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 64:
            raise TraitError(f"ResmanExtension.workers={proposal['value']} must be in 1..64")
        return proposal["value"]

    @validate("warning_threshold")
    def _valid_threshold(self, proposal: Any) -> float:
        if not 0 < proposal["value"] <= 1:
            raise TraitError(f"ResmanExtension.warning_threshold={proposal['value']} must be a "
                              "fraction in (0, 1], e.g. 0.8")
        return proposal["value"]

    def __init__(self, serverapp: Any = None, **kwargs: Any) -> None:
        super().__init__(parent=serverapp, **kwargs)
        self._own_session = Session(home=self.home) if self.home else None
        self._executor = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="jupyter_resman")
        self._sampler: MetricsSampler | None = None
        self._sampler_lock = threading.Lock()
        self._closed = False

    @property
    def session(self) -> Session:
        """The configured home's session, else the process default (follows ``set_session``)."""
        return self._own_session if self._own_session is not None else get_session()

    @property
    def sampler(self) -> MetricsSampler:
        """The server's one metrics sampler, built on first use (in a worker thread)."""
        sampler = self._sampler
        if sampler is None:
            with self._sampler_lock:
                if self._sampler is None:
                    self._sampler = MetricsSampler(self.session.home.root, gpu=self.gpu)
                sampler = self._sampler
        return sampler

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
        """Run ``fn(*args, **kwargs)`` in the pool; await the result on the event loop."""
        if self._closed:
            raise RuntimeError("the jupyter_resman server extension was stopped")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the pool (waiting for running work), release NVML, close an owned session."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._sampler is not None:
            self._sampler.close()
        if self._own_session is not None:
            self._own_session.close()


def close_on_cleanup(serverapp: Any, close: Callable[[], None]) -> None:
    """Call ``close()`` when the server cleans up its extensions (on stop).

    jupyter_server calls stop hooks only for ``ExtensionApp`` extensions; a
    plain module extension like this one gets none, so ``close`` is chained
    onto the server's own ``cleanup_extensions`` step.
    """
    previous = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        try:
            await previous()
        finally:
            close()

    serverapp.cleanup_extensions = cleanup_extensions
