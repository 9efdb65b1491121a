"""Nested progress bars in the notebook, drawn from progress snapshots.

A progress tree (:mod:`jupyter_resman.core.progress`) produces snapshots; this
module draws them:

* :class:`ProgressView` draws *one tree* as *one widget tree*: a box with a
  row per bar (label, bar, counts/rate/ETA), rows reused from frame to frame.
  Nested bars never print their own outputs, so there are none of the blank
  lines and orphaned bars that one-widget-per-bar designs leave in
  JupyterLab.
* :class:`NotebookRenderer` is the ``"notebook"`` progress renderer:
  ``resman.track`` in a notebook kernel draws its tree in the cell that
  created it, moved by a shared background thread at most twice a second
  (so elapsed time and ETA keep moving during a long item). When the tree
  finishes, the output becomes static HTML of the final state and the
  widgets are closed: thousands of finished loops leave no widget models
  behind, and a saved notebook shows its bars without a kernel.
* :class:`ProgressPanel` (the dashboard's tab) shows every running tree of
  this process plus the last few finished ones.

Colours follow the status of each bar: running blue, paused orange, done
green, failed red.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from ..core.errors import ConfigError
from ..core.progress import open_trees
from ..core.progress_render import format_rate, format_time, format_tree
from ..core.settings import format_size
from ._display import STATUS_COLOURS, close_tree, escape, mimebundle
from ._refresh import MIN_PERIOD, Refresher

__all__ = ["NotebookRenderer", "ProgressPanel", "ProgressView", "snapshot_html"]

_BAR_STYLES = {"running": "", "paused": "warning", "done": "success", "failed": "danger"}
# Markers around the static HTML of a tree, so a notebook test (nbval) can
# sanitise a whole bar, whose times and rates change from run to run.
HTML_START, HTML_END = "<!--resman-progress-->", "<!--/resman-progress-->"


# -- text pieces shared by the widget rows and the static HTML -----------------------


def _count(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "B":
        return format_size(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return f"{int(value):,}"


def _percent_text(node: dict[str, Any]) -> str:
    percent = node.get("percent")
    return "" if percent is None else f"{percent:.0f}%"


def _detail(node: dict[str, Any]) -> str:
    """``45/100 [00:12<00:15, 3.50it/s]`` (or ``45it [00:12, 3.50it/s]`` without a total)."""
    unit = str(node.get("unit") or "it")
    rate = format_rate(node.get("rate"), unit)
    elapsed = format_time(node.get("elapsed"))
    if node.get("total") is None:
        count = _count(node.get("n"), unit) + ("" if unit == "B" else unit)
        text = f"{count} [{elapsed}, {rate}]"
    else:
        text = (f"{_count(node.get('n'), unit)}/{_count(node['total'], unit)} "
                f"[{elapsed}<{format_time(node.get('eta'))}, {rate}]")
    status = node.get("status")
    if status == "paused":
        text += " paused"
    elif status == "failed":
        text += f" failed: {node['error']}" if node.get("error") else " failed"
    return text


def _flatten(snapshot: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    rows: list[tuple[dict[str, Any], int]] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        rows.append((node, depth))
        for child in node.get("children") or ():
            walk(child, depth + 1)

    walk(snapshot, 0)
    return rows


def snapshot_html(snapshot: dict[str, Any]) -> str:
    """A whole tree as static HTML: one row per bar, coloured by status, children indented."""
    rows = []
    for node, depth in _flatten(snapshot):
        colour = STATUS_COLOURS.get(str(node.get("status")), STATUS_COLOURS["running"])
        percent = node.get("percent")
        width = 0.0 if percent is None else min(max(float(percent), 0.0), 100.0)
        bar = (f"<div style='flex:1;min-width:80px;height:12px;background:#e6e6e6;"
               f"border-radius:2px'><div style='width:{width:.1f}%;height:100%;"
               f"background:{colour};border-radius:2px'></div></div>"
               if percent is not None else "<div style='flex:1;min-width:80px'></div>")
        rows.append(
            f"<div class='resman-progress-row' data-status='{escape(node.get('status'))}' "
            f"style='display:flex;align-items:center;gap:8px;margin-left:{depth * 1.5}em'>"
            f"<span style='min-width:10em'>{escape(node.get('desc') or '')}</span>{bar}"
            f"<span class='resman-percent' style='min-width:3em;text-align:right'>"
            f"{escape(_percent_text(node))}</span>"
            f"<span style='color:{colour};font-family:monospace'>{escape(_detail(node))}</span>"
            f"</div>")
    return f"{HTML_START}<div class='resman-progress'>{''.join(rows)}</div>{HTML_END}"


# -- one tree --------------------------------------------------------------------------


class _Row:
    """The widgets of one bar: label, progress bar, percentage and details."""

    def __init__(self) -> None:
        self.label = widgets.HTML(layout=widgets.Layout(min_width="10em"))
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                         layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.info = widgets.HTML()
        self.box = widgets.HBox([self.label, self.bar, self.info],
                                layout=widgets.Layout(align_items="center"))
        self.box.add_class("resman-progress-row")

    def show(self, node: dict[str, Any], depth: int) -> None:
        status = str(node.get("status"))
        colour = STATUS_COLOURS.get(status, STATUS_COLOURS["running"])
        percent = node.get("percent")
        # hold_sync: one comm message per row and frame, not one per trait.
        with self.box.hold_sync(), self.bar.hold_sync(), self.label.hold_sync(), \
                self.info.hold_sync():
            self.label.value = (f"<span style='padding-left:{depth * 1.5}em'>"
                                f"{escape(node.get('desc') or '')}</span>")
            self.bar.value = 0.0 if percent is None else min(max(percent / 100.0, 0.0), 1.0)
            self.bar.bar_style = _BAR_STYLES.get(status, "")
            self.bar.layout.visibility = "hidden" if percent is None else "visible"
            self.info.value = (f"<span class='resman-percent'>{escape(_percent_text(node))}"
                               f"</span> <span style='color:{colour};font-family:monospace'>"
                               f"{escape(_detail(node))}</span>")

    def close(self) -> None:
        close_tree(self.box)


class ProgressView(widgets.VBox):
    """One progress tree as one widget: a row per bar, children indented under parents.

    >>> view = ProgressView({"desc": "epochs", "n": 1, "total": 4, "percent": 25.0,
    ...                      "status": "running",
    ...                      "children": [{"desc": "batches", "n": 5, "total": 10, "percent": 50.0,
    ...                                    "status": "running", "children": []}]})
    >>> len(view.children), view.rows[0].bar.value, view.rows[1].bar.value
    (2, 0.25, 0.5)
    >>> view.close()
    """

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        super().__init__(layout=widgets.Layout(width="100%"))
        self.add_class("resman-progress")
        self.rows: list[_Row] = []  # the first len(children) are shown, the rest are spare
        self._lock = threading.RLock()
        self._snapshot: dict[str, Any] | None = None
        self._closed = False
        if snapshot is not None:
            self.show(snapshot)

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The snapshot drawn last."""
        return self._snapshot

    def show(self, snapshot: dict[str, Any]) -> None:
        """Draw ``snapshot`` (a root's :meth:`~jupyter_resman.core.progress.Progress.snapshot`)."""
        with self._lock:
            if self._closed:
                return
            self._snapshot = snapshot
            nodes = _flatten(snapshot)
            while len(self.rows) < len(nodes):
                self.rows.append(_Row())
            # Rows of bars that left the tree (a finished inner loop) are kept
            # aside, not closed: the next inner loop reuses them instead of
            # creating a dozen widget models per iteration of the outer loop.
            for row, (node, depth) in zip(self.rows, nodes):
                row.show(node, depth)
            boxes = tuple(row.box for row in self.rows[:len(nodes)])
            if boxes != tuple(self.children):  # type: ignore[has-type]
                self.children = boxes

    def to_text(self) -> str:
        """The tree as indented text lines (the console renderer's format)."""
        snap = self._snapshot
        return "\n".join(format_tree(snap, 100)) if snap else "(no progress)"

    def to_html(self) -> str:
        """The tree as static HTML (see :func:`snapshot_html`)."""
        snap = self._snapshot
        return snapshot_html(snap) if snap else "<div class='resman-progress'></div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    def close(self) -> None:
        """Close the view and every row's widgets; idempotent."""
        if "_lock" not in vars(self):  # __init__ failed early: nothing was built
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            rows, self.rows = self.rows, []
        for row in rows:
            row.close()
        close_tree(self.layout)
        super().close()


