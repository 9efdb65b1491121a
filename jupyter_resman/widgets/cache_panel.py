"""The cache at a glance: hit rate over time, sizes by namespace, entries, clearing.

Everything shown comes from the core cache's own reports —
:meth:`~jupyter_resman.core.cache.Cache.stats`, ``history()`` (hits and misses
per minute) and ``entries()`` — which sum every process using the home, so
the panel in one kernel shows what the others cached too.

Clearing goes through the core (``clear``/``delete``) after a confirmation
step that says how much would go (``count``); the panel refreshes right after.
The four clear buttons act on what the filters select: the namespace filter,
the tag filter, the entries selected in the list, or everything.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.session import get_session
from ..core.settings import format_size
from ._confirm import ConfirmBar
from ._display import (
    BLUE,
    GREEN,
    GREY,
    RED,
    begin_close,
    close_contents,
    disconnect,
    escape,
    html_table,
    mimebundle,
    sparkline,
)
from ._refresh import checked_period

if TYPE_CHECKING:
    import pandas as pd

    from ..core.session import Session

__all__ = ["CachePanel"]

#: Entries listed at most (newest first); the note under the list says how many match.
MAX_LISTED = 200
#: The hit-rate graph covers this much history (seconds).
HISTORY_S = 6 * 3600
_ALL = "\x00all"  # dropdown value meaning "no filter" (no real namespace or tag can be this)


def format_duration(seconds: float) -> str:
    """``0.4`` → ``'0.4 s'``, ``75`` → ``'1 min 15 s'``, ``7300`` → ``'2 h 1 min'``.

    >>> format_duration(0.42), format_duration(75), format_duration(7300)
    ('0.42 s', '1 min 15 s', '2 h 1 min')
    """
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class CachePanel(widgets.VBox):
    """Hit rate, bytes and entries by namespace, time saved, filtered entries, clear buttons.

    ``period`` is how often a dashboard refreshes it (seconds); any clear
    refreshes at once.
    """

    def __init__(self, session: Session | None = None, *, period: float = 5.0,
                 height: int = 300) -> None:
        period = checked_period(period)
        session = session if session is not None else get_session()
        self.session = session
        self.cache = session.cache
        self.period = period
        self.visible = True
        self._lock = threading.RLock()
        self._closed = False
        self._updating = False  # set while refresh() rewrites the filters: no re-entry
        self._rows: list[tuple[str, Any, int]] = []  # (namespace, key, bytes) of listed entries
        self._stats: Any = None

        self.header = widgets.HTML()
        self.figure = self._build_figure(height)
        self.namespaces = widgets.HTML()
        self.namespace_filter = widgets.Dropdown(description="Namespace",
                                                 options=[("all namespaces", _ALL)], value=_ALL)
        self.tag_filter = widgets.Dropdown(description="Tag", options=[("any tag", _ALL)],
                                           value=_ALL)
        self.search = widgets.Text(description="Key", placeholder="contains…",
                                   continuous_update=False)
        self.entries = widgets.SelectMultiple(options=[], rows=8,
                                              layout=widgets.Layout(width="100%"))
        self.entries_note = widgets.HTML()
        self.clear_namespace_button = widgets.Button(description="Clear namespace", icon="trash")
        self.clear_tag_button = widgets.Button(description="Clear tag", icon="trash")
        self.clear_selected_button = widgets.Button(description="Clear selected", icon="trash")
        self.clear_all_button = widgets.Button(description="Clear all", icon="trash",
                                               button_style="danger")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.confirm = ConfirmBar(self._report)
        self._handlers: list[tuple[widgets.Button, Callable[..., None]]] = [
            (self.clear_namespace_button, self._ask_clear_namespace),
            (self.clear_tag_button, self._ask_clear_tag),
            (self.clear_selected_button, self._ask_clear_selected),
            (self.clear_all_button, self._ask_clear_all),
            (self.refresh_button, self._on_refresh),
        ]
        for button, handler in self._handlers:
            button.on_click(handler)
        self._observed = [self.namespace_filter, self.tag_filter, self.search, self.entries]
        for widget in self._observed:
            widget.observe(self._on_filter, names="value")
        super().__init__([
            self.header, self.figure, self.namespaces,
            widgets.HBox([self.namespace_filter, self.tag_filter, self.search]),
            self.entries, self.entries_note,
            widgets.HBox([self.clear_namespace_button, self.clear_tag_button,
                          self.clear_selected_button, self.clear_all_button,
                          self.refresh_button]),
            self.confirm, self.status,
        ])
        self.add_class("resman-cache-panel")
        self.refresh(force=True)

    # -- drawing ----------------------------------------------------------------------

    def _build_figure(self, height: int) -> go.FigureWidget:
        base = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.12,
                             subplot_titles=["Hit rate per minute", "Bytes by namespace"])
        fig = go.FigureWidget(base)
        fig.add_scatter(x=[], y=[], name="hit rate", mode="lines+markers",
                        line={"color": GREEN, "width": 2}, row=1, col=1)
        fig.add_bar(x=[], y=[], name="bytes", marker_color=BLUE, textposition="auto",
                    row=1, col=2)
        fig.update_yaxes(range=[0, 100], ticksuffix="%", row=1, col=1)
        fig.update_yaxes(ticksuffix="B", tickformat=".3s", rangemode="tozero", row=1, col=2)
        fig.update_layout(height=height, showlegend=False,
                          margin={"l": 50, "r": 20, "t": 40, "b": 40},
                          uirevision="resman", template="plotly_white")
        return fig

    def refresh(self, force: bool = False) -> bool:
        """Re-read the cache's stats, history and entries and redraw; whether it drew.

        Skipped while the panel is hidden (a dashboard's other tab) unless ``force``.
        """
        with self._lock:
            if self._closed or not (self.visible or force):
                return False
            stats = self._stats = self.cache.stats()
            since = time.time() - HISTORY_S
            history = self.cache.history(since=since)
            frame = self.cache.entries()
            self._draw_figure(stats, history)
            self.header.value = self._header_html(stats)
            self.namespaces.value = self._namespaces_html(stats)
            self._updating = True
            try:
                self._update_filters(stats, frame)
                self._update_entries(frame)
            finally:
                self._updating = False
            self._update_buttons()
            return True

    def _draw_figure(self, stats: Any, history: pd.DataFrame) -> None:
        times, rates = _hit_rates(history)
        names = list(stats.namespaces)
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = times, rates
            bars = self.figure.data[1]
            bars.x = names
            bars.y = [stats.namespaces[n].bytes for n in names]
            bars.text = [f"{stats.namespaces[n].entries:,} entries" for n in names]

    def _summary(self, stats: Any) -> str:
        return (f"{_plural(stats.entries, 'entry', 'entries')}, {format_size(stats.bytes)} of "
                f"{format_size(stats.max_bytes)}; hit rate {stats.hit_rate:.0%} "
                f"({stats.hits:,} hits, {stats.misses:,} misses); time saved "
                f"{format_duration(stats.time_saved_s)}; {stats.evictions:,} evictions")

    def _header_html(self, stats: Any) -> str:
        return f"<div class='resman-cache-header'><b>Cache</b> {escape(self._summary(stats))}</div>"

    def _namespace_rows(self, stats: Any) -> list[list[Any]]:
        return [[name, f"{ns.entries:,}", format_size(ns.bytes), f"{ns.hits:,}",
                 f"{ns.misses:,}", f"{ns.hit_rate:.0%}", format_duration(ns.time_saved_s)]
                for name, ns in stats.namespaces.items()]

    def _namespaces_html(self, stats: Any) -> str:
        if not stats.namespaces:
            return "<i>The cache is empty.</i>"
        # Namespaces stay listed after a clear: their hit/miss history is still true.
        empty = "<i>The cache is empty.</i> " if not stats.entries else ""
        return empty + html_table(["namespace", "entries", "bytes", "hits", "misses", "hit rate",
                           "time saved"], self._namespace_rows(stats), align="lrrrrrr")

    def _update_filters(self, stats: Any, frame: pd.DataFrame) -> None:
        tags = sorted({tag for tags in frame["tags"] for tag in tags})
        _set_options(self.namespace_filter, [("all namespaces", _ALL)] +
                     [(n, n) for n in stats.namespaces])
        _set_options(self.tag_filter, [("any tag", _ALL)] + [(t, t) for t in tags])

    def _filtered(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.namespace_filter.value != _ALL:
            frame = frame[frame["namespace"] == self.namespace_filter.value]
        if self.tag_filter.value != _ALL:
            tag = self.tag_filter.value
            frame = frame[frame["tags"].map(lambda tags: tag in tags)]
        text = self.search.value.strip().lower()
        if text:
            frame = frame[frame["key"].map(lambda k: text in str(k).lower())]
        return frame

    def _update_entries(self, frame: pd.DataFrame) -> None:
        matching = self._filtered(frame)
        shown = matching.sort_values("created", ascending=False).head(MAX_LISTED)
        selected = {self._rows[i][:2] for i in self.entries.value if i < len(self._rows)}
        rows, options = [], []
        for i, entry in enumerate(shown.itertuples(index=False)):
            rows.append((entry.namespace, entry.key, int(entry.bytes)))
            tags = f" [{', '.join(entry.tags)}]" if entry.tags else ""
            label = (f"{_short(entry.key)} · {entry.namespace} · {format_size(entry.bytes)} · "
                     f"{entry.hits} hits · {entry.created:%Y-%m-%d %H:%M:%S} UTC{tags}")
            options.append((label, i))
        keep = tuple(i for i, (ns, key, _b) in enumerate(rows) if (ns, key) in selected)
        with self.entries.hold_trait_notifications():
            self._rows = rows
            if [o[0] for o in options] != [o[0] for o in _options(self.entries)]:
                self.entries.options = options
            self.entries.value = keep
        total = len(frame)
        note = f"{len(matching):,} of {total:,} entries match"
        if len(matching) > len(shown):
            note += f"; the newest {len(shown):,} are listed"
        self.entries_note.value = f"<span style='color:{GREY}'>{escape(note)}</span>"

    def _update_buttons(self) -> None:
        self.clear_namespace_button.disabled = self.namespace_filter.value == _ALL
        self.clear_tag_button.disabled = self.tag_filter.value == _ALL
        self.clear_selected_button.disabled = not self.entries.value
        self.clear_all_button.disabled = not self._stats or not self._stats.entries

    # -- actions ----------------------------------------------------------------------------

    def _on_filter(self, _change: Any) -> None:
        with self._lock:
            if self._closed or self._updating:
                return
            if _change["owner"] is not self.entries:
                self._update_entries(self.cache.entries())
            self._update_buttons()

    def _on_refresh(self, _button: Any = None) -> None:
        self.refresh(force=True)

    def _ask_clear_namespace(self, _button: Any = None) -> None:
        namespace = self.namespace_filter.value
        if namespace == _ALL:
            self._report("Choose a namespace in the filter first.", False)
            return
        n, size = self.cache.count(namespace=namespace)
        self.confirm.ask(f"Remove {_plural(n, 'entry', 'entries')} ({format_size(size)}) in namespace "
                         f"{namespace!r}?",
                         lambda: self._cleared(self.cache.clear(namespace=namespace),
                                               f"namespace {namespace!r}"))

    def _ask_clear_tag(self, _button: Any = None) -> None:
        tag = self.tag_filter.value
        if tag == _ALL:
            self._report("Choose a tag in the filter first.", False)
            return
        n, size = self.cache.count(tags=[tag])
        self.confirm.ask(f"Remove {_plural(n, 'entry', 'entries')} ({format_size(size)}) tagged {tag!r}?",
                         lambda: self._cleared(self.cache.clear(tags=[tag]), f"tag {tag!r}"))

    def _ask_clear_selected(self, _button: Any = None) -> None:
        chosen = [self._rows[i] for i in self.entries.value if i < len(self._rows)]
        if not chosen:
            self._report("Select entries in the list first.", False)
            return
        size = sum(b for _ns, _k, b in chosen)

        def delete() -> str:
            removed = sum(self.cache.delete(key, namespace=ns) for ns, key, _b in chosen)
            return self._cleared(removed, "the selection")

        self.confirm.ask(f"Remove the {len(chosen):,} selected entries ({format_size(size)})?",
                         delete)

    def _ask_clear_all(self, _button: Any = None) -> None:
        n, size = self.cache.count()
        self.confirm.ask(f"Remove ALL {n:,} entries ({format_size(size)}) of the cache at "
                         f"{self.cache.directory}?",
                         lambda: self._cleared(self.cache.clear(), "the whole cache"))

    def _cleared(self, removed: int, what: str) -> str:
        self.refresh(force=True)
        return f"Removed {_plural(removed, 'entry', 'entries')} ({what})."

    def _report(self, message: str, ok: bool) -> None:
        colour = GREEN if ok else RED
        self.status.value = f"<span style='color:{colour}'>{escape(message)}</span>"

    # -- fallbacks ----------------------------------------------------------------------------

    def to_text(self) -> str:
        """The panel as plain text: the summary and the per-namespace table."""
        # Read afresh: a hidden tab's last refresh may be minutes old.
        stats = self.cache.stats()
        lines = [f"Cache: {self._summary(stats)}"]
        for row in self._namespace_rows(stats):
            lines.append(f"  {row[0]}: {row[1]} entr{'y' if row[1] == '1' else 'ies'}, {row[2]}, hit rate {row[5]}, "
                         f"time saved {row[6]}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The panel as static HTML: summary, hit-rate sparkline, namespaces table."""
        stats = self.cache.stats()
        _times, rates = _hit_rates(self.cache.history(since=time.time() - HISTORY_S))
        spark = sparkline(rates, top=100.0, colour=GREEN) if rates else ""
        return (f"<div class='resman-cache-static'>{self._header_html(stats)}"
                f"{'<div>hit rate ' + spark + '</div>' if spark else ''}"
                f"{self._namespaces_html(stats)}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect every handler and close every widget; idempotent."""
        if not begin_close(self):
            return
        disconnect(self._handlers, [(w, self._on_filter) for w in self._observed])
        self.confirm.close()
        close_contents(self)
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed


def _hit_rates(history: pd.DataFrame) -> tuple[list[dt.datetime], list[float]]:
    """Per minute, summed over namespaces: ``(times, hit rate in %)``; minutes without lookups
    are left out."""
    if history.empty:
        return [], []
    per_minute = history.groupby("time")[["hits", "misses"]].sum()
    times, rates = [], []
    for stamp, row in per_minute.iterrows():
        lookups = row["hits"] + row["misses"]
        if lookups:
            times.append(dt.datetime.fromtimestamp(stamp.timestamp()))
            rates.append(100.0 * row["hits"] / lookups)
    return times, rates


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _short(key: Any, width: int = 40) -> str:
    text = key if isinstance(key, str) else repr(key)
    return text if len(text) <= width else text[: width - 1] + "…"


def _options(widget: Any) -> list[tuple[str, Any]]:
    return [o if isinstance(o, tuple) else (str(o), o) for o in widget.options]


def _set_options(dropdown: widgets.Dropdown, options: list[tuple[str, Any]]) -> None:
    """Replace a dropdown's options, keeping its value when it still exists."""
    if options == _options(dropdown):
        return
    value = dropdown.value
    with dropdown.hold_trait_notifications():
        dropdown.options = options
        dropdown.value = value if value in {v for _l, v in options} else _ALL
