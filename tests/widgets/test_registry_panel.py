"""RegistryPanel: a filtered, paged table and one resource in depth, all read from the core."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.registry import KINDS, Asset, Collection, Consumable, Grid
from jupyter_resman.widgets import Dashboard, RegistryPanel
from jupyter_resman.widgets._display import WIDGET_VIEW
from jupyter_resman.widgets.registry_panel import _ANY, _KINDS

from ._helpers import wait_for


@pytest.fixture
def lab(session):
    """A rack holding a plate with two wells, a loose tube, a buffer, and a removed tube."""
    reg = session.registry
    rack = reg.add(Collection(name="rack R", resource_class="rack"))
    plate = reg.set_child(rack, "top", Grid(name="plate 1", resource_class="plate", rows=2,
                                            columns=3, attributes={"experiment": "E7"}))
    a1 = reg.set_child(plate, (0, 0), Asset(name="A1", resource_class="sample"))
    a2 = reg.set_child(plate, (0, 1), Asset(name="A2", resource_class="sample"))
    tube = reg.add(Asset(name="tube 9", resource_class="sample", owner="ana"))
    buffer = reg.add(Consumable(name="PBS", quantity=500, capacity=1000, unit="mL"))
    gone = reg.add(Asset(name="old tube", resource_class="sample"))
    reg.remove(gone)
    return {"rack": rack, "plate": plate, "a1": a1, "a2": a2, "tube": tube, "buffer": buffer,
            "gone": gone, "session": session}


@pytest.fixture
def panel(lab):
    p = RegistryPanel(lab["session"])
    yield p
    p.close()


def _listed(panel):
    """Names of the listed resources, in table order."""
    return [label.split(" · ")[0] for label, _id in panel.table.options]


def test_the_table_lists_every_live_resource_newest_first(lab, panel):
    reg = lab["session"].registry
    expected = [r.name for r in reg.query(order_by="-created_at")]
    assert _listed(panel) == expected
    assert "old tube" not in expected
    assert [rid for _label, rid in panel.table.options] == [
        r.id for r in reg.query(order_by="-created_at")]
    assert "6 resources" in panel.header.value and "asset 3" in panel.header.value
    assert "1–6 of 6 matching" in panel.page_label.value
    assert panel.previous_button.disabled and panel.next_button.disabled


def test_filters_really_filter(lab, panel):
    panel.kind_filter.value = "grid"
    assert _listed(panel) == ["plate 1"]
    panel.kind_filter.value = "container"
    assert sorted(_listed(panel)) == ["plate 1", "rack R"]
    panel.kind_filter.value = _ANY
    panel.class_filter.value = "sample"
    assert sorted(_listed(panel)) == ["A1", "A2", "tube 9"]
    panel.name_filter.value = "tube"  # no wildcard: names containing the text
    assert _listed(panel) == ["tube 9"]
    panel.removed_filter.value = True
    assert sorted(_listed(panel)) == ["old tube (removed)", "tube 9"]
    panel.name_filter.value = "A*"  # a wildcard: the whole name must match
    panel.removed_filter.value = False
    assert sorted(_listed(panel)) == ["A1", "A2"]
    panel.class_filter.value = ""
    panel.name_filter.value = "nothing like this"
    assert _listed(panel) == []
    assert "No resource matches" in panel.page_label.value


def test_paging(lab):
    reg = lab["session"].registry
    panel = RegistryPanel(lab["session"], page_size=4)
    try:
        first = _listed(panel)
        assert len(first) == 4 and "1–4 of 6 matching (page 1 of 2)" in panel.page_label.value
        assert panel.previous_button.disabled and not panel.next_button.disabled
        panel.next_button.click()
        second = _listed(panel)
        assert len(second) == 2 and "5–6 of 6 matching (page 2 of 2)" in panel.page_label.value
        assert panel.next_button.disabled and not panel.previous_button.disabled
        assert first + second == [r.name for r in reg.query(order_by="-created_at")]
        panel.next_button.click()  # past the end: stays on the last page
        assert _listed(panel) == second
        panel.previous_button.click()
        assert _listed(panel) == first
        panel.next_button.click()
        panel.kind_filter.value = "asset"  # a new filter starts again at page 1
        assert panel.page == 0 and sorted(_listed(panel)) == ["A1", "A2", "tube 9"]
    finally:
        panel.close()


def test_selecting_a_row_shows_details_place_contents_and_history(lab, panel):
    a2, plate, rack = lab["a2"], lab["plate"], lab["rack"]
    panel.table.value = a2.id  # what a click in the browser does
    assert panel.selected_id == a2.id
    assert "<b>A2</b>" in panel.details.value and a2.id in panel.details.value
    assert ">0,1<" in panel.details.value  # its key in the plate
    # Its place: the rack, the plate, then itself.
    assert [rid for _label, rid in panel.place.options] == [rack.id, plate.id, a2.id]
    assert panel.place.value == a2.id and panel.place.layout.display == "flex"
    assert "nothing inside" in panel.contents.value
    # History: added, then placed in the plate (newest first).
    history = panel.history.value
    assert history.index(">updated<") < history.index(">added<")
    assert f"placed in {plate.id}[0,1]" in history


def test_the_contents_tree_and_moving_up_and_down(lab, panel):
    rack, plate, a1 = lab["rack"], lab["plate"], lab["a1"]
    panel.select(lab["a1"])
    panel.place.value = rack.id  # press the rack in the breadcrumb
    assert panel.selected_id == rack.id
    tree = panel.contents.value
    assert "3 inside (1 directly)" in tree
    # Nested: the plate's node holds the wells, each with its key.
    plate_at = tree.index("<b>plate 1</b>")
    assert "<details" in tree and "(2 inside)" in tree
    assert plate_at < tree.index("[0,0]") < tree.index("<b>A1</b>")
    assert plate_at < tree.index("<b>A2</b>")
    assert [rid for _label, rid in panel.child_picker.options][1:] == [plate.id]
    panel.child_picker.value = plate.id  # open what is inside
    assert panel.selected_id == plate.id
    assert [label for label, _rid in panel.child_picker.options][1:] == [
        "0,0: A1 (asset)", "0,1: A2 (asset)"]
    assert '"experiment": "E7"' in panel.details.value.replace("&quot;", '"')
    panel.child_picker.value = a1.id
    assert panel.selected_id == a1.id


def test_a_big_subtree_shows_its_first_level_only(lab):
    panel = RegistryPanel(lab["session"], tree_limit=2)
    try:
        panel.select(lab["rack"])  # 3 resources below: more than the limit
        contents = panel.contents.value
        assert "3 resources below" in contents
        assert "<b>plate 1</b>" in contents and "<b>A1</b>" not in contents
    finally:
        panel.close()


def test_changes_by_another_process_appear_on_refresh(lab, panel, home):
    panel.select(lab["tube"])
    assert panel.refresh() is False  # nothing changed: nothing is read beyond one row
    code = textwrap.dedent(f"""
        import jupyter_resman as resman
        from jupyter_resman.core.registry import Asset
        with resman.Session(home={str(home)!r}) as s:
            s.registry.add(Asset(name="from the other kernel", resource_class="sample"))
            s.registry.update({lab["tube"].id!r}, name="tube 9b")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert "from the other kernel" not in _listed(panel)
    assert panel.refresh() is True
    assert _listed(panel)[0] == "from the other kernel"
    assert "tube 9b" in _listed(panel)
    assert "<b>tube 9b</b>" in panel.details.value  # the selection is re-read too
    assert "7 resources" in panel.header.value
    assert panel.refresh() is False


