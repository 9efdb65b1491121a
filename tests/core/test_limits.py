"""Limit semantics: validation, levels with hysteresis, events, messages, interrupts.

Samples here are built by hand (plain dataclasses): the point is to feed
``LimitSet`` exact values; the monitor tests drive limits with real memory.
"""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_resman.core.errors import ConfigError, ResmanError, ResourceLimitExceeded
from jupyter_resman.core.limits import (
    KEEP,
    LimitSet,
    exceeded_error_type,
    level_for,
    raise_in_thread,
)
from jupyter_resman.core.monitor import Sample
from jupyter_resman.core.usage import SystemUsage

GB = 10**9


def make_sample(rss=GB, cpu=0.0, disk_free=500 * GB, mem_total=16 * GB, cpu_count=4.0,
                container=None) -> Sample:
    system = SystemUsage(
        t=time.time(), mem_total=mem_total, mem_used=mem_total // 2, mem_available=mem_total // 2,
        mem_percent=50.0, swap_total=0, swap_used=0, swap_percent=0.0, cpu_count=cpu_count,
        cpu_percent=10.0, per_cpu=(10.0,) * int(cpu_count), load1=0.5, load5=0.5, load15=0.5,
        container_mem_limit=container, disk_total=1000 * GB, disk_used=1000 * GB - disk_free,
        disk_free=disk_free, disk_percent=50.0,
    )
    return Sample(t=system.t, pid=1234, rss=rss, rss_self=rss, cpu_percent=cpu, threads=3,
                  children=0, system=system)


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"memory": "lots"}, {"memory": 0}, {"memory": -5}, {"memory": True},
    {"memory_percent": 0}, {"memory_percent": 120}, {"memory_percent": "half"},
    {"cpu_percent": 101}, {"cpu_percent": False}, {"disk_free": "0GB"},
    {"warn_at": 0}, {"warn_at": 80}, {"warn_at": "soon"}, {"gpu": 50},
])
def test_bad_values_raise_config_error_and_change_nothing(kwargs):
    limits = LimitSet()
    limits.update(memory="8GB")
    with pytest.raises(ConfigError) as info:
        limits.update(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ResmanError)
    assert limits.values()["memory"] == 8 * GB and limits.warn_at == 0.8
    # The message names the argument that was wrong.
    assert next(iter(kwargs)) in str(info.value)


def test_values_accept_units_and_percent_strings():
    limits = LimitSet()
    limits.update(memory="1.5 GiB", memory_percent="75%", cpu_percent=90, disk_free=10 * GB,
                  warn_at="90%")
    assert limits.values() == {"memory": 1.5 * 2**30, "memory_percent": 75.0,
                               "cpu_percent": 90.0, "disk_free": 10 * GB}
    assert limits.warn_at == 0.9


def test_none_removes_and_keep_keeps():
    limits = LimitSet()
    limits.update(memory="8GB", cpu_percent=50)
    limits.update(memory=None, cpu_percent=KEEP)
    assert limits.values()["memory"] is None and limits.values()["cpu_percent"] == 50.0
    assert bool(limits)
    limits.update(cpu_percent=None)
    assert not limits


# -- levels -------------------------------------------------------------------------------


def test_levels_with_hysteresis():
    assert level_for(0.5, warn_at=0.8) == 0
    assert level_for(0.8, warn_at=0.8) == 1
    assert level_for(1.0, warn_at=0.8) == 1  # at the limit is not over it
    assert level_for(1.01, warn_at=0.8) == 2
    # Stepping down needs a margin below the line.
    assert level_for(0.99, warn_at=0.8, previous=2) == 2
    assert level_for(0.97, warn_at=0.8, previous=2) == 1
    assert level_for(0.79, warn_at=0.8, previous=1) == 1
    assert level_for(0.77, warn_at=0.8, previous=1) == 0
    assert level_for(0.5, warn_at=0.8, previous=2) == 0


def test_events_fire_on_the_way_up_only_once():
    limits = LimitSet()
    limits.update(memory=10 * GB)
    seen = []
    for rss in (1, 5, 8.5, 8.6, 9.9, 10.5, 11, 10.5, 9.9, 9.0, 7.0, 8.5, 12):
        seen.append([(e.name, e.level) for e in limits.observe(make_sample(rss=int(rss * GB)))])
    assert seen == [
        [], [], [("memory", "warning")], [], [], [("memory", "exceeded")], [], [], [],
        [], [],  # 9.0 steps down to warning; 7.0 back to ok (no events on the way down)
        [("memory", "warning")], [("memory", "exceeded")],
    ]


