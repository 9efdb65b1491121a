"""Dashboard: panels in tabs, moved by one background thread, closed without leaks."""

from __future__ import annotations

import re
import threading

import pytest
from IPython.core.formatters import DisplayFormatter

import jupyter_resman as resman
from jupyter_resman.core.errors import ConfigError
from jupyter_resman.widgets import Dashboard, dashboard
from jupyter_resman.widgets._display import WIDGET_VIEW

from ._helpers import trace, wait_for


@pytest.fixture
def board(session):
    b = Dashboard(session, interval=0.1, slow_period=0.5)
    yield b
    b.close()


def _threads(name):
    return [t for t in threading.enumerate() if t.name == name]


def test_tabs_hold_the_six_panels(board):
    assert board.tabs.titles == ("Monitor", "Progress", "Cache", "Checkpoints", "Registry",
                                 "Resources")
    assert board.tabs.children == board.panels
    assert str(board.session.home.root) in board.header.value


def test_one_background_thread_moves_the_graphs_without_any_call(board):
    assert len(_threads("resman-dashboard")) == 1
    memory = trace(board.monitor_panel.figure, "kernel memory")
    first = len(memory.y)
    # Nothing in this test calls refresh(): the dashboard's thread draws new samples.
    wait_for(lambda: len(memory.y) >= first + 3, what="the graph to move by itself")


def test_progress_of_a_running_loop_shows_up_while_it_runs(board):
    with resman.progress(total=4, desc="long cell", renderer="silent", publish=False) as bar:
        bar.update(2)
        views = wait_for(lambda: board.progress_panel.views, what="the bar on the panel")
        wait_for(lambda: views[0].rows[0].bar.value == 0.5, what="the bar at 50 %")
        bar.update(2)
    wait_for(lambda: board.progress_panel.views[0].rows[0].bar.value == 1.0,
             what="the bar at 100 %")
    assert board.progress_panel.views[0].rows[0].bar.bar_style == "success"


def test_hidden_tabs_wait_and_refresh_when_selected(session, board):
    cache_panel = board.cache_panel
    assert not cache_panel.visible and board.monitor_panel.visible
    session.cache.set("new-entry", 1)
    # Selecting the tab draws it at once (the thread is poked), not a period later.
    board.tabs.selected_index = 2
    assert cache_panel.visible and not board.monitor_panel.visible
    wait_for(lambda: any("new-entry" in label for label, _ in cache_panel.entries.options),
             what="the cache tab to refresh")


def test_close_stops_everything_it_started(session):
    b = Dashboard(session, interval=0.1)
    assert session.monitor.running and _threads("resman-dashboard")
    panel = b.cache_panel
    b.close()
    b.close()  # idempotent
    assert not b.running and not _threads("resman-dashboard")
    assert not session.monitor.running
    # Every callback is disconnected: buttons, filters, the tab observer.
    assert panel.clear_all_button._click_handlers.callbacks == []
    assert not any(h.__self__ is panel for h in panel.namespace_filter._trait_notifiers
                   .get("value", {}).get("change", []) if hasattr(h, "__self__"))
    assert not any(getattr(h, "__self__", None) is b for h in b.tabs._trait_notifiers
                   .get("selected_index", {}).get("change", []))
    # (The autouse fixtures check that no widget model and no thread is left.)


def test_a_monitor_started_by_someone_else_keeps_running(session):
    session.monitor.start(0.2)
    b = Dashboard(session)
    b.close()
    assert session.monitor.running
    session.monitor.stop()


def test_dashboard_returns_the_open_dashboard_of_the_session(session):
    first = dashboard(session)
    try:
        assert dashboard(session) is first
        assert dashboard() is first  # the default session is `session` here
        assert len(_threads("resman-dashboard")) == 1
    finally:
        first.close()
    second = dashboard(session)
    try:
        assert second is not first and not second.closed
    finally:
        second.close()


def test_the_thread_stops_by_itself_when_the_session_closes(home):
    s = resman.Session(home=home)
    b = Dashboard(s, interval=0.1)
    try:
        s.close()
        wait_for(lambda: not b.running, what="the dashboard thread to stop")
    finally:
        b.close()


def test_fallback_output_without_a_widget_front_end(session, board):
    session.cache.set("k", "v")
    session.checkpoints.save("run", 1)
    board.refresh()
    bundle = board._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    text = bundle["text/plain"]
    assert text.startswith("jupyter_resman dashboard — home ")
    for part in ("Kernel memory:", "Progress: no progress bars", "Cache: 1 entry",
                 "Checkpoints: 1 checkpoint", "Registry: none yet", "Resources: no providers"):
        assert part in text
    for title in ("Monitor", "Progress", "Cache", "Checkpoints", "Registry", "Resources"):
        assert f">{title}</h4>" in bundle["text/html"]
    # What IPython itself would publish (a terminal shows text/plain; nbconvert, GitHub text/html).
    data, _metadata = DisplayFormatter().format(board)
    # Live figures (CPU, memory) may move between the two renderings: compare the rest.
    def steady(rendering):
        return re.sub(r"\d+(\.\d+)?", "N", rendering)

    assert steady(data["text/plain"]) == steady(text)
    assert steady(data["text/html"]) == steady(bundle["text/html"])


def test_a_half_built_dashboard_leaves_nothing_behind(session):
    with pytest.raises(ConfigError, match="period"):
        Dashboard(session, slow_period=0.1)  # the cache panel refuses, after two panels exist
    assert not session.monitor.running
    # (The autouse fixtures check that no widget model and no thread is left.)
