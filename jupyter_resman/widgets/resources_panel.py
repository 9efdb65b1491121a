"""This kernel's resource providers: health, pools, who holds what, and how they are used.

Everything shown is one :meth:`~jupyter_resman.core.resources.ResourceManager.snapshot`
of ``session.resources`` — the same snapshot ``%resman resources`` prints and
the live feed publishes — drawn as one table per provider: its health (in
colour), its pool (in use, idle, waiting, the maximum), acquisitions,
failures, timeouts and average wait and hold times, and every resource held
now with its owner and for how long.

Each owner gets a *Release* button: after a confirmation it gives back
everything that owner holds (:meth:`~jupyter_resman.core.resources.ResourceManager.release_all`),
the way a cell that forgot a ``with`` block is cleaned up by hand.

Health checks can be slow (a connect, an HTTP round trip), so they run only
while the panel is visible: when a provider was never checked or its last
check is older than ``health_every`` seconds, and on *Check health*.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.errors import ConfigError, ResmanError
from ..core.session import get_session
from ._confirm import ConfirmBar
from ._display import (
    GREEN,
    GREY,
    ORANGE,
    RED,
    begin_close,
    close_contents,
    close_tree,
    disconnect,
    escape,
    html_table,
    mimebundle,
)
from ._refresh import checked_period

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = ["HEALTH_COLOURS", "ResourcesPanel"]

#: Colour of each health status (``None``: never checked).
HEALTH_COLOURS = {"healthy": GREEN, "degraded": ORANGE, "unhealthy": RED, "unknown": GREY}
_METRIC_COLUMNS = ["in use", "idle", "waiting", "max", "peak", "acquired", "released",
                   "failures", "timeouts", "avg wait", "avg hold", "max hold"]


class ResourcesPanel(widgets.VBox):
    """Providers of ``session.resources`` with health, pool, metrics, holders, release buttons.

    ``period`` is how often a dashboard refreshes it while visible (seconds);
    ``health_every`` how old a provider's last health check may get while
    the panel is visible before it is checked again (``None``: only on *Check
    health*).
    """

    def __init__(self, session: Session | None = None, *, period: float = 5.0,
                 health_every: float | None = 60.0) -> None:
        period = checked_period(period)
        if health_every is not None and (isinstance(health_every, bool) or not isinstance(
                health_every, (int, float)) or not health_every > 0):
            raise ConfigError(f"health_every={health_every!r} must be a positive number of "
                              "seconds (e.g. 60), or None to check only on request")
        session = session if session is not None else get_session()
        self.session = session
        self.manager = session.resources
        self.period = period
        self.health_every = None if health_every is None else float(health_every)
        self.visible = True
        self._lock = threading.RLock()
        self._closed = False
        self._rows: dict[str, _OwnerRow] = {}

        self.header = widgets.HTML()
        self.providers = widgets.HTML()
        self.owners_title = widgets.HTML()
        self.owners = widgets.VBox()
        self.check_button = widgets.Button(description="Check health", icon="heartbeat")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.confirm = ConfirmBar(self._report)
        self._handlers: list[tuple[widgets.Button, Callable[..., None]]] = [
            (self.check_button, self._on_check),
            (self.refresh_button, self._on_refresh),
        ]
        for button, handler in self._handlers:
            button.on_click(handler)
        super().__init__([
            self.header, self.providers, self.owners_title, self.owners,
            widgets.HBox([self.check_button, self.refresh_button]),
            self.confirm, self.status,
        ])
        self.add_class("resman-resources-panel")
        with self._lock:
            self._draw(self.manager.snapshot())  # no health check yet: it may be slow

    # -- drawing ----------------------------------------------------------------------

    def _due(self) -> list[str]:
        """Providers whose health was never checked, or not for ``health_every`` seconds."""
        if self.health_every is None:
            return []
        now = time.time()
        due = []
        for name in self.manager.names:
            report = self.manager.last_health(name)
            if report is None or now - report.checked_at >= self.health_every:
                due.append(name)
        return due

    def refresh(self, force: bool = False) -> bool:
        """Re-read the manager's snapshot and redraw; whether it drew.

        Skipped while hidden unless ``force``. While visible, providers due
        for a health check (see ``health_every``) are checked first.
        """
        with self._lock:
            if self._closed or not (self.visible or force):
                return False
            due = self._due() if self.visible else []
        for name in due:  # outside the lock: a slow check must not hold up the buttons
            try:
                self.manager.health(name)
            except ResmanError:  # unregistered meanwhile: the snapshot below no longer has it
                continue
        with self._lock:
            if self._closed:
                return False
            self._draw(self.manager.snapshot())
            return True

    def _draw(self, snapshot: dict[str, Any]) -> None:
        providers = snapshot["providers"]
        self.header.value = (f"<div class='resman-resources-header'><b>Resources</b> "
                             f"{escape(_summary(providers))}</div>")
        self.providers.value = "".join(_provider_html(name, info)
                                       for name, info in providers.items())
        holders = _by_owner(providers)
        self.owners_title.value = "<div><b>Owners</b></div>" if holders else ""
        self._update_owner_rows(holders)
        self.check_button.disabled = not providers

    def _update_owner_rows(self, holders: dict[str, list[tuple[str, float]]]) -> None:
        """One row with a *Release* button per owner; rows of owners that hold nothing go."""
        gone = [owner for owner in self._rows if owner not in holders]
        for owner, held in holders.items():
            row = self._rows.get(owner)
            if row is None:
                row = self._rows[owner] = _OwnerRow(owner, self._on_release)
            row.text.value = f"<b>{escape(owner)}</b> holds {escape(_held_text(held))}"
        rows = [self._rows[owner].box for owner in holders]
        if list(self.owners.children) != rows:
            self.owners.children = rows
        for owner in gone:
            self._rows.pop(owner).close()

    # -- actions ----------------------------------------------------------------------------

    def _on_release(self, owner: str, _button: Any = None) -> None:
        held = [(lease.name, lease.held_s()) for lease in self.manager.leases(owner=owner)]
        if not held:
            self._report(f"{owner} holds nothing any more.", True)
            self.refresh(force=True)
            return
        self.confirm.ask(f"Release the {len(held):,} resource{'s' if len(held) != 1 else ''} "
                         f"held by {owner!r} ({_held_text(held)})? Code still using them "
                         "will fail.", functools.partial(self._release, owner))

    def _release(self, owner: str) -> str:
        released = self.manager.release_all(owner)
        self.refresh(force=True)
        return f"Released {released:,} resource{'s' if released != 1 else ''} held by {owner!r}."

    def _on_check(self, _button: Any = None) -> None:
        try:
            reports = self.manager.health()
        except ResmanError as exc:  # the manager was closed with its session
            self._report(f"{type(exc).__name__}: {exc}", False)
            return
        bad = sorted(name for name, report in reports.items() if not report.healthy)
        self._report(f"Checked {len(reports):,} provider{'s' if len(reports) != 1 else ''}: "
                     + (f"not healthy: {', '.join(bad)}." if bad else "all healthy."), not bad)
        self.refresh(force=True)

    def _on_refresh(self, _button: Any = None) -> None:
        self.refresh(force=True)

    def _report(self, message: str, ok: bool) -> None:
        colour = GREEN if ok else RED
        self.status.value = f"<span style='color:{colour}'>{escape(message)}</span>"

    # -- fallbacks ---------------------------------------------------------------------------

    def to_text(self) -> str:
        """The panel as plain text: one line per provider, one per resource held."""
        providers = self.manager.snapshot()["providers"]  # afresh: a hidden tab may be old
        lines = [f"Resources: {_summary(providers)}"]
        for name, info in providers.items():
            m = info.get("metrics") or {}
            lines.append(
                f"  {name} ({info['kind']}) {_health_word(info.get('health'))}: in use "
                f"{m.get('active', 0)} of {m.get('max_size', '?')}, idle {m.get('idle', 0)}, "
                f"{m.get('acquisitions', 0):,} acquired, {m.get('failures', 0):,} failures, "
                f"avg wait {_seconds(m.get('avg_acquire_s', 0.0))}, avg hold "
                f"{_seconds(m.get('avg_hold_s', 0.0))}")
            lines += [f"    held by {lease['owner']} for {_seconds(lease['held_s'])}"
                      + (f" (taken at {lease['where']})" if lease.get("where") else "")
                      for lease in info.get("leases", [])]
        return "\n".join(lines)

    def to_html(self) -> str:
        """The panel as static HTML: the summary and the table of each provider."""
        providers = self.manager.snapshot()["providers"]
        body = "".join(_provider_html(name, info) for name, info in providers.items())
        return (f"<div class='resman-resources-static'><b>Resources</b> "
                f"{escape(_summary(providers))}{body}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        return mimebundle(self, self.to_text(), self.to_html(), include, exclude)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect every handler and close every widget (owner rows too); idempotent."""
        if not begin_close(self):
            return
        with self._lock:
            rows = list(self._rows.values())
            self._rows.clear()
        disconnect(self._handlers)
        for row in rows:
            row.close()
        self.confirm.close()
        close_contents(self)
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed


