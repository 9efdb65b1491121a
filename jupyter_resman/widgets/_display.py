"""What every panel shares: fallback output, closing a widget tree, small HTML pieces.

A live widget is only visible where a widget manager runs (JupyterLab,
Notebook 7, VS Code). Everywhere else — a notebook rendered on GitHub or by
nbconvert, a terminal IPython, a notebook opened without its kernel — a
display made only of the widget view says "Failed to display Jupyter Widget".
So each panel's ``_repr_mimebundle_`` (:func:`mimebundle`) carries a
``text/plain`` and a ``text/html`` rendering of the same core snapshot next to
the widget view; front ends pick the richest type they can show.

>>> print(sparkline([1, 3, 2], width=30, height=10)[:39])
<svg xmlns="http://www.w3.org/2000/svg"
>>> STATUS_COLOURS["failed"]
'#d62728'
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets
from traitlets import TraitError

__all__ = ["STATUS_COLOURS", "close_tree", "escape", "html_table", "mimebundle", "sparkline"]

# The classic plotly/d3 palette: the graphs and the HTML fallbacks agree.
BLUE, ORANGE, GREEN, RED, PURPLE, GREY = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                          "#9467bd", "#7f7f7f")

#: Colour of a progress bar (and of its fallback) for each status of a snapshot.
STATUS_COLOURS = {"running": BLUE, "paused": ORANGE, "done": GREEN, "failed": RED}
#: Colour of a measurement for each limit level (monitor ``limits_info`` levels).
LEVEL_COLOURS = {"ok": BLUE, "warning": ORANGE, "exceeded": RED}

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def escape(value: Any) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def mimebundle(widget: widgets.Widget, text: str, html_text: str,
               include: Iterable[str] | None = None,
               exclude: Iterable[str] | None = None) -> dict[str, Any]:
    """The widget view plus ``text/plain`` and ``text/html`` fallbacks of the same state.

    A closed widget has no view to show any more; only the fallbacks remain.
    """
    data: dict[str, Any] = {"text/plain": text, "text/html": html_text}
    model_id = getattr(widget, "_model_id", None)
    if model_id is not None and getattr(widget, "comm", None) is not None:
        data[WIDGET_VIEW] = {"version_major": 2, "version_minor": 0, "model_id": model_id}
    if include is not None:
        wanted = set(include)
        data = {k: v for k, v in data.items() if k in wanted}
    if exclude is not None:
        unwanted = set(exclude)
        data = {k: v for k, v in data.items() if k not in unwanted}
    return data


def begin_close(panel: Any) -> bool:
    """Whether to close ``panel`` now: ``False`` if already closed or never fully built.

    Panels close at most once, from any thread, and a constructor that failed
    half-way (no ``_lock`` yet) leaves nothing to close.
    """
    lock = vars(panel).get("_lock")
    if lock is None:
        return False
    with lock:
        if panel._closed:
            return False
        panel._closed = True
    return True


def disconnect(buttons: Iterable[tuple[Any, Any]] = (),
               observers: Iterable[tuple[Any, Any]] = ()) -> None:
    """Remove click handlers and ``value`` observers a panel registered."""
    for button, handler in buttons:
        button.on_click(handler, remove=True)
    for widget, handler in observers:
        widget.unobserve(handler, names="value")


def close_contents(panel: Any) -> None:
    """Close a box panel's children and layout models (the panel itself stays to the caller)."""
    for child in panel.children:
        close_tree(child)
    close_tree(panel.layout)


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget it holds (children, layout, style), once each.

    ``Widget.close()`` closes one model only: the ``Layout`` and ``Style``
    models of a button, or the children of a box, stay registered in the
    kernel (and in the browser's widget manager) for as long as it runs.
    """
    seen: set[int] = set()
    stack = [widget]
    while stack:
        item = stack.pop()
        if not isinstance(item, widgets.Widget) or id(item) in seen:
            continue
        seen.add(id(item))
        for name in list(getattr(item, "keys", ())):
            if name.startswith("_"):
                continue  # private traits hold data (plotly's figure dicts), not child models
            try:
                value = getattr(item, name)
            except (AttributeError, TraitError):  # unset on a half-built widget: nothing to close
                continue
            if isinstance(value, widgets.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, widgets.Widget))
        item.close()


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
               align: str | None = None) -> str:
    """A small HTML table; ``align`` is one letter per column (``l``/``r``)."""
    align = align or "l" * len(header)
    side = {"l": "left", "r": "right"}

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(f"<{tag} style='text-align:{side[a]};padding:1px 8px'>{escape(v)}</{tag}>"
                       for v, a in zip(values, align))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return (f"<table class='resman-table' style='border-collapse:collapse'>"
            f"<thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>")


def sparkline(values: Sequence[float | None], *, width: int = 240, height: int = 40,
              colour: str = BLUE, limit: float | None = None, top: float | None = None) -> str:
    """An inline SVG polyline of ``values`` (``None``/NaN skipped); ``limit`` as a red dash.

    Static renders cannot run plotly; a few hundred bytes of SVG still show the shape.
    """
    points = [(i, float(v)) for i, v in enumerate(values)
              if v is not None and not (isinstance(v, float) and math.isnan(v))]
    highest = max([top or 0.0, limit or 0.0, *(v for _, v in points)], default=0.0) or 1.0
    span = max(len(values) - 1, 1)

    def y(v: float) -> float:
        return round(height - 1 - (height - 2) * v / highest, 1)

    coords = " ".join(f"{round(i * (width - 1) / span, 1)},{y(v)}" for i, v in points)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'style="background:#f7f7f7">')]
    if limit is not None:
        parts.append(f'<line x1="0" x2="{width}" y1="{y(limit)}" y2="{y(limit)}" '
                     f'stroke="{RED}" stroke-dasharray="4,3"/>')
    if coords:
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                     f'points="{coords}"/>')
    parts.append("</svg>")
    return "".join(parts)