# -- the notebook renderer ---------------------------------------------------------------


# One thread for every bar of the process; it ends when the last bar finishes.
_ticker = Refresher("resman-progress", stop_when_idle=True)


def _fresh_snapshot(tree_id: str) -> dict[str, Any] | None:
    """A new snapshot of this process's open tree ``tree_id`` (None once it finished)."""
    for root in open_trees():
        if root.id == tree_id:
            return root.snapshot()
    return None


class NotebookRenderer:
    """The ``"notebook"`` progress renderer: one live :class:`ProgressView` per tree.

    The first frame is displayed at once in the current output; later frames
    are only remembered, and the shared background thread draws the newest
    (or a fresh snapshot of the running tree) at most twice a second. At the
    end the display is replaced by the final state as static HTML and text,
    and the widgets are closed.
    """

    def __init__(self) -> None:
        self.view: ProgressView | None = None
        self._handle: Any = None
        self._pending: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def draw(self, snapshot: dict[str, Any]) -> None:
        """Remember ``snapshot``; the first one is shown immediately."""
        with self._lock:
            if self._closed:
                return
            if self.view is not None:
                self._pending = snapshot
                return
            self.view = ProgressView(snapshot)
        from IPython.display import display

        self._handle = display(self.view, display_id=True)
        _ticker.add(self._tick, period=MIN_PERIOD, name="notebook progress")

    def _tick(self) -> None:
        with self._lock:
            if self._closed or self.view is None:
                return
            snap, self._pending = self._pending, None
            view = self.view
        tree_id = (snap or view.snapshot or {}).get("id")
        fresh = _fresh_snapshot(tree_id) if tree_id is not None else None
        if fresh is not None or snap is not None:
            view.show(fresh if fresh is not None else snap)  # type: ignore[arg-type]

    def close(self, snapshot: dict[str, Any]) -> None:
        """Show the final state as static output and close the widgets; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            view, self.view = self.view, None
        _ticker.remove(self._tick)
        final = {"text/plain": "\n".join(format_tree(snapshot, 100)),
                 "text/html": snapshot_html(snapshot)}
        if self._handle is not None:
            self._handle.update(final, raw=True)
        else:  # never drawn (a tree that finished before its first frame)
            from IPython.display import display

            display(final, raw=True)
        if view is not None:
            view.close()


# -- the dashboard's tab -------------------------------------------------------------------


class ProgressPanel(widgets.VBox):
    """Every running progress tree of this process, and the last ``keep_finished`` finished.

    Trees come from :func:`~jupyter_resman.core.progress.open_trees`; a tree
    the panel saw running stays on it (drawn in its final state) after it
    finishes, until ``keep_finished`` newer ones have finished.
    """

    #: Seconds between two refreshes when driven by a dashboard (2 Hz).
    period = MIN_PERIOD

    def __init__(self, *, keep_finished: int = 5) -> None:
        if not isinstance(keep_finished, int) or keep_finished < 0:
            raise ConfigError(f"keep_finished={keep_finished!r} must be a whole number >= 0, e.g. 5")
        self.keep_finished = keep_finished
        self.empty = widgets.HTML("<i>No progress bars yet: loops with <code>resman.track()"
                                  "</code> or <code>resman.progress()</code> appear here.</i>")
        super().__init__([self.empty])
        self.add_class("resman-progress-panel")
        self._lock = threading.RLock()
        self._trees: dict[str, tuple[Any, ProgressView]] = {}  # id -> (root, view)
        self._finished: list[str] = []  # ids, most recently finished last
        self._closed = False
        self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Draw every known tree's current snapshot; whether anything is shown."""
        with self._lock:
            if self._closed:
                return False
            for root in open_trees():
                if root.id not in self._trees:
                    self._trees[root.id] = (root, ProgressView())
            for tree_id, (root, view) in self._trees.items():
                if tree_id in self._finished:
                    continue  # drawn in its final state already
                view.show(root.snapshot())
                if root.closed:
                    self._finished.append(tree_id)
            while len(self._finished) > self.keep_finished:
                _root, view = self._trees.pop(self._finished.pop(0))
                view.close()
            running = [v for i, (_r, v) in self._trees.items() if i not in self._finished]
            done = [self._trees[i][1] for i in reversed(self._finished)]
            children = tuple(running + done) or (self.empty,)
            if children != tuple(self.children):  # type: ignore[has-type]
                self.children = children
            return bool(self._trees)

    @property
    def views(self) -> list[ProgressView]:
        """The views on the panel: running trees first, then the finished, newest first."""
        with self._lock:
            return [c for c in self.children if isinstance(c, ProgressView)]

    def to_text(self) -> str:
        views = self.views
        if not views:
            return "Progress: no progress bars"
        return "\n".join(v.to_text() for v in views)

    def to_html(self) -> str:
        views = self.views
        if not views:
            return "<div class='resman-progress-panel'><i>No progress bars</i></div>"
        return "<div class='resman-progress-panel'>" + "".join(v.to_html() for v in views) + \
            "</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    def close(self) -> None:
        """Close every view; idempotent."""
        if "_lock" not in vars(self):  # __init__ failed early: nothing was built
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            trees, self._trees = self._trees, {}
        for _root, view in trees.values():
            view.close()
        close_tree(self.empty)
        close_tree(self.layout)
        super().close()
