"""Text formatting of snapshots, the console and silent renderers, and renderer choice."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from jupyter_resman.core import progress_render as render
from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.progress import Progress, open_trees, track
from jupyter_resman.core.progress_render import (
    ConsoleRenderer,
    SilentRenderer,
    format_compact,
    format_line,
    format_rate,
    format_time,
    format_tree,
    make_renderer,
    register_renderer,
    set_default_renderer,
    unregister_renderer,
)

ANSI = re.compile(r"\x1b\[[0-9]*[A-Za-z]")


class FakeClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test gets the built-in registry, no default, no environment override."""
    monkeypatch.setattr(render, "_registry", dict(render._registry))
    monkeypatch.setattr(render, "_default", None)
    monkeypatch.delenv("RESMAN_PROGRESS", raising=False)
    yield
    leftovers = open_trees()
    for root in leftovers:
        root.close()
    assert not leftovers, f"test left open progress trees: {leftovers}"


def node(**kw):
    base = {"id": "1-1", "desc": "job", "n": 25, "total": 100, "unit": "it", "initial": 0,
            "rate": 5.0, "elapsed": 5.0, "eta": 15.0, "status": "running", "percent": 25.0,
            "error": None, "children": []}
    base.update(kw)
    return base


# -- pure formatting ------------------------------------------------------------------


def test_format_line_with_total_fills_the_width():
    for width in (50, 80, 133):
        line = format_line(node(), width)
        assert len(line) == width
        assert line.startswith("job:  25%|") and line.endswith("| 25/100 [00:05<00:15, 5.00it/s]")
    full = format_line(node(n=100, percent=100.0, status="done"), 60, ascii=True)
    assert set(full.split("|")[1]) == {"#"}
    half = format_line(node(n=50, percent=50.0), 60, ascii=True).split("|")[1]
    assert half.count("#") == half.count(".")


def test_format_line_without_total_and_statuses():
    assert format_line(node(total=None, percent=None, eta=None)) == "job: 25it [00:05, 5.00it/s]"
    assert format_line(node(desc=None, total=None, rate=None)) == "25it [00:05, ?it/s]"
    assert format_line(node(status="paused")).endswith("(paused)")
    failed = format_line(node(status="failed", error="ValueError: x"))
    assert failed.endswith("(failed: ValueError: x)")


def test_format_line_units_and_narrow_width():
    line = format_line(node(n=1_500_000, total=3_000_000, unit="B", rate=250_000.0,
                            percent=50.0), 90)
    assert "1.5 MB/3.0 MB" in line and "250.0 KB/s" in line
    narrow = format_line(node(desc="a very long description indeed"), 30)
    assert len(narrow) <= 30 and "|" not in narrow  # no room for a bar: none drawn
    slow = format_line(node(rate=0.5, total=None), 80)
    assert "2.00s/it" in slow


def test_format_time_and_rate():
    assert [format_time(s) for s in (0, 59.9, 61, 3600, None, float("nan"))] == [
        "00:00", "00:59", "01:01", "1:00:00", "?", "?"]
    assert format_rate(0.0) == "0.00it/s" and format_rate(3, "img") == "3.00img/s"


def test_format_tree_indents_children_and_compact_follows_the_running_path():
    tree = node(desc="epochs", children=[
        node(desc="done part", status="done", children=[]),
        node(desc="batches", n=7, total=None, percent=None, children=[
            node(desc="shard", n=1, total=4, percent=25.0)]),
    ])
    lines = format_tree(tree, 70)
    assert [ln.split(":")[0] for ln in lines] == ["epochs", "  done part", "  batches",
                                                  "    shard"]
    assert all(len(ln) <= 70 for ln in lines)
    compact = format_compact(tree, 100)
    assert compact.startswith("epochs 25/100 › batches 7 › shard:  25%|")
    assert len(compact) <= 100
    assert format_compact(node(), 60) == format_line(node(), 60)


def test_formatting_survives_json():
    tree = node(children=[node(desc="child", unit="B", n=2048, total=None, percent=None)])
    back = json.loads(json.dumps(tree))
    assert format_tree(back) == format_tree(tree)
    assert format_compact(back) == format_compact(tree)


# -- console renderer ----------------------------------------------------------------


def test_console_plain_mode_rewrites_one_line_and_prints_the_tree_at_close():
    out = io.StringIO()
    renderer = ConsoleRenderer(out, width=60)
    assert renderer.ansi is False  # a StringIO is no terminal
    for _ in track(range(3), desc="outer", renderer=renderer, publish=False):
        for _ in track(range(2), desc="inner", leave=True):
            pass
    text = out.getvalue()
    assert "\x1b[" not in text
    assert text.startswith("\router:   0%|")
    final = text.rsplit("\r", 1)[1]
    lines = final.rstrip("\n").split("\n")
    assert lines[0].startswith("outer: 100%|") and "| 3/3 [00:00<00:00, " in lines[0]
    assert [ln.strip().split(":")[0] for ln in lines[1:]] == ["inner"] * 3
    assert text.endswith("\n") and text.count("\n") == 4