def test_a_removed_selection_says_so_and_keeps_its_history(lab, panel):
    reg = lab["session"].registry
    panel.select(lab["tube"])
    reg.remove(lab["tube"])
    assert panel.refresh()
    assert "tube 9" not in _listed(panel)
    assert "REMOVED" in panel.details.value
    assert "restore_deleted" in panel.contents.value
    assert ">removed<" in panel.history.value
    assert panel.place.layout.display == "none"


def test_a_home_without_a_registry_gets_none_from_the_panel(session):
    panel = RegistryPanel(session)
    try:
        assert not session.home.registry_db.exists()  # showing it created nothing
        assert "none yet" in panel.header.value
        assert panel.to_text().startswith("Registry: none yet")
        assert not session.home.registry_db.exists()
        session.registry.add(Asset(name="first", resource_class="sample"))
        assert panel.refresh()
        assert _listed(panel) == ["first"]
    finally:
        panel.close()


def test_a_damaged_registry_is_reported_not_raised(session):
    session.home.registry_db.parent.mkdir(parents=True, exist_ok=True)
    session.home.registry_db.write_bytes(b"not a database " * 100)
    panel = RegistryPanel(session)  # a dashboard must still open
    try:
        assert "RegistryCorruptError" in panel.status.value and "#d62728" in panel.status.value
        assert panel.to_text().startswith("Registry: cannot be read — RegistryCorruptError")
        assert session.home.registry_db.read_bytes().startswith(b"not a database")  # untouched
    finally:
        panel.close()


def test_hidden_panel_skips_refresh_unless_forced(lab, panel):
    lab["session"].registry.add(Asset(name="new"))
    panel.visible = False
    assert panel.refresh() is False
    assert "new" not in _listed(panel)
    assert panel.refresh(force=True) is True
    assert "new" in _listed(panel)


def test_fallbacks(lab, panel):
    panel.select(lab["plate"])
    bundle = panel._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    text = bundle["text/plain"].splitlines()
    assert text[0].startswith("Registry: 6 resources (asset 3, collection 1, consumable 1, grid 1)")
    assert text[1].startswith("  PBS · consumable")
    assert text[-1].startswith("Selected: plate 1 · grid · plate")
    html = bundle["text/html"]
    assert "<table" in html and "tube 9" in html and "<b>plate 1</b>" in html


def test_dashboard_tab_refreshes_when_selected(session):
    board = Dashboard(session, interval=0.2, slow_period=0.5)
    try:
        panel = board.registry_panel
        assert board.tabs.children[4] is panel and not panel.visible
        session.registry.add(Asset(name="made while hidden"))
        board.tabs.selected_index = 4
        assert panel.visible
        wait_for(lambda: "made while hidden" in _listed(panel), what="the registry tab to refresh")
        assert panel.period >= 2.0  # never re-read twice a second, whatever slow_period says
    finally:
        board.close()


def test_close_disconnects_everything(lab):
    panel = RegistryPanel(lab["session"])
    panel.close()
    panel.close()  # idempotent
    assert panel.next_button._click_handlers.callbacks == []
    for widget in (panel.kind_filter, panel.table, panel.place, panel.child_picker):
        handlers = widget._trait_notifiers.get("value", {}).get("change", [])
        assert not any(getattr(h, "__self__", None) is panel for h in handlers)
    assert panel.refresh(force=True) is False
    # (The autouse fixtures check that no widget model and no thread is left.)


def test_the_kind_filter_offers_every_kind_of_the_core():
    assert _KINDS == tuple(sorted(KINDS))


@pytest.mark.parametrize("options", [{"period": 1.0}, {"page_size": 0}, {"tree_limit": True}])
def test_bad_options_are_refused(session, options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        RegistryPanel(session, **options)
