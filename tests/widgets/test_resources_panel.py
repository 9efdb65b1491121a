"""ResourcesPanel: health in colour, pools, metrics, holders, and release buttons that release."""

from __future__ import annotations

import re

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.resources import FactoryProvider, HealthReport, PoolConfig
from jupyter_resman.widgets import Dashboard, ResourcesPanel
from jupyter_resman.widgets._display import WIDGET_VIEW
from jupyter_resman.widgets.resources_panel import HEALTH_COLOURS

from ._helpers import wait_for


class Connections:
    """A stand-in service: hands out numbered "connections" and can be switched off."""

    def __init__(self) -> None:
        self.up = True
        self.made = 0

    def connect(self) -> dict:
        if not self.up:
            raise ConnectionError("service down")
        self.made += 1
        return {"n": self.made}

    def health(self) -> HealthReport:
        return HealthReport.ok("answers") if self.up else HealthReport.failed("service down")


@pytest.fixture
def service():
    return Connections()


@pytest.fixture
def manager(session, service):
    manager = session.resources
    manager.register_provider("db", FactoryProvider(service.connect, health=service.health,
                                                    kind="sql"), PoolConfig(max_size=4))
    manager.register_provider("scratch", FactoryProvider(list), PoolConfig(max_size=2))
    return manager


@pytest.fixture
def panel(session, manager):
    p = ResourcesPanel(session)
    yield p
    p.close()


def _cells(html):
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def _owner_rows(panel):
    return {row.owner: row for row in panel._rows.values()}


def test_one_table_per_provider_with_pool_and_metrics(manager, panel):
    html = panel.providers.value
    assert html.count("class='resman-provider'") == 2
    assert "<b>db</b>" in html and "sql" in html and "<b>scratch</b>" in html
    assert "nobody holds one" in html
    conn = manager.acquire("db", owner="cell-3")
    manager.release("db", resource=conn)
    manager.acquire("db", owner="cell-7")
    assert panel.refresh()
    metrics = manager.metrics("db")["db"]
    assert (metrics.acquisitions, metrics.active, metrics.idle) == (2, 1, 0)
    # The db table: in use 1, idle 0, waiting 0, max 4, peak 1, acquired 2, released 1.
    figures = panel.providers.value.split("<b>scratch</b>")[0]
    cells = _cells(figures)
    assert cells[:9] == ["1", "0", "0", "4", "1", "2", "1", "0", "0"]
    assert ">cell-7<" in figures  # the holder, with how long it held it
    assert "1 held by 1 owner" in panel.header.value


def test_failures_are_counted(manager, service, panel):
    service.up = False
    with pytest.raises(Exception, match="service down"):
        manager.acquire("db", owner="cell-1", timeout=1)
    panel.refresh()
    assert manager.metrics("db")["db"].failures == 1
    figures = panel.providers.value.split("<b>scratch</b>")[0]
    cells = _cells(figures)
    assert cells[7] == "1"  # failures


def test_health_in_colour_checked_while_visible(manager, service, panel):
    # Built without a check (a check can be slow); the first visible refresh checks.
    assert manager.last_health("db") is None and "not checked" in panel.providers.value
    panel.refresh()
    assert manager.last_health("db").healthy
    assert f"color:{HEALTH_COLOURS['healthy']}" in panel.providers.value
    service.up = False
    panel.check_button.click()
    assert not manager.last_health("db").healthy
    assert f"color:{HEALTH_COLOURS['unhealthy']}" in panel.providers.value
    assert "service down" in panel.providers.value
    assert "not healthy: db" in panel.status.value and "not healthy: db" in panel.header.value


def test_a_hidden_panel_runs_no_health_check(session, manager):
    panel = ResourcesPanel(session)
    try:
        panel.visible = False
        assert panel.refresh() is False
        assert panel.refresh(force=True) is True
        assert manager.last_health("db") is None  # forced redraw, but no check while hidden
        assert "not checked yet: db, scratch" in panel.header.value
    finally:
        panel.close()


