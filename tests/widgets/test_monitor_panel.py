"""MonitorPanel: graphs of the monitor's samples, limits, warning colours, peaks, fallbacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.gpu import GpuReader
from jupyter_resman.core.usage import SystemSampler
from jupyter_resman.widgets import MonitorPanel
from jupyter_resman.widgets._display import LEVEL_COLOURS, WIDGET_VIEW

from ._helpers import trace, wait_for


@pytest.fixture
def panel(session):
    p = MonitorPanel(session, interval=0.1)
    yield p
    p.close()


def _next_sample(panel):
    """Wait for the monitor's next sample and let the panel draw it."""
    last = panel.samples[-1]["t"] if panel.samples else 0.0
    wait_for(lambda: panel.refresh() and panel.samples[-1]["t"] > last, what="a new sample")


def test_graphs_follow_the_monitors_samples(session, panel):
    assert session.monitor.running  # the panel started the monitor
    memory = trace(panel.figure, "kernel memory")
    first = len(memory.y)
    _next_sample(panel)
    _next_sample(panel)
    assert len(memory.y) >= first + 2
    latest = session.monitor.last()
    # The last point is the monitor's own measurement, not something the panel computed.
    assert memory.y[-1] == latest.rss
    assert trace(panel.figure, "system memory used").y[-1] == latest.system.mem_used
    assert trace(panel.figure, "kernel CPU").y[-1] == pytest.approx(latest.cpu_capacity_percent)
    assert trace(panel.figure, "kernel peak").y[0] == session.monitor.peak()["rss"]
    # The system's memory is drawn against all the memory we may use.
    assert tuple(panel.figure.layout.yaxis2.range) == (0, latest.system.mem_total)
    assert tuple(panel.figure.layout.yaxis2.tickvals) == (0, latest.system.mem_total / 2,
                                                         latest.system.mem_total)
    assert len(memory.x) == len(memory.y)


def test_window_is_a_fixed_length_rolling_window(session):
    panel = MonitorPanel(session, window=3, interval=0.1)
    try:
        for _ in range(5):
            _next_sample(panel)
        assert len(panel.samples) == 3
        assert len(trace(panel.figure, "kernel memory").y) == 3
        times = [s["t"] for s in panel.samples]
        assert times == sorted(times) and times[-1] == session.monitor.last().t
    finally:
        panel.close()


def test_sampling_faster_than_the_refresh_leaves_no_gaps(session):
    # The monitor samples every 20 ms; the panel is refreshed only twice.
    panel = MonitorPanel(session, window=10_000, interval=0.02)
    try:
        wait_for(lambda: len(session.monitor.samples()) >= 30, what="30 samples")
        panel.refresh()
        session.monitor.stop()
        panel.refresh()
        taken = [s.t for s in session.monitor.samples()]
        shown = [s["t"] for s in panel.samples]
        assert len(taken) >= 30
        assert shown[-len(taken):] == taken  # every sample of the thread, in order
        assert len(trace(panel.figure, "kernel memory").y) == len(shown)
    finally:
        panel.close()


def test_limit_line_and_warning_colours_follow_the_monitors_levels(session, panel):
    limit_line = trace(panel.figure, "memory limit")
    assert list(limit_line.y or []) == []  # no limit, no line
    assert trace(panel.figure, "kernel memory").line.color == LEVEL_COLOURS["ok"]

    rss = session.monitor.sample().rss
    # 90 % of the limit: past the 80 % threshold, below the limit -> "warning".
    session.monitor.set_limits(memory=int(rss / 0.9), warn_at=0.8)
    session.monitor.on_warning(lambda event: None)  # a callback instead of a LimitWarning
    _next_sample(panel)
    wait_for(lambda: panel.refresh(force=True) and
             trace(panel.figure, "kernel memory").line.color == LEVEL_COLOURS["warning"],
             what="the warning colour")
    assert trace(panel.figure, "memory limit").y[0] == pytest.approx(int(rss / 0.9))
    assert trace(panel.figure, "memory warning").y[0] == pytest.approx(int(rss / 0.9) * 0.8)

    session.monitor.on_exceeded(lambda event: None)
    session.monitor.set_limits(memory=1024)
    wait_for(lambda: panel.refresh(force=True) and
             trace(panel.figure, "kernel memory").line.color == LEVEL_COLOURS["exceeded"],
             what="the exceeded colour")
    assert "memory limit 1.0 KB exceeded" in panel.to_text()
    assert "[exceeded]" in panel.to_text()


