"""The registry at a glance: a filtered, paged table of resources, and one resource in depth.

Everything shown comes from :class:`~jupyter_resman.core.registry.Registry`
reads — ``describe()``, ``count()`` and ``query()`` for the table,
``get()``, ``hierarchy()`` and ``history()`` for the selected resource — so
the panel in one kernel shows what every other process registered.

A registry can hold hundreds of thousands of rows, so the panel is careful
about reading it: it re-reads only while its tab is visible, at most every
few seconds (:data:`MIN_REGISTRY_PERIOD`), and a periodic refresh first asks
for the newest history row — every change writes one in its own transaction
— and reads nothing more when that has not moved. Filters, paging and
selection redraw at once.

A home without a registry database keeps it that way: showing the panel
does not create ``registry.sqlite`` (nor load SQLAlchemy); the panel says
how to start one and picks it up once the first resource is added.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.errors import ConfigError, ResmanError, ResourceNotFoundError
from ..core.session import get_session
from ._display import (
    GREEN,
    GREY,
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
    from ..core.registry import Hierarchy, Registry, Resource
    from ..core.session import Session

__all__ = ["RegistryPanel"]

#: The shortest refresh period of the panel: a big registry is not re-read twice a second.
MIN_REGISTRY_PERIOD = 2.0
#: Rows on one page of the table.
PAGE_SIZE = 50
#: Resources drawn in a contents tree; a bigger subtree shows its first level only.
TREE_LIMIT = 500
#: Newest changes listed in the history of the selected resource.
HISTORY_ROWS = 50
#: Lines of the table in the plain-text fallback.
TEXT_ROWS = 20
_ANY = "\x00any"  # dropdown value meaning "no filter" (no kind or id can be this)
# The registry's kinds (core.registry.KINDS, sorted), written out so that importing the
# widgets does not load SQLAlchemy; a test keeps the two lists equal.
_KINDS = ("asset", "collection", "consumable", "dataset", "grid", "pool", "queue", "row", "slot",
          "stack", "voxelgrid")
_HINT = (f"<i style='color:{GREY}'>Select a resource to see its details, place, contents and "
         "history.</i>")


class RegistryPanel(widgets.VBox):
    """Filters (kind, class, name, removed), a paged table, and the selected resource.

    The name filter finds names *containing* the text; with ``*`` wildcards
    it matches the whole name (``plate *``). ``period`` is how often a
    dashboard refreshes the panel while it is visible (seconds, at least
    :data:`MIN_REGISTRY_PERIOD`); ``page_size`` the rows per page;
    ``tree_limit`` the most resources drawn in a contents tree.
    """

    def __init__(self, session: Session | None = None, *, period: float = 5.0,
                 page_size: int = PAGE_SIZE, tree_limit: int = TREE_LIMIT) -> None:
        period = checked_period(period, MIN_REGISTRY_PERIOD, " (a registry can be big)")
        for name, value in (("page_size", page_size), ("tree_limit", tree_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a whole number >= 1, e.g. 50")
        session = session if session is not None else get_session()
        self.session = session
        self.period = period
        self.page_size = page_size
        self.tree_limit = tree_limit
        self.visible = True
        self.page = 0
        #: Id of the resource shown below the table (``None``: none selected).
        self.selected_id: str | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._updating = False  # set while the panel rewrites its own widgets: no re-entry
        self._seen: Any = None  # the newest history id at the last full read

        self.header = widgets.HTML()
        self.kind_filter = widgets.Dropdown(
            description="Kind", value=_ANY,
            options=[("any kind", _ANY), ("any container", "container")] +
                    [(k, k) for k in _KINDS])
        self.class_filter = widgets.Text(description="Class", placeholder="e.g. sample",
                                         continuous_update=False)
        self.name_filter = widgets.Text(description="Name", placeholder="contains… (* wildcards)",
                                        continuous_update=False)
        self.removed_filter = widgets.Checkbox(description="show removed", value=False,
                                               indent=False)
        self.table = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="100%"))
        self.page_label = widgets.HTML()
        self.previous_button = widgets.Button(description="Previous", icon="arrow-left")
        self.next_button = widgets.Button(description="Next", icon="arrow-right")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.details = widgets.HTML(_HINT)
        self.place = widgets.ToggleButtons(options=[], layout=widgets.Layout(display="none"),
                                           style={"button_width": "auto"})
        self.child_picker = widgets.Dropdown(description="Open", options=[("…", _ANY)],
                                             value=_ANY, layout=widgets.Layout(display="none"))
        self.contents = widgets.HTML()
        self.history = widgets.HTML()
        self.status = widgets.HTML()
        self._handlers: list[tuple[widgets.Button, Callable[..., None]]] = [
            (self.previous_button, self._on_previous),
            (self.next_button, self._on_next),
            (self.refresh_button, self._on_refresh),
        ]
        for button, handler in self._handlers:
            button.on_click(handler)
        self._observers: list[tuple[widgets.Widget, Callable[[Any], None]]] = [
            (self.kind_filter, self._on_filter), (self.class_filter, self._on_filter),
            (self.name_filter, self._on_filter), (self.removed_filter, self._on_filter),
            (self.table, self._on_pick), (self.place, self._on_pick),
            (self.child_picker, self._on_pick),
        ]
        for widget, handler in self._observers:
            widget.observe(handler, names="value")
        super().__init__([
            self.header,
            widgets.HBox([self.kind_filter, self.class_filter, self.name_filter,
                          self.removed_filter]),
            self.table,
            widgets.HBox([self.previous_button, self.next_button, self.refresh_button,
                          self.page_label], layout=widgets.Layout(align_items="center")),
            # The breadcrumb above the details: where the resource sits, then what it is.
            self.status, self.place, self.details, self.child_picker, self.contents,
            self.history,
        ])
        self.add_class("resman-registry-panel")
        self.refresh(force=True)

    # -- reading ----------------------------------------------------------------------

    def _registry(self) -> Registry | None:
        """The session's registry, or ``None`` while the home has none (not created here)."""
        return self.session.existing_registry()

    def _filters(self) -> dict[str, Any]:
        filters: dict[str, Any] = {"removed": None if self.removed_filter.value else False}
        if self.kind_filter.value != _ANY:
            filters["kind"] = self.kind_filter.value
        if self.class_filter.value.strip():
            filters["resource_class"] = self.class_filter.value.strip()
        name = self.name_filter.value.strip()
        if name:
            filters["name"] = name if "*" in name else f"*{name}*"
        return filters

    @staticmethod
    def _mark(registry: Registry) -> Any:
        """The newest history id: it moves with every change to any resource."""
        newest = registry.history(limit=1, newest_first=True)
        return newest[0].id if newest else 0  # type: ignore[union-attr]

    def refresh(self, force: bool = False) -> bool:
        """Re-read the registry and redraw; whether anything was read.

        Skipped while the panel is hidden unless ``force``; without ``force``
        also skipped when nothing changed in the registry since the last read.
        A registry that cannot be read (busy, damaged, a server down) is
        reported on the panel's status line; the panel stays usable.
        """
        with self._lock:
            if self._closed or not (self.visible or force):
                return False
            try:
                registry = self._registry()
                if registry is None:
                    self._draw_missing()
                    return True
                mark = self._mark(registry)
                if not force and mark == self._seen:
                    return False
                self._draw(registry)
                self._seen = mark
            except ResmanError as exc:
                self._report(f"{type(exc).__name__}: {exc}", False)
            return True

    def _redraw(self) -> None:
        """Draw now after a filter, page or selection change."""
        with self._lock:
            if self._closed:
                return
            try:
                registry = self._registry()
                if registry is None:
                    self._draw_missing()
                    return
                self._draw(registry)
            except ResmanError as exc:
                self._report(f"{type(exc).__name__}: {exc}", False)

    # -- drawing -------------------------------------------------------------------------

    def _draw_missing(self) -> None:
        self.header.value = (f"<div class='resman-registry-header'><b>Registry</b> "
                             f"{escape(self._missing_text())}</div>")
        self._updating = True
        try:
            self.table.options = []
        finally:
            self._updating = False
        self.page_label.value = ""
        self.previous_button.disabled = self.next_button.disabled = True

    def _missing_text(self) -> str:
        return (f"none yet in {self.session.home.root} — it starts with the first "
                "session.registry.add(...)")

    def _draw(self, registry: Registry) -> None:
        self.header.value = (f"<div class='resman-registry-header'><b>Registry</b> "
                             f"{escape(_summary(registry.describe()))}</div>")
        filters = self._filters()
        total = registry.count(**filters)
        pages = max(math.ceil(total / self.page_size), 1)
        self.page = min(self.page, pages - 1)  # rows vanished: stay on the last page
        rows: list[Resource] = registry.query(  # type: ignore[assignment]
            **filters, order_by="-created_at", limit=self.page_size,
            offset=self.page * self.page_size)
        options = [(_label(r), r.id) for r in rows]
        self._updating = True
        try:
            # Options first, then the value: a held notification would validate the new
            # value against the old options.
            if options != _options(self.table):
                self.table.options = options
            ids = {value for _label_, value in options}
            self.table.value = self.selected_id if self.selected_id in ids else None
        finally:
            self._updating = False
        first = self.page * self.page_size
        self.page_label.value = (
            f"<span style='color:{GREY}'>{first + 1:,}–{first + len(rows):,} of {total:,} "
            f"matching (page {self.page + 1:,} of {pages:,})</span>" if total else
            f"<span style='color:{GREY}'>No resource matches the filters.</span>")
        self.previous_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        self._draw_selected(registry)

    def _draw_selected(self, registry: Registry) -> None:
        resource, resource_id = None, self.selected_id
        if resource_id is not None:
            try:
                resource = registry.get(resource_id, include_removed=True)
            except ResourceNotFoundError:
                self._report(f"Resource {resource_id} is no longer in the registry.", False)
                self.selected_id = None
        if resource is None or resource_id is None:
            self.details.value = _HINT
            self._set_place([], None)
            self._set_children([])
            self.contents.value = self.history.value = ""
            return
        self.details.value = _details_html(resource)
        if resource.removed is None:
            hierarchy = registry.hierarchy(resource_id)
            ancestors = [registry.get(a) for a in reversed(hierarchy.ancestor_ids)]
            self._set_place(ancestors, resource)
            self._draw_contents(registry, resource_id, hierarchy)
        else:
            self._set_place([], None)
            self._set_children([])
            self.contents.value = (f"<i>Removed; registry.restore_deleted({resource_id!r}) "
                                   "brings it back.</i>")
        frame = registry.history(resource_id, newest_first=True, limit=HISTORY_ROWS,
                                 as_frame=True)
        rows = [[e.version, e.change_type, f"{e.changed_at:%Y-%m-%d %H:%M:%S} UTC",
                 ", ".join(e.changes), e.detail if isinstance(e.detail, str) else ""]
                for e in frame.itertuples(index=False)]  # type: ignore[union-attr]
        self.history.value = ("<div><b>History</b> (newest first)</div>" + html_table(
            ["version", "change", "when", "changed fields", "detail"], rows, align="rllll"))

    def _draw_contents(self, registry: Registry, resource_id: str,
                       hierarchy: Hierarchy) -> None:
        inside = sum(len(children) for children in hierarchy.descendant_ids.values())
        direct = hierarchy.descendant_ids.get(resource_id, [])
        if not inside:
            self._set_children([])
            self.contents.value = "<div><b>Contents</b> <i>nothing inside</i></div>"
            return
        if inside <= self.tree_limit:
            tree = registry.hierarchy(resource_id, details=True).tree()
            self._set_children([(c["key"], c["name"], c["kind"], c["id"])
                                for c in tree["children"]])
            body = "".join(_tree_html(child, 1) for child in tree["children"])
            note = ""
        else:  # too big to draw whole: the first tree_limit resources directly inside
            children: list[Resource] = registry.query(  # type: ignore[assignment]
                parent=resource_id, order_by="id", limit=self.tree_limit)
            self._set_children([(c.key, c.name, c.kind, c.id) for c in children])
            body = "".join(_tree_html({"id": c.id, "name": c.name, "kind": c.kind,
                                       "key": c.key, "children": []}, 1) for c in children)
            note = (f" <span style='color:{GREY}'>{inside:,} resources below; the first "
                    f"{len(children):,} of the {len(direct):,} directly inside are listed</span>")
        self.contents.value = (f"<div><b>Contents</b> {inside:,} inside ({len(direct):,} "
                               f"directly){note}</div><div class='resman-registry-tree'>"
                               f"{body}</div>")

    def _set_place(self, ancestors: list[Resource], resource: Resource | None) -> None:
        """The breadcrumb (outermost first); pressing an ancestor opens it."""
        chain = [*ancestors, resource] if resource is not None else []
        options = [(f"{r.name} ({r.kind})", r.id) for r in chain]
        self._updating = True
        try:
            if options != _options(self.place):
                self.place.options = options
            self.place.value = resource.id if resource is not None else None
        finally:
            self._updating = False
        self.place.layout.display = "flex" if len(chain) > 1 else "none"
        self.place.tooltips = [r.id for r in chain]

    def _set_children(self, children: list[tuple[Any, Any, Any, Any]]) -> None:
        options = [("…", _ANY)] + [(f"{key}: {name} ({kind})" if key else f"{name} ({kind})", rid)
                                   for key, name, kind, rid in children]
        self._updating = True
        try:
            if options != _options(self.child_picker):
                self.child_picker.options = options
            self.child_picker.value = _ANY
        finally:
            self._updating = False
        self.child_picker.layout.display = "flex" if children else "none"

    # -- actions -----------------------------------------------------------------------------

    def select(self, resource: Resource | str | None) -> None:
        """Show ``resource`` (an object or id) below the table; ``None`` shows nothing."""
        resource_id = resource if resource is None or isinstance(resource, str) else resource.id
        with self._lock:
            self.selected_id = resource_id
            self.status.value = ""
            self._redraw()

    def _on_pick(self, change: Any) -> None:
        # Under the lock: a change the panel makes itself (in either thread) is ignored,
        # a user's pick waits for a refresh in progress and then counts.
        with self._lock:
            if self._updating or self._closed:
                return
            value = change["new"]
            if value is None or value == _ANY or value == self.selected_id:
                return
            self.select(value)

    def _on_filter(self, _change: Any) -> None:
        with self._lock:
            if self._updating or self._closed:
                return
            self.page = 0
            self._redraw()

    def _on_previous(self, _button: Any = None) -> None:
        with self._lock:
            self.page = max(self.page - 1, 0)
            self._redraw()

    def _on_next(self, _button: Any = None) -> None:
        with self._lock:
            self.page += 1  # _draw clamps it to the last page
            self._redraw()

    def _on_refresh(self, _button: Any = None) -> None:
        self.status.value = ""
        self.refresh(force=True)

    def _report(self, message: str, ok: bool) -> None:
        colour = GREEN if ok else RED
        self.status.value = f"<span style='color:{colour}'>{escape(message)}</span>"

    # -- fallbacks --------------------------------------------------------------------------

    def _snapshot(self) -> tuple[str, list[Resource], int, Resource | None]:
        """(summary, rows of the current page, matching total, selected) read afresh."""
        try:
            registry = self._registry()
            if registry is None:
                return self._missing_text(), [], 0, None
            filters = self._filters()
            rows: list[Resource] = registry.query(  # type: ignore[assignment]
                **filters, order_by="-created_at", limit=self.page_size,
                offset=self.page * self.page_size)
            selected = None
            if self.selected_id is not None:
                try:
                    selected = registry.get(self.selected_id, include_removed=True)
                except ResourceNotFoundError:
                    selected = None
            return _summary(registry.describe()), rows, registry.count(**filters), selected
        except ResmanError as exc:  # a static render must not fail on a damaged registry
            return f"cannot be read — {type(exc).__name__}: {exc}", [], 0, None

    def to_text(self) -> str:
        """The panel as plain text: the summary, the table's first rows, the selection."""
        summary, rows, total, selected = self._snapshot()
        lines = [f"Registry: {summary}"]
        lines += [f"  {_label(r)}" for r in rows[:TEXT_ROWS]]
        if total > min(len(rows), TEXT_ROWS):
            lines.append(f"  ({min(len(rows), TEXT_ROWS):,} of {total:,} matching shown)")
        if selected is not None:
            lines.append(f"Selected: {_label(selected)}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The panel as static HTML: the summary, the current page and the selection."""
        summary, rows, total, selected = self._snapshot()
        head = f"<b>Registry</b> {escape(summary)}"
        if not rows:
            return f"<div class='resman-registry-static'>{head}</div>"
        table = html_table(["name", "kind", "class", "owner", "updated (UTC)", "id"],
                           [_cells(r) for r in rows], align="llllll")
        more = (f"<div style='color:{GREY}'>{len(rows):,} of {total:,} matching shown</div>"
                if total > len(rows) else "")
        chosen = _details_html(selected) if selected is not None else ""
        return f"<div class='resman-registry-static'>{head}{table}{more}{chosen}</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect every handler and close every widget; idempotent."""
        if not begin_close(self):
            return
        disconnect(self._handlers, self._observers)
        close_contents(self)
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed


def _summary(described: dict[str, Any]) -> str:
    by_kind = ", ".join(f"{kind} {n:,}" for kind, n in described["by_kind"].items())
    n = described["resources"]
    text = f"{n:,} resource{'s' if n != 1 else ''}"
    if by_kind:
        text += f" ({by_kind})"
    if described.get("locks"):
        text += f"; {described['locks']:,} locked"
    return f"{text}; {described['backend']} {described['url']}"


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else ""


def _cells(resource: Resource) -> list[str]:
    data = resource.to_dict()
    name = data["name"] + (" (removed)" if data.get("removed_at") else "")
    return [name, data["kind"], data.get("resource_class") or "", data.get("owner") or "",
            _when(data.get("updated_at")), data["id"]]


def _label(resource: Resource) -> str:
    name, kind, cls, owner, updated, rid = _cells(resource)
    parts = [name, kind, cls or "-"]
    if owner:
        parts.append(f"owner {owner}")
    parts += [f"v{resource.version}", f"{updated} UTC", rid]
    return " · ".join(parts)


def _details_html(resource: Resource) -> str:
    data = resource.to_dict()
    rows = []
    for key, value in data.items():
        if value in (None, {}, []) or key == "attributes":
            continue
        if key in ("created_at", "updated_at", "removed_at"):
            value = f"{_when(value)} UTC"
        rows.append([key, value])
    if data.get("attributes"):
        rows.append(["attributes", json.dumps(data["attributes"], ensure_ascii=False,
                                              sort_keys=True, default=str)])
    state = f" <b style='color:{RED}'>REMOVED</b>" if data.get("removed_at") else ""
    return (f"<div class='resman-registry-details'><b>{escape(data['name'])}</b> "
            f"<span style='color:{GREY}'>{escape(data['kind'])}</span>{state}"
            f"{html_table(['field', 'value'], rows, align='ll')}</div>")


def _tree_html(node: dict[str, Any], depth: int) -> str:
    """One node of the contents tree: collapsible ``<details>`` when it holds others."""
    key = f"<span style='color:{GREY}'>[{escape(node['key'])}]</span> " if node["key"] else ""
    label = (f"{key}<b>{escape(node['name'])}</b> <span style='color:{GREY}'>"
             f"{escape(node['kind'])} · {escape(node['id'])}</span>")
    children = node["children"]
    if not children:
        return f"<div style='margin-left:1.2em'>&bull; {label}</div>"
    inner = "".join(_tree_html(child, depth + 1) for child in children)
    opened = " open" if depth < 2 else ""  # deep levels start folded: a plate of 96 wells
    return (f"<details{opened} style='margin-left:1.2em'><summary>{label} "
            f"<span style='color:{GREY}'>({len(children):,} inside)</span></summary>"
            f"{inner}</details>")


def _options(widget: Any) -> list[tuple[str, Any]]:
    return [o if isinstance(o, tuple) else (str(o), o) for o in widget.options]