def test_health_every_none_checks_only_on_request(session, manager):
    panel = ResourcesPanel(session, health_every=None)
    try:
        panel.refresh()
        assert manager.last_health("db") is None
        panel.check_button.click()
        assert manager.last_health("db").healthy
    finally:
        panel.close()


def test_release_button_releases_what_the_owner_holds(manager, panel):
    manager.acquire("db", owner="cell-7")
    manager.acquire("db", owner="cell-7")
    manager.acquire("scratch", owner="cell-7")
    manager.acquire("db", owner="cell-8")
    panel.refresh()
    rows = _owner_rows(panel)
    assert list(rows) == ["cell-7", "cell-8"]
    assert "db ×2, scratch" in rows["cell-7"].text.value
    rows["cell-7"].button.click()
    assert panel.confirm.pending.startswith("Release the 3 resources held by 'cell-7'")
    assert manager.owners("db") == {"cell-7": 2, "cell-8": 1}  # nothing before confirming
    panel.confirm.confirm_button.click()
    assert manager.owners("db") == {"cell-8": 1}
    assert manager.owners("scratch") == {}
    assert manager.leases(owner="cell-7") == []
    assert "Released 3 resources held by" in panel.status.value
    assert list(_owner_rows(panel)) == ["cell-8"]  # its row went, with its button
    assert len(panel.owners.children) == 1


def test_cancel_releases_nothing(manager, panel):
    manager.acquire("db", owner="cell-7")
    panel.refresh()
    _owner_rows(panel)["cell-7"].button.click()
    panel.confirm.cancel_button.click()
    assert manager.owners("db") == {"cell-7": 1}
    assert "nothing was changed" in panel.status.value


def test_an_owner_that_released_meanwhile_is_reported(manager, panel):
    conn = manager.acquire("db", owner="cell-7")
    panel.refresh()
    button = _owner_rows(panel)["cell-7"].button
    manager.release("db", resource=conn)  # the cell gave it back on its own
    button.click()
    assert panel.confirm.pending is None
    assert "cell-7 holds nothing any more" in panel.status.value
    assert "cell-7" not in _owner_rows(panel)


def test_no_providers(session):
    panel = ResourcesPanel(session)
    try:
        assert "no providers registered" in panel.header.value
        assert panel.check_button.disabled
        assert panel.to_text().startswith("Resources: no providers registered")
    finally:
        panel.close()


def test_fallbacks(manager, panel):
    manager.acquire("scratch", owner="cell-2")
    bundle = panel._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    text = bundle["text/plain"].splitlines()
    assert text[0] == "Resources: 2 providers; 1 held by 1 owner; not checked yet: db, scratch"
    assert text[1].startswith("  db (sql) not checked: in use 0 of 4")
    assert text[2].startswith("  scratch (factory) not checked: in use 1 of 2")
    assert text[3].startswith("    held by cell-2 for ")
    assert "<table" in bundle["text/html"] and ">cell-2<" in bundle["text/html"]


def test_dashboard_tab(session, manager):
    board = Dashboard(session, interval=0.2, slow_period=0.5)
    try:
        panel = board.resources_panel
        assert board.tabs.titles[5] == "Resources" and board.tabs.children[5] is panel
        manager.acquire("db", owner="cell-9")
        board.tabs.selected_index = 5
        wait_for(lambda: "cell-9" in _owner_rows(panel), what="the resources tab to refresh")
        wait_for(lambda: manager.last_health("db") is not None, what="a health check")
    finally:
        board.close()


def test_close_disconnects_the_owner_buttons(manager, session):
    panel = ResourcesPanel(session)
    manager.acquire("db", owner="cell-7")
    panel.refresh()
    button = _owner_rows(panel)["cell-7"].button
    panel.close()
    panel.close()  # idempotent
    assert button._click_handlers.callbacks == []
    assert panel.check_button._click_handlers.callbacks == []
    assert panel.refresh(force=True) is False
    # (The autouse fixture checks that every widget, the owner rows' too, was closed.)


@pytest.mark.parametrize("options", [{"period": 0.1}, {"health_every": 0}])
def test_bad_options_are_refused(session, options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        ResourcesPanel(session, **options)
