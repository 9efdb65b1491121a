"""The monitor: samples, thread lifecycle, bounded history, peaks, limits and callbacks
driven by real allocations in child processes, scoped limits, the live feed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pandas as pd
import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import (
    ConfigError,
    LimitWarning,
    ResmanError,
    ResourceLimitExceeded,
)
from jupyter_resman.core.monitor import Monitor, Sample

PY = sys.executable
MB = 10**6

BASE_KEYS = {
    "t", "pid", "rss", "rss_self", "rss_percent", "cpu_percent", "cpu_capacity_percent",
    "threads", "children", "mem_limit", "sys_mem_total", "sys_mem_used", "sys_mem_available",
    "sys_mem_percent", "swap_total", "swap_used", "swap_percent", "cpu_count", "sys_cpu_percent",
    "cpu0_percent", "load1", "load5", "load15", "container_mem_limit", "container_cpus",
    "disk_total", "disk_used", "disk_free", "disk_percent", "disk_read_rate", "disk_write_rate",
    "net_sent_rate", "net_recv_rate",
}

ALLOCATOR = """
    import sys
    print("started", flush=True)
    sys.stdin.readline()
    block = b"\\x01" * int(sys.argv[1])  # written, so the pages are really resident
    print("allocated", flush=True)
    sys.stdin.readline()