def test_cpu_limit_is_drawn(session, panel):
    session.monitor.set_limits(cpu_percent=95)
    panel.refresh(force=True)
    assert list(trace(panel.figure, "CPU limit").y) == [95.0, 95.0]


def test_a_running_monitor_is_left_running_and_seeds_the_graph(session):
    session.monitor.start(0.1)
    wait_for(lambda: len(session.monitor.history()) >= 3, what="three samples")
    panel = MonitorPanel(session)
    try:
        assert len(panel.samples) >= 3  # drawn from the monitor's history at once
    finally:
        panel.close()
    assert session.monitor.running  # it was not the panel's to stop
    session.monitor.stop()


def test_close_stops_the_monitor_it_started(session):
    panel = MonitorPanel(session, interval=0.2)
    assert session.monitor.running
    panel.close()
    panel.close()  # idempotent
    assert not session.monitor.running
    assert panel.refresh(force=True) is False


def test_start_monitor_false_leaves_a_stopped_monitor_stopped(session):
    panel = MonitorPanel(session, start_monitor=False)
    try:
        assert not session.monitor.running
        session.monitor.sample()
        assert panel.refresh()
        assert "monitor stopped" in panel.header.value
    finally:
        panel.close()


def test_hidden_panel_collects_samples_and_draws_them_when_shown(session, panel):
    panel.visible = False
    before = len(trace(panel.figure, "kernel memory").y)
    _wait_collected = len(panel.samples)
    wait_for(lambda: (panel.refresh(), len(panel.samples) > _wait_collected)[1],
             what="a sample collected while hidden")
    assert len(trace(panel.figure, "kernel memory").y) == before  # nothing sent while hidden
    panel.visible = True
    assert panel.refresh()
    assert len(trace(panel.figure, "kernel memory").y) == len(panel.samples)


class _OneGPU:
    """A stand-in for the NVIDIA driver (pynvml's function names), not for the panel."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self): pass
    def nvmlShutdown(self): pass
    def nvmlDeviceGetCount(self): return 1
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetName(self, h): return "Fake GPU"
    def nvmlDeviceGetUtilizationRates(self, h): return SimpleNamespace(gpu=42, memory=0)
    def nvmlDeviceGetMemoryInfo(self, h): return SimpleNamespace(used=1, total=4, free=3)
    def nvmlDeviceGetTemperature(self, h, sensor): return 55
    def nvmlDeviceGetPowerUsage(self, h): return 70500


def test_gpu_graphs_appear_when_the_monitor_reports_gpus(session):
    monitor = session.monitor
    # The monitor reads GPUs through NVML; give its sampler a driver with one GPU.
    monitor._system = SystemSampler(session.home.root, gpu_reader=GpuReader(_OneGPU()))
    panel = MonitorPanel(session, interval=0.1)
    try:
        assert panel.gpus == [0]
        _next_sample(panel)
        assert trace(panel.figure, "GPU 0 use").y[-1] == 42.0
        assert trace(panel.figure, "GPU 0 memory").y[-1] == 25.0
        assert "GPU 0: use 42 %, memory 25 %" in panel.to_text()
    finally:
        panel.close()


def test_no_gpu_rows_without_gpus(panel):
    if panel.gpus:
        pytest.skip("this machine has an NVIDIA GPU")  # pragma: no cover
    assert not any(t.name.startswith("GPU") for t in panel.figure.data)


def test_fallback_bundle_has_text_and_html_next_to_the_widget(session, panel):
    _next_sample(panel)
    bundle = panel._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    assert bundle[WIDGET_VIEW]["model_id"] == panel.model_id
    assert bundle["text/plain"].startswith("Kernel memory: ")
    assert "<svg" in bundle["text/html"] and "Kernel memory" in bundle["text/html"]
    assert panel._repr_mimebundle_(include=["text/plain"]).keys() == {"text/plain"}


@pytest.mark.parametrize("window", [0, 1, 2.5, True])
def test_bad_window_is_refused(session, window):
    with pytest.raises(ConfigError, match="window"):
        MonitorPanel(session, window=window)