def test_event_carries_usage_limit_and_a_message():
    limits = LimitSet()
    limits.update(memory="8GB")
    (event,) = limits.observe(make_sample(rss=9 * GB))
    assert (event.name, event.level) == ("memory", "exceeded")
    assert (event.usage, event.limit) == (9 * GB, 8 * GB)
    assert event.ratio == pytest.approx(1.125)
    assert event.message.startswith(
        "memory limit 8.0 GB exceeded: this process and its children use 9.0 GB")
    assert event.sample.rss == 9 * GB


def test_memory_percent_is_of_the_container_limit():
    limits = LimitSet()
    limits.update(memory_percent=50)
    sample = make_sample(rss=int(1.5 * GB), mem_total=2 * GB, container=2 * GB)
    (event,) = limits.observe(sample)
    assert event.level == "exceeded" and event.usage == pytest.approx(75.0)
    assert "container's memory limit" in event.message and "75.0 %" in event.message


def test_cpu_percent_is_of_the_effective_cores():
    limits = LimitSet()
    limits.update(cpu_percent=90)
    # Three cores busy out of four: 75 % of capacity, past 80 % of the limit.
    (event,) = limits.observe(make_sample(cpu=300.0, cpu_count=4.0))
    assert (event.level, event.usage) == ("warning", 75.0)
    assert "of 4 CPU cores" in event.message


def test_disk_free_is_a_floor():
    limits = LimitSet()
    limits.update(disk_free="10GB")
    assert limits.observe(make_sample(disk_free=20 * GB)) == []
    (warning,) = limits.observe(make_sample(disk_free=12 * GB))  # below 10 GB / 0.8
    (exceeded,) = limits.observe(make_sample(disk_free=5 * GB))
    assert (warning.level, exceeded.level) == ("warning", "exceeded")
    assert "only 5.0 GB is free" in exceeded.message


def test_exceeded_is_the_raw_truth_and_info_reports_levels():
    limits = LimitSet()
    limits.update(memory="8GB", disk_free="10GB")
    sample = make_sample(rss=9 * GB, disk_free=11 * GB)
    assert limits.observe(sample)
    problems = limits.exceeded(sample)
    assert len(problems) == 1 and "memory limit 8.0 GB exceeded" in problems[0]
    info = limits.info(sample)
    assert info["status"] == "exceeded"
    assert info["checks"]["memory"]["level"] == "exceeded"
    assert info["checks"]["memory"]["percent_of_limit"] == 112.5
    assert info["checks"]["disk_free"]["level"] == "warning"
    assert info["limits"]["memory_percent"] is None
    assert LimitSet().info(None)["status"] == "ok"


def test_changing_a_limit_judges_afresh():
    limits = LimitSet()
    limits.update(memory="8GB")
    assert limits.observe(make_sample(rss=9 * GB))
    assert limits.observe(make_sample(rss=9 * GB)) == []
    limits.update(memory="8.5GB")  # a new line: the breach is reported again
    assert [e.level for e in limits.observe(make_sample(rss=9 * GB))] == ["exceeded"]


# -- interrupting a thread -----------------------------------------------------------------


def test_error_type_carries_the_message_and_reports_delivery():
    delivered = []
    kind = exceeded_error_type("memory limit exceeded: 9 GB", lambda: delivered.append(True))
    error = kind()
    assert isinstance(error, ResourceLimitExceeded) and isinstance(error, RuntimeError)
    assert str(error) == "memory limit exceeded: 9 GB" and delivered == [True]
    assert type(error).__name__ == "ResourceLimitExceeded"


def test_raise_in_thread_interrupts_a_running_loop():
    caught = []
    ready = threading.Event()

    def spin():
        ready.set()
        try:
            end = time.monotonic() + 30
            while time.monotonic() < end:
                pass
        except ResourceLimitExceeded as exc:
            caught.append(str(exc))

    worker = threading.Thread(target=spin)
    worker.start()
    ready.wait()
    assert raise_in_thread(worker.ident, exceeded_error_type("stop now", lambda: None))
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert caught == ["stop now"]