"""


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def monitor_threads():
    return [t for t in threading.enumerate() if t.name == "resman-monitor" and t.is_alive()]


class Allocator:
    """A child process that allocates ``size`` bytes when told to."""

    def __init__(self, size: int) -> None:
        self.proc = subprocess.Popen([PY, "-c", textwrap.dedent(ALLOCATOR), str(size)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "started"

    def allocate(self, wait: bool = True) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        if wait:
            assert self.proc.stdout.readline().strip() == "allocated"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()


class Recorder:
    """Callbacks that remember events and signal the first of each level."""

    def __init__(self, monitor: Monitor) -> None:
        self.events = []
        self.got = {"warning": threading.Event(), "exceeded": threading.Event()}
        monitor.on_warning(self)
        monitor.on_exceeded(self)

    def __call__(self, event) -> None:
        self.events.append(event)
        self.got[event.level].set()

    def levels(self):
        return [(e.name, e.level) for e in self.events]


# -- sampling ----------------------------------------------------------------------------


def test_sample_fields(session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no GPU (or any) warning on a machine without a driver
        sample = session.monitor.sample()
    assert isinstance(sample, Sample) and isinstance(sample, resman.core.Sample)
    assert sample.pid == os.getpid() and sample.rss >= sample.rss_self > 0
    assert sample.threads >= 1
    flat = sample.to_dict()
    assert BASE_KEYS <= set(flat)
    assert not [k for k in flat if k.startswith("gpu")]
    assert flat["rss_percent"] == pytest.approx(100.0 * sample.rss / sample.system.mem_total)
    cores = sample.system.cpu_count
    assert flat["cpu_capacity_percent"] == pytest.approx(sample.cpu_percent / cores)
    assert json.loads(json.dumps(flat)) == flat
    assert "uss" not in flat
    assert session.monitor.last() is sample


def test_uss_only_on_request(session):
    sample = session.monitor.sample(uss=True)
    assert 0 < sample.uss <= sample.rss
    assert sample.to_dict()["uss"] == sample.uss


def test_children_count_in_the_sample(session):
    child = Allocator(50 * MB)
    try:
        child.allocate()
        sample = session.monitor.sample()
        assert sample.children >= 1
        assert sample.rss >= sample.rss_self + 50 * MB
    finally:
        child.close()


# -- the thread ----------------------------------------------------------------------------


def test_start_and_stop_are_idempotent(session):
    monitor = session.monitor
    assert not monitor.running
    monitor.start(0.02)
    monitor.start(0.02)
    assert monitor.running and len(monitor_threads()) == 1
    monitor.start(0.05)  # changes the interval of the running thread
    assert monitor.interval == 0.05 and len(monitor_threads()) == 1
    wait_for(lambda: monitor.stats()["samples"] >= 3, what="samples")
    monitor.stop()
    monitor.stop()
    assert not monitor.running and monitor_threads() == []
    monitor.start(0.02)  # and again after a stop
    assert monitor.running
    monitor.stop()
    assert monitor_threads() == []


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_bad_interval(session, interval):
    with pytest.raises(ConfigError, match="interval"):
        session.monitor.start(interval)
    assert not session.monitor.running


def test_session_close_stops_the_thread(home):
    session = resman.Session(home=home)
    monitor = session.monitor
    monitor.start(0.01)
    wait_for(lambda: monitor.stats()["samples"] >= 2, what="samples")
    session.close()
    assert not monitor.running and monitor_threads() == []
    with pytest.raises(ResmanError, match="closed"):
        monitor.start()
    monitor.close()  # idempotent


def test_history_is_bounded(session):
    monitor = Monitor(session, history_size=5, publish_every=60)
    try:
        monitor.start(0.01, publish=False)
        wait_for(lambda: monitor.stats()["samples"] >= 12, what="12 samples")
        monitor.stop()
        history = monitor.history()
        assert isinstance(history, pd.DataFrame)
        assert len(history) == 5 and monitor.stats()["history"] == 5
        assert history.index.is_monotonic_increasing
        assert isinstance(history.index, pd.DatetimeIndex) and history.index.name == "time"
        assert set(history.columns) == set(monitor.last().to_dict())
        assert (history["pid"] == os.getpid()).all()
    finally:
        monitor.close()


def test_samples_since_a_time_miss_none_while_the_thread_samples(session):
    monitor = Monitor(session, history_size=10_000, publish_every=60)
    seen: list[float] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        # A reader polling far slower than the sampler, the way a dashboard does.
        last = None
        try:
            while not done.is_set():
                got = monitor.samples(since=last)
                if got:
                    seen.extend(s.t for s in got)
                    last = got[-1].t
                time.sleep(0.05)
            seen.extend(s.t for s in monitor.samples(since=last))
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread, asserted below
            errors.append(exc)

    thread = threading.Thread(target=reader, name="samples-reader")
    try:
        monitor.start(0.005, publish=False)
        thread.start()
        wait_for(lambda: monitor.stats()["samples"] >= 40, what="40 samples")
        monitor.stop()
    finally:
        done.set()
        thread.join()
        monitor.close()
    assert not errors
    everything = monitor.samples()
    assert all(isinstance(s, Sample) for s in everything)
    assert [s.t for s in everything] == list(monitor.history()["t"])
    assert seen == [s.t for s in everything]  # each sample once, in order, none skipped
    middle = everything[len(everything) // 2].t
    assert [s.t for s in monitor.samples(since=middle)] == [s.t for s in everything
                                                            if s.t > middle]
    assert monitor.samples(since=everything[-1].t) == []
    with pytest.raises(ConfigError, match="since"):
        monitor.samples(since="yesterday")


def test_empty_history(session):
    history = session.monitor.history()
    assert history.empty and {"t", "rss", "cpu_percent"} <= set(history.columns)


def test_peaks_outlive_the_bounded_history(session):
    monitor = Monitor(session, history_size=3, publish_every=60)
    child = Allocator(200 * MB)
    # The test process's own size depends on what ran before it: measure from there.
    line = monitor.sample().rss + 150 * MB
    try:
        monitor.start(0.02, publish=False)
        child.allocate()
        # Wait until a sample has seen the child's memory...
        wait_for(lambda: monitor.peak().get("rss", 0) >= line, what="the allocation")
        child.close()
        # ...then until it has left the three-sample history.
        wait_for(lambda: monitor.history()["rss"].max() < line, what="the history to move on")
        monitor.stop()
        peaks, history = monitor.peak(), monitor.history()
        assert peaks["rss"] >= line > history["rss"].max()
        assert peaks["disk_free"] <= history["disk_free"].min()  # a floor's peak is its minimum
        assert "t" not in peaks and "cpu0_percent" not in peaks
        monitor.reset_peak()
        assert monitor.peak() == {}
    finally:
        child.close()
        monitor.close()


def test_stats_report_the_thread_cost(session):
    monitor = session.monitor
    monitor.start(0.01, publish=False)
    wait_for(lambda: monitor.stats()["samples"] >= 5, what="samples")
    monitor.stop()
    stats = monitor.stats()
    assert stats["thread_cpu_s"] > 0 and stats["wall_s"] > 0
    assert 0 < stats["cpu_fraction"] < 1
    assert stats["sample_errors"] == 0


# -- limits driven by real memory -------------------------------------------------------------


def test_memory_limit_exceeded_by_a_child(session):
    monitor = session.monitor
    recorder = Recorder(monitor)
    child = Allocator(300 * MB)
    try:
        limit = monitor.sample().rss + 150 * MB
        monitor.set_limits(memory=limit)
        monitor.start(0.02)
        child.allocate(wait=False)
        assert recorder.got["exceeded"].wait(20), "no exceeded callback"
        monitor.stop()
        levels = recorder.levels()
        assert ("memory", "exceeded") in levels
        assert levels.index(("memory", "exceeded")) == len(levels) - 1  # a warning may come first
        event = recorder.events[-1]
        assert event.usage > limit == event.limit and event.sample.children >= 1
        assert "memory limit" in event.message and "exceeded" in event.message
        info = monitor.limits_info()
        assert info["status"] == "exceeded" and info["checks"]["memory"]["level"] == "exceeded"
        # The next sample says the same without raising a second event.
        monitor.sample()
        assert len(recorder.events) == len(levels)
    finally:
        child.close()


def test_memory_warning_threshold(session):
    monitor = session.monitor
    recorder = Recorder(monitor)
    child = Allocator(300 * MB)
    try:
        child.allocate()
        usage = monitor.sample().rss
        monitor.set_limits(memory=int(usage / 0.9))  # 90 % of the limit: past the 80 % threshold
        monitor.start(0.02)
        assert recorder.got["warning"].wait(20), "no warning callback"
        start = monitor.stats()["samples"]
        wait_for(lambda: monitor.stats()["samples"] >= start + 5, what="more samples")
        monitor.stop()
        assert recorder.levels() == [("memory", "warning")]
        assert monitor.limits_info()["status"] == "warning"
        assert "warning threshold of 80%" in recorder.events[0].message
    finally:
        child.close()


def test_cpu_limit_with_a_busy_child(session):
    monitor = session.monitor
    recorder = Recorder(monitor)
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    busy = subprocess.Popen([PY, "-c", spin])
    try:
        # One busy core is at least 1/N of the capacity of N cores.
        monitor.set_limits(cpu_percent=100.0 / monitor.sample().system.cpu_count / 4)
        monitor.start(0.05)
        assert recorder.got["exceeded"].wait(20), "no exceeded callback"
        monitor.stop()
        assert recorder.events[-1].name == "cpu_percent"
    finally:
        busy.kill()
        busy.wait()


def test_without_callbacks_a_limit_warning_is_issued(session):
    session.monitor.set_limits(memory="1MB")
    with pytest.warns(LimitWarning, match=r"memory limit 1\.0 MB exceeded"):
        session.monitor.sample()


def test_check_limits(session):
    monitor = session.monitor
    monitor.set_limits(memory="1TB")
    assert monitor.check_limits()["status"] == "ok"
    monitor.set_limits(memory="1MB")
    # Raises (and issues no LimitWarning besides: warnings are errors in this suite).
    with pytest.raises(ResourceLimitExceeded, match=r"memory limit 1\.0 MB exceeded: .* use \d"):
        monitor.check_limits()
    free = monitor.sample().system.disk_free
    monitor.set_limits(memory=None, disk_free=free + 10**12)
    with pytest.raises(RuntimeError, match=r"disk limit of at least .* free exceeded: only"):
        monitor.check_limits()


def test_failing_callback_is_logged_and_the_thread_goes_on(session, caplog):
    monitor = session.monitor
    monitor.on_exceeded(lambda event: 1 / 0)
    recorder = Recorder(monitor)
    monitor.set_limits(memory="1MB")
    with caplog.at_level(logging.ERROR, logger="jupyter_resman.monitor"):
        monitor.start(0.01)
        assert recorder.got["exceeded"].wait(20)
        wait_for(lambda: monitor.stats()["samples"] >= 5, what="samples after the error")
        assert monitor.running
        monitor.stop()
    assert "exceeded callback of the monitor failed" in caplog.text
    assert monitor.stats()["sample_errors"] == 0


def test_remove_callback(session):
    monitor = session.monitor
    recorder = Recorder(monitor)
    monitor.remove_callback(recorder)
    monitor.remove_callback(recorder)  # unknown now: ignored
    monitor.on_warning(recorder)
    monitor.set_limits(memory="1MB")
    with pytest.warns(LimitWarning):  # no exceeded callback left: a warning instead
        monitor.sample()
    assert recorder.events == []


def test_limits_info_without_limits(session):
    info = session.monitor.limits_info()
    assert info["status"] == "ok" and info["checks"] == {}
    assert info["limits"] == {"memory": None, "memory_percent": None, "cpu_percent": None,
                              "disk_free": None}
    assert info["warn_at"] == 0.8 and info["running"] is False and info["t"] is not None


def test_bad_limit_values(session):
    session.monitor.set_limits(memory="8GB")
    with pytest.raises(ConfigError, match="memory_percent"):
        session.monitor.set_limits(memory="4GB", memory_percent=150)
    assert session.monitor.limits_info()["limits"]["memory"] == 8e9
    session.monitor.clear_limits()
    assert session.monitor.limits_info()["limits"]["memory"] is None


# -- scoped limits -------------------------------------------------------------------------------


def test_scoped_limits_restore_the_previous_ones(session):
    monitor = session.monitor
    monitor.set_limits(memory="5GB")
    with monitor.limits(memory="1TB", cpu_percent=99) as scoped:
        assert scoped is monitor and monitor.running
        assert monitor.limits_info()["limits"]["memory"] == 1e12
        with monitor.limits(memory="2TB", warn_at=0.5):
            assert monitor.limits_info()["limits"]["memory"] == 2e12
            assert monitor.limits_info()["warn_at"] == 0.5
        assert monitor.limits_info()["limits"]["memory"] == 1e12
        assert monitor.limits_info()["warn_at"] == 0.8
    assert not monitor.running
    info = monitor.limits_info()
    assert info["limits"]["memory"] == 5e9 and info["limits"]["cpu_percent"] is None


def test_scoped_limits_leave_a_running_monitor_running(session):
    monitor = session.monitor
    monitor.start(0.05)
    with monitor.limits(memory="1TB"):
        pass
    assert monitor.running and monitor.interval == 0.05
    monitor.stop()


def test_scoped_interrupt_raises_inside_the_block(session):
    monitor = session.monitor
    monitor.on_exceeded(lambda event: None)
    deadline = time.monotonic() + 30
    with pytest.raises(ResourceLimitExceeded, match=r"memory limit 1\.0 MB exceeded"):
        with monitor.limits(memory="1MB", interrupt=True, interval=0.01):
            while time.monotonic() < deadline:
                time.sleep(0.005)
            pytest.fail("the block was not interrupted")
    assert not monitor.running
    assert monitor.limits_info()["limits"]["memory"] is None
    time.sleep(0.1)  # nothing is left pending for this thread


INTERRUPTED = """
    import os, sys, time
    from jupyter_resman.core import Session
    from jupyter_resman.core.errors import ResourceLimitExceeded

    with Session(home=sys.argv[1]) as session:
        monitor = session.monitor
        monitor.on_exceeded(lambda event: None)
        limit = monitor.sample().rss + 150_000_000
        chunks = []
        try:
            with monitor.limits(memory=limit, interrupt=True, interval=0.02):
                while len(chunks) < 150:  # at most 1.5 GB if nothing stops us
                    chunks.append(b"x" * 10_000_000)
                    time.sleep(0.005)
            print("not interrupted")
        except ResourceLimitExceeded as exc:
            held = len(chunks) * 10_000_000
            chunks.clear()
            print("interrupted", held < 1_000_000_000, monitor.running,
                  monitor.limits_info()["limits"]["memory"], str(exc).split(":")[0])
