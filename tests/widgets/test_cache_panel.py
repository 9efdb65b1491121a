"""CachePanel: stats, graphs, filters, and clear buttons that really clear (checked via the core)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.settings import format_size
from jupyter_resman.widgets import CachePanel
from jupyter_resman.widgets._display import WIDGET_VIEW
from jupyter_resman.widgets.cache_panel import _ALL, format_duration


@pytest.fixture
def filled(session):
    cache = session.cache
    cache.set("e1", b"x" * 1000, namespace="emb", tags=["exp1"])
    cache.set("e2", b"y" * 2000, namespace="emb", tags=["exp2"])
    cache.set("r1", [1, 2, 3], namespace="results", tags=["exp1"])
    cache.set(("tuple", 7), {"a": 1})
    cache.get("e1", namespace="emb")
    cache.get("missing")
    return session


@pytest.fixture
def panel(filled):
    p = CachePanel(filled)
    yield p
    p.close()


def _labels(panel):
    return [label for label, _value in panel.entries.options]


def _confirm(panel):
    assert panel.confirm.pending, "a clear button must ask before it clears"
    panel.confirm.confirm_button.click()


def test_summary_and_namespaces_come_from_the_cache_stats(filled, panel):
    stats = filled.cache.stats()
    assert f"{stats.entries} entries" in panel.header.value
    assert f"hit rate {stats.hit_rate:.0%}" in panel.header.value
    for name in ("emb", "results", "default"):
        assert f">{name}<" in panel.namespaces.value
    bars = panel.figure.data[1]
    assert list(bars.x) == list(stats.namespaces)
    assert list(bars.y) == [ns.bytes for ns in stats.namespaces.values()]
    assert list(bars.text) == [f"{ns.entries} entries" for ns in stats.namespaces.values()]
    hit_rate = panel.figure.data[0]
    assert list(hit_rate.y) == [pytest.approx(50.0)]  # one hit, one miss this minute


def test_entries_list_and_filters(panel):
    assert len(panel.entries.options) == 4
    panel.namespace_filter.value = "emb"
    assert sorted(label.split(" · ")[0] for label in _labels(panel)) == ["e1", "e2"]
    panel.tag_filter.value = "exp2"
    assert [label.split(" · ")[0] for label in _labels(panel)] == ["e2"]
    panel.namespace_filter.value = _ALL
    panel.tag_filter.value = "exp1"
    assert sorted(label.split(" · ")[0] for label in _labels(panel)) == ["e1", "r1"]
    panel.tag_filter.value = _ALL
    panel.search.value = "tup"
    assert [label.split(" · ")[0] for label in _labels(panel)] == ["('tuple', 7)"]
    assert "1 of 4 entries match" in panel.entries_note.value


def test_clear_namespace_asks_then_clears_through_the_core(filled, panel):
    assert panel.clear_namespace_button.disabled  # no namespace chosen yet
    panel.namespace_filter.value = "emb"
    assert not panel.clear_namespace_button.disabled
    panel.clear_namespace_button.click()
    _n, size = filled.cache.count(namespace="emb")
    assert panel.confirm.pending == f"Remove 2 entries ({format_size(size)}) in namespace 'emb'?"
    assert filled.cache.count(namespace="emb")[0] == 2  # nothing happens before confirming
    _confirm(panel)
    assert filled.cache.count(namespace="emb") == (0, 0)
    assert filled.cache.count()[0] == 2
    assert "Removed 2 entries (namespace 'emb')" in panel.status.value.replace("&#x27;", "'")
    # The panel refreshed after the clear: no emb entries listed, no emb bytes drawn
    # (the namespace keeps its row: its hit/miss history stays true).
    assert _labels(panel) == []  # the filter still selects "emb"
    bars = panel.figure.data[1]
    assert dict(zip(bars.x, bars.y))["emb"] == 0


def test_clear_tag(filled, panel):
    panel.tag_filter.value = "exp1"
    panel.clear_tag_button.click()
    assert "tagged 'exp1'" in panel.confirm.pending
    _confirm(panel)
    remaining = filled.cache.entries()
    assert sorted(map(str, remaining["key"])) == ["('tuple', 7)", "e2"]


def test_clear_selected_entries(filled, panel):
    panel.search.value = "e"  # keys containing "e": e1, e2, ('tuple', 7)
    chosen = [value for label, value in panel.entries.options if label.startswith("e2 ·")]
    panel.entries.value = tuple(chosen)
    assert not panel.clear_selected_button.disabled
    panel.clear_selected_button.click()
    assert panel.confirm.pending.startswith("Remove the 1 selected entries")
    _confirm(panel)
    assert "e2" not in list(filled.cache.entries()["key"])
    assert filled.cache.count()[0] == 3


def test_clear_all(filled, panel):
    panel.clear_all_button.click()
    assert panel.confirm.pending.startswith("Remove ALL 4 entries")
    _confirm(panel)
    assert filled.cache.count() == (0, 0)
    assert panel.entries.options == ()
    assert "The cache is empty" in panel.namespaces.value
    assert panel.clear_all_button.disabled


def test_cancel_changes_nothing(filled, panel):
    panel.clear_all_button.click()
    panel.confirm.cancel_button.click()
    assert panel.confirm.pending is None
    assert filled.cache.count()[0] == 4
    assert "nothing was changed" in panel.status.value


def test_a_failing_clear_is_reported_not_raised(filled, panel):
    panel.namespace_filter.value = "emb"
    panel.clear_namespace_button.click()
    filled.cache.close()  # the store goes away between the question and the answer
    _confirm(panel)
    assert "#d62728" in panel.status.value  # shown in red, the panel still stands


def test_entries_written_by_another_process_appear_after_refresh(filled, panel, home):
    code = textwrap.dedent(f"""
        import jupyter_resman as resman
        with resman.Session(home={str(home)!r}) as s:
            s.cache.set("from-the-other-kernel", 42, namespace="other")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert not any("from-the-other-kernel" in label for label in _labels(panel))
    assert panel.refresh()
    assert any("from-the-other-kernel" in label for label in _labels(panel))
    assert ">other<" in panel.namespaces.value


def test_hidden_panel_skips_refresh_unless_forced(panel):
    panel.visible = False
    assert panel.refresh() is False
    assert panel.refresh(force=True) is True


def test_fallbacks(filled, panel):
    bundle = panel._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    assert bundle["text/plain"].startswith("Cache: 4 entries")
    assert "emb: 2 entries" in bundle["text/plain"]
    assert "<table" in bundle["text/html"] and "<svg" in bundle["text/html"]


def test_bad_period_is_refused(session):
    with pytest.raises(ConfigError, match="period"):
        CachePanel(session, period=0.1)


def test_format_duration():
    assert format_duration(0) == "0 s"
    assert format_duration(59.4) == "59 s"
    assert format_duration(3600) == "1 h 0 min"
