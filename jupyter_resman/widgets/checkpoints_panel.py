"""The checkpoints of the home: every version, with delete (after a confirmation).

Listing reads only the small header of each checkpoint file
(:meth:`~jupyter_resman.core.checkpoint.Checkpoints.list`), so the panel can
refresh while a kernel saves; deleting goes through
:meth:`~jupyter_resman.core.checkpoint.Checkpoints.delete`, which takes the
same per-name lock as a save.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.session import get_session
from ..core.settings import format_size
from ._confirm import ConfirmBar
from ._display import (
    GREEN,
    RED,
    begin_close,
    close_contents,
    disconnect,
    escape,
    html_table,
    mimebundle,
)
from ._refresh import checked_period

if TYPE_CHECKING:
    import pandas as pd

    from ..core.session import Session

__all__ = ["CheckpointsPanel"]


class CheckpointsPanel(widgets.VBox):
    """A list of checkpoint versions (newest first) with *Delete* buttons.

    *Delete selected versions* removes exactly the selected versions;
    *Delete whole checkpoints* removes every version of each selected name.
    Both ask for confirmation first.
    """

    def __init__(self, session: Session | None = None, *, period: float = 5.0) -> None:
        period = checked_period(period)
        session = session if session is not None else get_session()
        self.session = session
        self.checkpoints = session.checkpoints
        self.period = period
        self.visible = True
        self._lock = threading.RLock()
        self._closed = False
        self._rows: list[tuple[str, int, int]] = []  # (name, version, bytes)
        self._frame: pd.DataFrame | None = None

        self.header = widgets.HTML()
        self.versions = widgets.SelectMultiple(options=[], rows=10,
                                               layout=widgets.Layout(width="100%"))
        self.delete_versions_button = widgets.Button(description="Delete selected versions",
                                                     icon="trash",
                                                     layout=widgets.Layout(width="auto"))
        self.delete_names_button = widgets.Button(description="Delete whole checkpoints",
                                                  icon="trash", button_style="danger",
                                                  layout=widgets.Layout(width="auto"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.confirm = ConfirmBar(self._report)
        self._handlers: list[tuple[widgets.Button, Callable[..., None]]] = [
            (self.delete_versions_button, self._ask_delete_versions),
            (self.delete_names_button, self._ask_delete_names),
            (self.refresh_button, self._on_refresh),
        ]
        for button, handler in self._handlers:
            button.on_click(handler)
        self.versions.observe(self._on_select, names="value")
        super().__init__([
            self.header, self.versions,
            widgets.HBox([self.delete_versions_button, self.delete_names_button,
                          self.refresh_button]),
            self.confirm, self.status,
        ])
        self.add_class("resman-checkpoints-panel")
        self.refresh(force=True)

    # -- drawing ------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Re-list the checkpoints and redraw; skipped while hidden unless ``force``."""
        with self._lock:
            if self._closed or not (self.visible or force):
                return False
            frame = self._frame = self.checkpoints.list()
            self.header.value = f"<div class='resman-checkpoints-header'><b>Checkpoints</b> " \
                                f"{escape(self._summary(frame))}</div>"
            selected = {self._rows[i][:2] for i in self.versions.value if i < len(self._rows)}
            rows, options = [], []
            ordered = frame.sort_values(["name", "version"], ascending=[True, False])
            for i, row in enumerate(ordered.itertuples(index=False)):
                rows.append((row.name, int(row.version), int(row.bytes)))
                options.append((_label(row), i))
            keep = tuple(i for i, (name, version, _b) in enumerate(rows)
                         if (name, version) in selected)
            with self.versions.hold_trait_notifications():
                self._rows = rows
                if [o[0] for o in options] != [o[0] for o in self.versions.options]:
                    self.versions.options = options
                self.versions.value = keep
            self._update_buttons()
            return True

    def _summary(self, frame: pd.DataFrame) -> str:
        if frame.empty:
            return "none saved yet"
        names = frame["name"].nunique()
        return (f"{names:,} checkpoint{'s' if names != 1 else ''}, {len(frame):,} "
                f"version{'s' if len(frame) != 1 else ''}, {format_size(frame['bytes'].sum())} "
                f"in {self.checkpoints.root}")

    def _update_buttons(self) -> None:
        nothing = not self.versions.value
        self.delete_versions_button.disabled = nothing
        self.delete_names_button.disabled = nothing

    # -- actions ------------------------------------------------------------------------

    def _selected(self) -> list[tuple[str, int, int]]:
        return [self._rows[i] for i in self.versions.value if i < len(self._rows)]

    def _on_select(self, _change: Any) -> None:
        self._update_buttons()

    def _on_refresh(self, _button: Any = None) -> None:
        self.refresh(force=True)

    def _ask_delete_versions(self, _button: Any = None) -> None:
        chosen = self._selected()
        if not chosen:
            self._report("Select versions in the list first.", False)
            return
        by_name: dict[str, list[int]] = {}
        for name, version, _b in chosen:
            by_name.setdefault(name, []).append(version)
        size = sum(b for _n, _v, b in chosen)
        listed = "; ".join(f"{name!r} v{', v'.join(map(str, sorted(vs)))}"
                           for name, vs in by_name.items())

        def delete() -> str:
            removed = sum(self.checkpoints.delete(name, vs) for name, vs in by_name.items())
            self.refresh(force=True)
            return f"Deleted {removed:,} version{'s' if removed != 1 else ''} ({listed})."

        self.confirm.ask(f"Delete {len(chosen):,} version{'s' if len(chosen) != 1 else ''} "
                         f"({format_size(size)}): {listed}?", delete)

    def _ask_delete_names(self, _button: Any = None) -> None:
        names = sorted({name for name, _v, _b in self._selected()})
        if not names:
            self._report("Select a version of each checkpoint to delete first.", False)
            return
        frame = self._frame
        versions = 0 if frame is None else int(frame["name"].isin(names).sum())

        def delete() -> str:
            removed = sum(self.checkpoints.delete(name) for name in names)
            self.refresh(force=True)
            return f"Deleted {', '.join(map(repr, names))} ({removed:,} versions)."

        self.confirm.ask(f"Delete ALL {versions:,} versions of {', '.join(map(repr, names))}?",
                         delete)

    def _report(self, message: str, ok: bool) -> None:
        colour = GREEN if ok else RED
        self.status.value = f"<span style='color:{colour}'>{escape(message)}</span>"

    # -- fallbacks ------------------------------------------------------------------------

    def _table_rows(self, frame: pd.DataFrame) -> list[list[Any]]:
        ordered = frame.sort_values(["name", "version"], ascending=[True, False])
        return [[row.name, row.version, f"{row.time:%Y-%m-%d %H:%M:%S}", format_size(row.bytes),
                 row.description or "", "" if row.complete else "incomplete"]
                for row in ordered.itertuples(index=False)]

    def to_text(self) -> str:
        frame = self.checkpoints.list()  # afresh: a hidden tab's last refresh may be old
        lines = [f"Checkpoints: {self._summary(frame)}"]
        lines += [f"  {r[0]} v{r[1]}  {r[2]} UTC  {r[3]}  {r[4]}  {r[5]}".rstrip()
                  for r in self._table_rows(frame)]
        return "\n".join(lines)

    def to_html(self) -> str:
        frame = self.checkpoints.list()  # afresh: a hidden tab's last refresh may be old
        head = f"<b>Checkpoints</b> {escape(self._summary(frame))}"
        if frame.empty:
            return f"<div class='resman-checkpoints-static'>{head}</div>"
        table = html_table(["name", "version", "saved (UTC)", "bytes", "description", ""],
                           self._table_rows(frame), align="lrlrll")
        return f"<div class='resman-checkpoints-static'>{head}{table}</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect every handler and close every widget; idempotent."""
        if not begin_close(self):
            return
        disconnect(self._handlers, [(self.versions, self._on_select)])
        self.confirm.close()
        close_contents(self)
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed


def _label(row: Any) -> str:
    text = (f"{row.name} · v{row.version} · {row.time:%Y-%m-%d %H:%M:%S} UTC · "
            f"{format_size(row.bytes)}")
    if row.description:
        text += f" · {row.description}"
    if not row.complete:
        text += " · INCOMPLETE"
    return text