"""


def test_interrupt_stops_a_real_allocation(tmp_path):
    done = subprocess.run([PY, "-c", textwrap.dedent(INTERRUPTED), str(tmp_path / "home")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[:5] == ["interrupted", "True", "False", "None", "memory"], done.stdout
    assert "exceeded" in done.stdout


# -- the live feed --------------------------------------------------------------------------------


READER = """
    import json, sys
    from pathlib import Path
    from jupyter_resman.core.live import LiveStore
    live = LiveStore(Path(sys.argv[1]))
    pid = int(sys.argv[2])
    samples = live.recent_samples(pid).get(pid, [])
    print(json.dumps({"n": len(samples), "keys": sorted(samples[-1]) if samples else [],
                      "info": live.processes().get(pid)}))
    live.close()
"""


def test_samples_are_published_for_other_processes(session):
    monitor = Monitor(session, publish_every=0.05)
    try:
        monitor.start(0.02)
        wait_for(lambda: monitor.stats()["samples"] >= 10, what="samples")
        monitor.set_limits(memory="8GB")
        monitor.stop()
        taken = monitor.stats()["samples"]
    finally:
        monitor.close()
    done = subprocess.run(
        [PY, "-c", textwrap.dedent(READER), str(session.home.live_db), str(os.getpid())],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["n"] == taken  # every sample, flushed at stop
    assert BASE_KEYS <= set(seen["keys"])
    assert seen["info"]["memory_limit"] == 8 * 10**9
    assert seen["info"]["monitoring"] is False


def test_publish_false_keeps_samples_private(session):
    monitor = session.monitor
    monitor.start(0.01, publish=False)
    wait_for(lambda: monitor.stats()["samples"] >= 3, what="samples")
    monitor.stop()
    assert session.live.recent_samples(os.getpid()) == {}


def test_a_broken_live_feed_does_not_stop_sampling(home, caplog):
    home.mkdir(parents=True)
    (home / "live.sqlite").mkdir()  # cannot be opened as a database
    with resman.Session(home=home) as session:
        monitor = Monitor(session, publish_every=0.01)
        with caplog.at_level(logging.WARNING, logger="jupyter_resman.monitor"):
            monitor.start(0.01)
            wait_for(lambda: monitor.stats()["publish_errors"] >= 2, what="failed publishes")
            wait_for(lambda: monitor.stats()["samples"] >= 5, what="samples")
            assert monitor.running
            monitor.close()
        assert monitor.stats()["sample_errors"] == 0
        assert caplog.text.count("cannot publish monitor samples") == 1  # said once, not per sample


FORKED = """
    import os, signal, sys, threading, time
    from jupyter_resman.core import Session
    session = Session(home=sys.argv[1])
    monitor = session.monitor
    monitor.start(0.01)
    time.sleep(0.1)
    # Fork while another thread is inside a sample (holding the samplers' locks),
    # as the monitor thread is for a moment every interval.
    held, release = threading.Event(), threading.Event()
    def hold():
        with monitor._sample_lock, monitor._system._lock:
            held.set()
            release.wait()
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a deadlock kills the child instead of hanging the test
        monitor.sample()
        ok = not monitor.running and monitor.history().empty
        monitor.start(0.01)
        time.sleep(0.1)
        monitor.stop()
        history = monitor.history()
        ok = ok and len(history) > 0 and (history["pid"] == os.getpid()).all()
        session.close()
        os._exit(0 if ok else 1)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    still = monitor.running
    session.close()
    print(os.waitstatus_to_exitcode(status), still)
"""


def test_a_forked_child_gets_a_working_monitor(tmp_path):
    done = subprocess.run([PY, "-c", textwrap.dedent(FORKED), str(tmp_path / "home")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]