class _OwnerRow:
    """What one owner holds, and its *Release* button."""

    def __init__(self, owner: str, on_release: Callable[..., None]) -> None:
        self.owner = owner
        self.text = widgets.HTML()
        self.button = widgets.Button(description="Release", icon="unlock",
                                     button_style="warning",
                                     tooltip=f"give back everything {owner} holds")
        self._handler = functools.partial(on_release, owner)
        self.button.on_click(self._handler)
        self.box = widgets.HBox([self.text, self.button],
                                layout=widgets.Layout(align_items="center"))

    def close(self) -> None:
        self.button.on_click(self._handler, remove=True)
        close_tree(self.box)


def _by_owner(providers: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """``{owner: [(provider, held_s), ...]}``, owners in the order they first took one."""
    leases = sorted((lease for info in providers.values() for lease in info.get("leases", [])),
                    key=lambda lease: lease["acquired_at"])
    out: dict[str, list[tuple[str, float]]] = {}
    for lease in leases:
        out.setdefault(lease["owner"], []).append((lease["name"], lease["held_s"]))
    return out


def _held_text(held: list[tuple[str, float]]) -> str:
    """``"db ×2, scratch; longest held 12.0 s"``."""
    counts: dict[str, int] = {}
    for name, _held in held:
        counts[name] = counts.get(name, 0) + 1
    names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items())
    return f"{names}; longest held {_seconds(max(h for _n, h in held))}"


