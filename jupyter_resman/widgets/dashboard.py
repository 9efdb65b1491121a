"""The dashboard: monitor, progress, cache, checkpoints, registry and resources tabs, kept live.

``%resman`` (no argument) and :func:`jupyter_resman.widgets.dashboard` show
it. One background thread per dashboard (a :class:`~._refresh.Refresher`)
refreshes the panels — the monitor and progress tabs twice a second, the
cache, checkpoints, registry and resources tabs every few seconds and only
while their tab is selected — so graphs and bars move while a long cell
runs. The monitor's own sampling thread (``session.monitor.start()``) is
started if it was not running, and stopped again by :meth:`Dashboard.close`
in that case.

>>> import tempfile, jupyter_resman as resman
>>> from jupyter_resman.widgets import Dashboard
>>> with resman.Session(home=tempfile.mkdtemp()) as s:
...     board = Dashboard(s)
...     board.tabs.titles
...     board.close()
('Monitor', 'Progress', 'Cache', 'Checkpoints', 'Registry', 'Resources')
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.session import get_session
from ._display import begin_close, close_tree, escape, mimebundle
from ._refresh import Refresher
from .cache_panel import CachePanel
from .checkpoints_panel import CheckpointsPanel
from .monitor_panel import MonitorPanel
from .progress_panel import ProgressPanel
from .registry_panel import MIN_REGISTRY_PERIOD, RegistryPanel
from .resources_panel import ResourcesPanel

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = ["Dashboard", "dashboard"]

# The open dashboard of each session: `%resman` run twice shows the same live
# widget twice (two views of one model) instead of starting a second thread.
_open: dict[int, Dashboard] = {}
_open_lock = threading.Lock()


class Dashboard(widgets.VBox):
    """All panels of one session in tabs, refreshed by one background thread.

    ``interval`` is the monitor's sampling interval if the dashboard starts
    it; ``window`` the samples on the monitor graphs; ``slow_period`` how
    often the cache, checkpoints and resources tabs re-read their state
    (seconds; the registry tab never more often than every
    :data:`~.registry_panel.MIN_REGISTRY_PERIOD` seconds).
    ``close()`` stops the thread (and the monitor, if it started it),
    disconnects every callback and closes every widget.
    """

    def __init__(self, session: Session | None = None, *, interval: float = 1.0,
                 window: int = 300, slow_period: float = 5.0, start_monitor: bool = True) -> None:
        session = session if session is not None else get_session()
        self.session = session
        built: list[Any] = []
        try:
            self.monitor_panel = _built(built, MonitorPanel(
                session, window=window, interval=interval, start_monitor=start_monitor))
            self.progress_panel = _built(built, ProgressPanel())
            self.cache_panel = _built(built, CachePanel(session, period=slow_period))
            self.checkpoints_panel = _built(built, CheckpointsPanel(session, period=slow_period))
            self.registry_panel = _built(built, RegistryPanel(
                session, period=max(slow_period, MIN_REGISTRY_PERIOD)))
            self.resources_panel = _built(built, ResourcesPanel(session, period=slow_period))
        except BaseException:
            for panel in reversed(built):  # a half-built dashboard leaves no thread or widget
                panel.close()
            raise
        self._lock = threading.RLock()
        self._closed = False
        self.panels: tuple[Any, ...] = (self.monitor_panel, self.progress_panel,
                                        self.cache_panel, self.checkpoints_panel,
                                        self.registry_panel, self.resources_panel)
        self.tabs = widgets.Tab(children=self.panels,
                                titles=("Monitor", "Progress", "Cache", "Checkpoints",
                                        "Registry", "Resources"))
        self.header = widgets.HTML(
            f"<div class='resman-dashboard-header'><b>jupyter_resman</b> &middot; home "
            f"<code>{escape(session.home.root)}</code></div>")
        super().__init__([self.header, self.tabs])
        self.add_class("resman-dashboard")
        self._show_selected()
        self.tabs.observe(self._on_tab, names="selected_index")
        self._refresher = Refresher("resman-dashboard")
        self._tasks = []
        for panel in self.panels:
            task = functools.partial(self._refresh_panel, panel)
            self._tasks.append(task)
            self._refresher.add(task, panel.period, name=f"{type(panel).__name__}.refresh")
        self._refresher.start()

    # -- refreshing -------------------------------------------------------------------

    def _show_selected(self) -> None:
        selected = self.tabs.selected_index
        for index, panel in enumerate(self.panels):
            if hasattr(panel, "visible"):
                panel.visible = index == selected

    def _on_tab(self, change: Any) -> None:
        with self._lock:
            if self._closed:
                return
            self._show_selected()
            new = change.get("new")
            if isinstance(new, int) and 0 <= new < len(self._tasks):
                self._refresher.poke(self._tasks[new])  # draw the tab now, not in 5 s

    def _refresh_panel(self, panel: Any) -> None:
        if self.session.closed:
            # The session went away under us: nothing left to read. Stop quietly
            # (from our own thread: no join).
            self._refresher.stop(join=False)
            return
        with self._lock:
            if self._closed:
                return
        panel.refresh()  # a hidden panel decides itself what to skip

    def refresh(self) -> None:
        """Refresh every panel now, in this thread (also the hidden tabs)."""
        for panel in self.panels:
            panel.refresh(force=True)

    @property
    def running(self) -> bool:
        """Whether the background thread is running."""
        return self._refresher.running

    # -- fallbacks ----------------------------------------------------------------------

    def to_text(self) -> str:
        """Every panel as plain text (terminal IPython, static renders)."""
        return "\n".join([f"jupyter_resman dashboard — home {self.session.home.root}",
                          *(panel.to_text() for panel in self.panels)])

    def to_html(self) -> str:
        """Every panel as static HTML, one section each."""
        sections = "".join(f"<section style='margin:6px 0'><h4 style='margin:4px 0'>{title}</h4>"
                           f"{panel.to_html()}</section>"
                           for title, panel in zip(self.tabs.titles, self.panels))
        return f"<div class='resman-dashboard-static'>{self.header.value}{sections}</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread, disconnect callbacks, close panels and widgets; idempotent."""
        if not begin_close(self):
            return
        self._refresher.stop()
        self.tabs.unobserve(self._on_tab, names="selected_index")
        with _open_lock:
            if _open.get(id(self.session)) is self:
                del _open[id(self.session)]
        errors: list[BaseException] = []
        for panel in self.panels:
            try:
                panel.close()
            except Exception as exc:  # close the others, then report the first failure
                errors.append(exc)
        close_tree(self.header)
        close_tree(self.tabs)
        close_tree(self.layout)
        super().close()
        if errors:
            raise errors[0]

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _built(built: list[Any], panel: Any) -> Any:
    built.append(panel)
    return panel


def dashboard(session: Session | None = None, **options: Any) -> Dashboard:
    """The dashboard of ``session`` (the default session if ``None``), ready to display.

    Returns the session's open dashboard if there is one (so showing it
    again costs no second thread); otherwise creates it with ``options``
    (see :class:`Dashboard`). ``%resman`` with no argument shows this.
    """
    session = session if session is not None else get_session()
    with _open_lock:
        board = _open.get(id(session))
        if board is not None and not board.closed and board.session is session:
            return board
    board = Dashboard(session, **options)
    with _open_lock:
        _open[id(session)] = board
    return board