def test_console_redraw_is_throttled_by_mininterval():
    clock = FakeClock()
    out = io.StringIO()
    bar = Progress(total=1000, desc="t", renderer=ConsoleRenderer(out, width=50), clock=clock,
                   mininterval=0.5, publish=False)
    for _ in range(100):
        bar.update()
    assert out.getvalue().count("\r") == 1  # only the first draw
    clock.t += 0.6
    for _ in range(100):
        bar.update()
    assert out.getvalue().count("\r") == 2
    assert "101/1000" in out.getvalue()  # drawn by the first update after the interval
    bar.close()
    assert out.getvalue().count("\r") == 3 and out.getvalue().endswith("\n")


def test_console_ansi_mode_redraws_the_tree_in_place():
    out = io.StringIO()
    renderer = ConsoleRenderer(out, ansi=True, width=60)
    clock = FakeClock()
    root = Progress(total=2, desc="root", renderer=renderer, clock=clock, publish=False)
    child = root.child(total=5, desc="child")
    clock.t += 1
    root.refresh()
    frame = out.getvalue().split("\r")[-1]
    assert frame.count("\x1b[K") == 2  # two lines drawn, each cleared to the end
    child.close()
    clock.t += 1
    root.refresh()
    last = out.getvalue()
    # the cursor goes up over the two lines, and the now-unused line is cleared
    assert "\x1b[1A\r" in last and last.endswith("\n\x1b[K\x1b[1A")
    root.close()
    visible = ANSI.sub("", out.getvalue().split("\r")[-1])
    assert visible.startswith("root:   0%|") and visible.endswith("\n")


def test_silent_renderer_writes_nothing(capsys):
    for _ in track(range(100), renderer="silent", publish=False):
        pass
    assert capsys.readouterr().err == ""


def test_broken_stream_stops_drawing_but_not_the_loop(caplog):
    out = io.StringIO()
    renderer = ConsoleRenderer(out)
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="jupyter_resman.progress"):
        bar = Progress(total=10, renderer=renderer, clock=clock, publish=False)
        out.close()
        clock.t += 1
        bar.update(10)
        bar.close()
    assert bar.status == "done"
    assert "no longer drawn" in caplog.text


# -- choosing a renderer ------------------------------------------------------------------


def test_auto_picks_registered_detector_then_console(monkeypatch):
    class Widget(SilentRenderer):
        pass

    assert isinstance(make_renderer(), ConsoleRenderer)
    register_renderer("notebook", Widget, detect=lambda: True)
    assert isinstance(make_renderer(), Widget)
    assert isinstance(make_renderer("auto"), Widget)
    register_renderer("notebook", Widget, detect=lambda: False)
    assert isinstance(make_renderer(), ConsoleRenderer)
    monkeypatch.setattr("sys.stderr", None)
    assert isinstance(make_renderer(), SilentRenderer)


def test_broken_detector_is_skipped_and_logged(caplog):
    def broken():
        raise ImportError("no ipywidgets")

    register_renderer("notebook", SilentRenderer, detect=broken)
    with caplog.at_level(logging.ERROR, logger="jupyter_resman.progress"):
        assert isinstance(make_renderer(), ConsoleRenderer)
    assert "detect() failed" in caplog.text


def test_precedence_argument_default_environment(monkeypatch):
    monkeypatch.setenv("RESMAN_PROGRESS", "silent")
    assert isinstance(make_renderer(), SilentRenderer)
    assert isinstance(make_renderer("console"), ConsoleRenderer)
    assert set_default_renderer("console") is None
    assert isinstance(make_renderer(), ConsoleRenderer)  # code beats the environment
    assert set_default_renderer(None) == "console"
    monkeypatch.setenv("RESMAN_PROGRESS", "Auto")
    assert isinstance(make_renderer(), ConsoleRenderer)


def test_bad_renderer_choices_raise_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="no progress renderer named 'fancy'"):
        make_renderer("fancy")
    with pytest.raises(ConfigError, match="set_default_renderer"):
        set_default_renderer("fancy")
    monkeypatch.setenv("RESMAN_PROGRESS", "rainbow")
    with pytest.raises(ConfigError, match="RESMAN_PROGRESS=rainbow"):
        Progress(total=1)
    with pytest.raises(ConfigError, match="draw"):
        make_renderer(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        register_renderer("auto", SilentRenderer)
    with pytest.raises(ConfigError):
        unregister_renderer("console")


def test_unregister_forgets_the_default():
    register_renderer("mine", SilentRenderer)
    set_default_renderer("mine")
    unregister_renderer("mine")
    assert "mine" not in render.renderer_names()
    assert isinstance(make_renderer(), ConsoleRenderer)


def test_a_renderer_draws_the_whole_tree_once_per_refresh():
    drawn = []

    class Recorder:
        def draw(self, snapshot):
            drawn.append(("draw", [c["desc"] for c in snapshot["children"]]))

        def close(self, snapshot):
            drawn.append(("close", snapshot["status"]))

    register_renderer("recorder", Recorder)
    clock = FakeClock()
    root = Progress(desc="root", renderer="recorder", clock=clock, publish=False)
    child = root.child(desc="kid")
    clock.t += 1
    child.update()  # a child's update refreshes its root's tree
    root.close()
    assert drawn == [("draw", []), ("draw", ["kid"]), ("close", "done")]