def _summary(providers: dict[str, Any]) -> str:
    if not providers:
        return ("no providers registered; add one with "
                "session.resources.register_provider(name, provider)")
    held = [lease for info in providers.values() for lease in info.get("leases", [])]
    owners = {lease["owner"] for lease in held}
    text = (f"{len(providers):,} provider{'s' if len(providers) != 1 else ''}; {len(held):,} "
            f"held by {len(owners):,} owner{'s' if len(owners) != 1 else ''}")
    bad = [name for name, info in providers.items()
           if info.get("health") and info["health"]["status"] != "healthy"]
    unchecked = [name for name, info in providers.items() if not info.get("health")]
    if bad:
        text += f"; not healthy: {', '.join(bad)}"
    if unchecked:
        text += f"; not checked yet: {', '.join(unchecked)}"
    return text


def _health_word(health: dict[str, Any] | None) -> str:
    return "not checked" if not health else str(health.get("status", "unknown"))


def _health_html(health: dict[str, Any] | None) -> str:
    word = _health_word(health)
    colour = HEALTH_COLOURS.get(word, GREY)
    badge = f"<span style='color:{colour};font-weight:bold'>&#9679; {escape(word)}</span>"
    if not health:
        return badge
    facts = [health.get("message") or ""]
    if health.get("latency_s") is not None:
        facts.append(_seconds(health["latency_s"]))
    if health.get("checked_at"):
        facts.append("checked " + time.strftime("%H:%M:%S", time.localtime(health["checked_at"])))
    return f"{badge} <span style='color:{GREY}'>{escape(' · '.join(f for f in facts if f))}</span>"


def _provider_html(name: str, info: dict[str, Any]) -> str:
    m = info.get("metrics") or {}
    target = f" · {info['target']}" if info.get("target") else ""
    head = (f"<div><b>{escape(name)}</b> <span style='color:{GREY}'>{escape(info['kind'])}"
            f"{escape(target)}</span> &middot; {_health_html(info.get('health'))}</div>")
    figures = html_table(_METRIC_COLUMNS, [[
        m.get("active", 0), m.get("idle", 0), m.get("waiting", 0), m.get("max_size", ""),
        m.get("peak_active", 0), f"{m.get('acquisitions', 0):,}", f"{m.get('releases', 0):,}",
        f"{m.get('failures', 0):,}", f"{m.get('timeouts', 0):,}",
        _seconds(m.get("avg_acquire_s", 0.0)), _seconds(m.get("avg_hold_s", 0.0)),
        _seconds(m.get("max_hold_s", 0.0))]], align="r" * len(_METRIC_COLUMNS))
    leases = info.get("leases", [])
    if leases:
        holders = html_table(["owner", "held for", "taken at", "thread"],
                             [[lease["owner"], _seconds(lease["held_s"]), lease.get("where", ""),
                               lease.get("thread", "")] for lease in leases], align="lrll")
    else:
        holders = f"<div style='color:{GREY}'><i>nobody holds one</i></div>"
    extra = m.get("provider") or {}
    provider = (f"<div style='color:{GREY}'>provider: "
                f"{escape(', '.join(f'{k}={v}' for k, v in extra.items()))}</div>" if extra else "")
    return (f"<div class='resman-provider' style='margin:6px 0'>{head}{figures}{holders}"
            f"{provider}</div>")


def _seconds(s: float) -> str:
    """``0.0000123`` → ``'12 µs'``, ``0.0042`` → ``'4.2 ms'``, ``75`` → ``'75.0 s'``.

    >>> _seconds(0.0000123), _seconds(0.0042), _seconds(75), _seconds(600)
    ('12 µs', '4.2 ms', '75.0 s', '10.0 min')
    """
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs" if s else "0"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"
