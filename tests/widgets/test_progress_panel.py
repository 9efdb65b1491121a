"""ProgressView and ProgressPanel: progress trees drawn as one widget tree."""

from __future__ import annotations

import threading

import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import ConfigError
from jupyter_resman.widgets import ProgressPanel, ProgressView
from jupyter_resman.widgets._display import STATUS_COLOURS, WIDGET_VIEW
from jupyter_resman.widgets.progress_panel import HTML_END, HTML_START, snapshot_html


def _bar(**kw):
    return resman.progress(renderer="silent", publish=False, **kw)


def node(desc, n, total, status="running", children=(), **kw):
    percent = None if total is None else (100.0 * n / total if total else 100.0)
    return {"id": "1-1", "desc": desc, "n": n, "total": total, "unit": kw.pop("unit", "it"),
            "initial": 0, "rate": kw.pop("rate", 2.0), "elapsed": 3.0, "eta": kw.pop("eta", 1.0),
            "status": status, "percent": percent, "error": kw.pop("error", None),
            "children": list(children)}


def test_a_nested_tree_is_one_box_with_a_row_per_bar():
    view = ProgressView(node("epochs", 1, 4, children=[node("batches", 50, 100)]))
    try:
        assert len(view.children) == 2
        outer, inner = view.rows[:2]
        assert (outer.bar.value, inner.bar.value) == (0.25, 0.5)
        assert "epochs" in outer.label.value and "batches" in inner.label.value
        assert "padding-left:1.5em" in inner.label.value  # indented under its parent
        assert "25%" in outer.info.value and "1/4" in outer.info.value
        assert "50/100 [00:03&lt;00:01, 2.00it/s]" in inner.info.value
    finally:
        view.close()


@pytest.mark.parametrize("status, style", [("running", ""), ("paused", "warning"),
                                           ("done", "success"), ("failed", "danger")])
def test_status_colours(status, style):
    view = ProgressView(node("job", 3, 10, status=status, error="ValueError: bad row"))
    try:
        row = view.rows[0]
        assert row.bar.bar_style == style
        assert STATUS_COLOURS[status] in row.info.value
        if status == "failed":
            assert "failed: ValueError: bad row" in row.info.value
        if status == "paused":
            assert "paused" in row.info.value
    finally:
        view.close()


def test_a_bar_without_total_hides_the_bar_and_shows_count_and_rate():
    view = ProgressView(node("stream", 1234, None, rate=10.0))
    try:
        row = view.rows[0]
        assert row.bar.layout.visibility == "hidden"
        assert "1,234it [00:03, 10.00it/s]" in row.info.value
    finally:
        view.close()


def test_byte_counts_read_as_sizes():
    view = ProgressView(node("download", 1_500_000, 3_000_000, unit="B", rate=1e6))
    try:
        assert "1.5 MB/3.0 MB" in view.rows[0].info.value
        assert "1.0 MB/s" in view.rows[0].info.value
    finally:
        view.close()


def test_rows_are_reused_when_inner_loops_come_and_go():
    view = ProgressView(node("outer", 0, 3, children=[node("inner", 1, 5)]))
    try:
        inner_row = view.rows[1]
        view.show(node("outer", 1, 3))  # the inner loop finished and left the tree
        assert len(view.children) == 1
        view.show(node("outer", 1, 3, children=[node("inner #2", 0, 5)]))
        assert view.rows[1] is inner_row and view.children[1] is inner_row.box
        assert "inner #2" in inner_row.label.value
    finally:
        view.close()


def test_view_draws_a_real_progress_tree():
    with _bar(total=2, desc="outer") as outer:
        with outer.child(total=4, desc="inner") as inner:
            inner.update(3)
            view = ProgressView(outer.snapshot())
            try:
                assert [r.bar.value for r in view.rows[:2]] == [0.0, 0.75]
            finally:
                view.close()
        outer.update(2)


def test_fallbacks_are_the_console_text_and_static_html():
    snap = node("epochs", 4, 4, status="done", children=[node("batches", 7, 10)])
    view = ProgressView(snap)
    try:
        bundle = view._repr_mimebundle_()
        assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
        assert bundle["text/plain"].splitlines()[0].startswith("epochs: 100%")
        assert bundle["text/plain"].splitlines()[1].startswith("  batches:  70%")
        html = bundle["text/html"]
        assert html.startswith(HTML_START) and html.endswith(HTML_END)
        assert html == snapshot_html(snap)
        assert "width:100.0%" in html and STATUS_COLOURS["done"] in html
    finally:
        view.close()


def test_snapshot_html_escapes_descriptions():
    html = snapshot_html(node("<script>alert(1)</script>", 1, 2))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_panel_shows_running_trees_then_keeps_finished_ones():
    panel = ProgressPanel(keep_finished=1)
    try:
        assert panel.views == [] and panel.to_text() == "Progress: no progress bars"
        with _bar(total=10, desc="first") as first:
            first.update(4)
            assert panel.refresh()
            (view,) = panel.views
            assert view.rows[0].bar.value == pytest.approx(0.4)
            first.update(6)
        panel.refresh()
        (view,) = panel.views
        assert view.snapshot["status"] == "done" and view.rows[0].bar.bar_style == "success"
        assert view.rows[0].bar.value == 1.0

        with _bar(total=3, desc="second") as second:
            panel.refresh()
            assert [v.snapshot["desc"] for v in panel.views] == ["second", "first"]
            second.update(3)
        panel.refresh()
        # keep_finished=1: only the newest finished tree stays.
        assert [v.snapshot["desc"] for v in panel.views] == ["second"]
        assert "second: 100%" in panel.to_text()
        assert panel._repr_mimebundle_().keys() == {"text/plain", "text/html", WIDGET_VIEW}
    finally:
        panel.close()


def test_panel_sees_a_tree_running_in_another_thread():
    started, release = threading.Event(), threading.Event()

    def work():
        with _bar(total=2, desc="worker") as bar:
            bar.update(1)
            started.set()
            release.wait(10)
            bar.update(1)

    panel = ProgressPanel()
    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert started.wait(10)
        panel.refresh()
        (view,) = panel.views
        assert view.snapshot["desc"] == "worker" and view.rows[0].bar.value == 0.5
    finally:
        release.set()
        worker.join()
        panel.close()


def test_a_failed_tree_is_shown_failed():
    panel = ProgressPanel()
    try:
        with pytest.raises(ZeroDivisionError), \
                resman.track(range(5), desc="risky", renderer="silent", publish=False) as it:
            for i in it:
                panel.refresh()
                if i == 2:
                    print(1 / 0)
        panel.refresh()
        (view,) = panel.views
        assert view.snapshot["status"] == "failed"
        assert view.rows[0].bar.bar_style == "danger"
        assert "ZeroDivisionError" in view.rows[0].info.value
    finally:
        panel.close()


def test_bad_keep_finished_is_refused():
    with pytest.raises(ConfigError, match="keep_finished"):
        ProgressPanel(keep_finished=-1)
