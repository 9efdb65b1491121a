"""Live graphs of the kernel's and the system's memory and CPU (and GPUs when present).

The panel draws what :class:`~jupyter_resman.core.monitor.Monitor` measured
— its samples, peaks and limit levels — and computes no metric itself. It
keeps a fixed-length rolling window of samples (``window`` points, five
minutes at the monitor's default 1 Hz) and redraws a plotly ``FigureWidget``
in one ``batch_update`` when a new sample has arrived, at most twice a
second, from the dashboard's background thread::

    panel = MonitorPanel(session)      # starts session.monitor if it is not running
    panel                              # shows the graphs; they move while cells run
    panel.close()                      # stops what the panel started

Lines: the kernel (this process and its children) and the whole system;
the memory limit as a red dashed line and its warning threshold dotted; the
kernel's peak memory as a grey dotted line. A measurement whose limit is at
its warning level turns orange, past the limit red.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import ConfigError
from ..core.session import get_session
from ..core.settings import format_size
from ._display import (
    BLUE,
    GREEN,
    GREY,
    LEVEL_COLOURS,
    ORANGE,
    PURPLE,
    RED,
    begin_close,
    close_tree,
    escape,
    mimebundle,
    sparkline,
)

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = ["MonitorPanel"]

#: Samples kept on screen: five minutes at 1 Hz.
DEFAULT_WINDOW = 300
_GPU_KEY = re.compile(r"^gpu(\d+)_util$")
_LEVEL_RANK = {"ok": 0, "warning": 1, "exceeded": 2}


class MonitorPanel(widgets.VBox):
    """Rolling graphs of memory, CPU and GPU use with limits, thresholds and peaks.

    ``session`` defaults to the process's default session. ``window`` is the
    number of samples on screen; ``interval`` the sampling interval used if
    the panel has to start the monitor (``start_monitor=False`` leaves a
    stopped monitor stopped: the graphs then only move on :meth:`refresh`
    after ``session.monitor.sample()``).
    """

    #: Seconds between two refreshes when driven by a dashboard (2 Hz).
    period = 0.5

    def __init__(self, session: Session | None = None, *, window: int = DEFAULT_WINDOW,
                 interval: float = 1.0, start_monitor: bool = True, height: int = 460) -> None:
        if not isinstance(window, int) or isinstance(window, bool) or window < 2:
            raise ConfigError(f"window={window!r} must be a whole number of samples >= 2, e.g. 300")
        session = session if session is not None else get_session()
        self.session = session
        self.monitor = session.monitor
        self._lock = threading.RLock()
        self._closed = False
        self._started_monitor = False
        self.visible = True  # a dashboard hides the panel while another tab is selected
        self._stale = False  # samples arrived while hidden: draw them once visible again
        if start_monitor and not self.monitor.running:
            self.monitor.start(interval)
            self._started_monitor = True
        self._samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=window)
        self._seed()
        latest = self._samples[-1] if self._samples else self.monitor.sample().to_dict()
        self.gpus = sorted(int(m.group(1)) for key in latest if (m := _GPU_KEY.match(key)))
        self.header = widgets.HTML()
        self.figure = self._build_figure(height)
        super().__init__([self.header, self.figure])
        self.add_class("resman-monitor-panel")
        self.refresh(force=True)

    # -- data ---------------------------------------------------------------------

    def _seed(self) -> None:
        """Start from the samples the monitor already holds, if it has been running."""
        window = self._samples.maxlen or 1
        self._samples.extend(s.to_dict() for s in self.monitor.samples()[-window:])

    def _ingest(self) -> bool:
        """Append the monitor's samples newer than the newest shown; whether any came.

        Every sample of the monitor's thread is taken (its history since the
        last refresh), so an interval shorter than the refresh period leaves no
        gaps. A stopped monitor has no thread: then the newest sample taken by
        hand (``monitor.sample()``) is drawn.
        """
        last_t = self._samples[-1]["t"] if self._samples else None
        window = self._samples.maxlen or 1  # after a long hidden spell, only what fits
        new = [s.to_dict() for s in self.monitor.samples(since=last_t)[-window:]]
        if not new:
            sample = self.monitor.last()
            if sample is None or (last_t is not None and sample.t <= last_t):
                return False
            new = [sample.to_dict()]
        self._samples.extend(new)
        return True

    @property
    def samples(self) -> list[dict[str, Any]]:
        """The samples on screen, oldest first (``Sample.to_dict`` keys)."""
        with self._lock:
            return list(self._samples)

    # -- drawing ------------------------------------------------------------------

    def _build_figure(self, height: int) -> go.FigureWidget:
        rows = 3 if self.gpus else 2
        titles = ["Memory", "CPU (% of the cores we may use)"] + (["GPU (%)"] if self.gpus else [])
        # The system's memory gets its own (right) axis: next to a 64 GB machine a
        # 2 GB kernel would otherwise be a flat line at the bottom.
        specs = [[{"secondary_y": True}]] + [[{}]] * (rows - 1)
        base = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                             subplot_titles=titles, specs=specs)
        fig = go.FigureWidget(base)
        line = {"width": 1, "dash": "dash"}

        def add(name: str, row: int, colour: str, **kw: Any) -> None:
            fig.add_scatter(x=[], y=[], name=name, mode="lines", row=row, col=1,
                            line=kw.pop("line", {"color": colour, "width": 2}), **kw)

        add("kernel memory", 1, BLUE)
        add("system memory used", 1, PURPLE, line={"color": PURPLE, "width": 1}, secondary_y=True)
        add("memory limit", 1, RED, line={"color": RED, **line})
        add("memory warning", 1, ORANGE, line={"color": ORANGE, "width": 1, "dash": "dot"})
        add("kernel peak", 1, GREY, line={"color": GREY, "width": 1, "dash": "dot"})
        add("kernel CPU", 2, BLUE)
        add("system CPU", 2, PURPLE, line={"color": PURPLE, "width": 1})
        add("CPU limit", 2, RED, line={"color": RED, **line})
        for i in self.gpus:
            add(f"GPU {i} use", 3, GREEN)
            add(f"GPU {i} memory", 3, ORANGE, line={"color": ORANGE, "width": 1})
        fig.update_yaxes(title_text="kernel", ticksuffix="B", tickformat=".3s", rangemode="tozero",
                         row=1, col=1, secondary_y=False)
        fig.update_yaxes(title_text="system", ticksuffix="B", tickformat=".3s", showgrid=False,
                         color=PURPLE, row=1, col=1, secondary_y=True)
        fig.update_xaxes(tickformat="%H:%M:%S")
        fig.update_yaxes(ticksuffix="%", rangemode="tozero", row=2, col=1)
        if self.gpus:
            fig.update_yaxes(ticksuffix="%", range=[0, 100], row=3, col=1)
        fig.update_layout(height=height, margin={"l": 60, "r": 60, "t": 40, "b": 30},
                          legend={"orientation": "h", "y": -0.08}, uirevision="resman",
                          hovermode="x unified", template="plotly_white")
        return fig

    def refresh(self, force: bool = False) -> bool:
        """Redraw if the monitor has a new sample (or ``force``); whether it redrew.

        While hidden the panel still collects samples (the graph must not have a
        hole when its tab comes back) but sends nothing to the browser.
        """
        with self._lock:
            if self._closed:
                return False
            changed = self._ingest() or self._stale
            if not (self.visible or force):
                self._stale = changed
                return False
            if not changed and not force:
                return False
            self._stale = False
            self._draw(self._state())
            return True

    def _state(self) -> dict[str, Any]:
        """Everything one frame shows, from the samples, the peaks and the limit levels."""
        samples = list(self._samples)
        info: dict[str, Any] = self.monitor.limits_info() if samples else {
            "checks": {}, "limits": {}, "warn_at": 0.8, "status": "ok"}
        last = samples[-1] if samples else {}
        limits = info["limits"]
        memory_lines = []
        if limits.get("memory") is not None:
            memory_lines.append(limits["memory"])
        if limits.get("memory_percent") is not None and last.get("sys_mem_total"):
            memory_lines.append(limits["memory_percent"] / 100.0 * last["sys_mem_total"])
        checks = info["checks"]
        return {
            "samples": samples,
            "last": last,
            "peak": self.monitor.peak(),
            "info": info,
            "memory_limit": min(memory_lines) if memory_lines else None,
            "cpu_limit": limits.get("cpu_percent"),
            "memory_level": _worst(checks, "memory", "memory_percent"),
            "cpu_level": _worst(checks, "cpu_percent"),
        }

    def _draw(self, state: dict[str, Any]) -> None:
        samples, peak = state["samples"], state["peak"]
        x = [dt.datetime.fromtimestamp(s["t"]) for s in samples]
        ends = [x[0], x[-1]] if x else []

        def flat(value: float | None) -> list[float | None]:
            return [value, value] if value is not None and ends else []

        warn_at = state["info"].get("warn_at") or 0.8
        limit = state["memory_limit"]
        series: list[tuple[list[Any], list[Any]]] = [
            (x, [s.get("rss") for s in samples]),
            (x, [s.get("sys_mem_used") for s in samples]),
            (ends if limit is not None else [], flat(limit)),
            (ends if limit is not None else [], flat(None if limit is None else limit * warn_at)),
            (ends if peak.get("rss") else [], flat(peak.get("rss"))),
            (x, [s.get("cpu_capacity_percent") for s in samples]),
            (x, [s.get("sys_cpu_percent") for s in samples]),
            (ends if state["cpu_limit"] is not None else [], flat(state["cpu_limit"])),
        ]
        for i in self.gpus:
            series.append((x, [s.get(f"gpu{i}_util") for s in samples]))
            series.append((x, [s.get(f"gpu{i}_mem_percent") for s in samples]))
        with self.figure.batch_update():
            for trace, (xs, ys) in zip(self.figure.data, series):
                trace.x, trace.y = xs, ys
            total = state["last"].get("sys_mem_total")
            if total and tuple(self.figure.layout.yaxis2.range or ()) != (0, total):
                # The system axis spans the memory we may use: its line reads as "how full".
                # Its ticks are set too: plotly's own, aligned to the kernel axis, could
                # label the bottom "-4.94µB" (a rounding error of 0).
                self.figure.layout.yaxis2.range = (0, total)
                self.figure.layout.yaxis2.tickvals = (0, total / 2, total)
            self.figure.data[0].line.color = LEVEL_COLOURS[state["memory_level"]]
            self.figure.data[5].line.color = LEVEL_COLOURS[state["cpu_level"]]
        self.header.value = self._header_html(state)

    # -- text ---------------------------------------------------------------------------

    def _summary(self, state: dict[str, Any]) -> list[tuple[str, str, str]]:
        """``(label, text, level)`` lines shared by the header and the fallbacks."""
        last, peak = state["last"], state["peak"]
        if not last:
            return [("Monitor", "no sample yet", "ok")]
        memory = f"{format_size(last['rss'])} (peak {format_size(peak.get('rss', last['rss']))}"
        if state["memory_limit"] is not None:
            memory += f", limit {format_size(state['memory_limit'])}"
        memory += ")"
        cpu = f"{last['cpu_capacity_percent']:.0f} % of {last['cpu_count']:g} cores (peak " \
              f"{peak.get('cpu_capacity_percent', 0.0):.0f} %"
        cpu += f", limit {state['cpu_limit']:g} %)" if state["cpu_limit"] is not None else ")"
        system = f"memory {format_size(last['sys_mem_used'])} of " \
                 f"{format_size(last['sys_mem_total'])} ({last['sys_mem_percent']:.0f} %), " \
                 f"CPU {last['sys_cpu_percent']:.0f} %"
        lines = [("Kernel memory", memory, state["memory_level"]),
                 ("Kernel CPU", cpu, state["cpu_level"]),
                 ("System", system, "ok")]
        for i in self.gpus:
            util, mem = last.get(f"gpu{i}_util"), last.get(f"gpu{i}_mem_percent")
            lines.append((f"GPU {i}", f"use {_pct(util)}, memory {_pct(mem)}", "ok"))
        for check in state["info"].get("checks", {}).values():
            if check.get("level") != "ok" and check.get("text"):
                lines.append(("Limit", check["text"], check["level"]))
        return lines

    def _header_html(self, state: dict[str, Any]) -> str:
        parts = []
        for label, text, level in self._summary(state):
            colour = LEVEL_COLOURS.get(level, BLUE) if level != "ok" else "inherit"
            parts.append(f"<span style='color:{colour}'><b>{escape(label)}</b> "
                         f"{escape(text)}</span>")
        running = "sampling every " + f"{self.monitor.interval:g} s" if self.monitor.running \
            else "monitor stopped"
        return (f"<div class='resman-monitor-header' style='line-height:1.5'>"
                f"{' &middot; '.join(parts)} <span style='color:{GREY}'>({running})</span></div>")

    def to_text(self) -> str:
        """The panel as plain text (terminals, static renders)."""
        with self._lock:
            state = self._state()
        return "\n".join(f"{label}: {text}" + (f" [{level}]" if level != "ok" else "")
                         for label, text, level in self._summary(state))

    def to_html(self) -> str:
        """The panel as static HTML: the summary and SVG sparklines of memory and CPU."""
        with self._lock:
            state = self._state()
        samples = state["samples"]
        memory = sparkline([s.get("rss") for s in samples], limit=state["memory_limit"],
                           colour=LEVEL_COLOURS[state["memory_level"]])
        cpu = sparkline([s.get("cpu_capacity_percent") for s in samples], top=100.0,
                        limit=state["cpu_limit"], colour=LEVEL_COLOURS[state["cpu_level"]])
        return (f"<div class='resman-monitor-static'>{self._header_html(state)}"
                f"<div>memory {memory} &nbsp; CPU {cpu}</div></div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the monitor if this panel started it, and close every widget; idempotent."""
        if not begin_close(self):
            return
        if self._started_monitor:
            self.monitor.stop()
        for child in (self.header, self.figure, self.layout):
            close_tree(child)
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed


def _worst(checks: dict[str, dict[str, Any]], *names: str) -> str:
    levels = [checks[n]["level"] for n in names if n in checks]
    return max(levels, key=_LEVEL_RANK.__getitem__, default="ok")


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.0f} %"

