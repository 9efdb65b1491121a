"""The background thread that drives widget refreshes."""

from __future__ import annotations

import logging
import threading

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.widgets._refresh import MIN_PERIOD, Refresher

from ._helpers import wait_for


def test_runs_each_task_on_its_own_thread_until_stopped():
    seen: list[str] = []
    done = threading.Event()

    def task():
        seen.append(threading.current_thread().name)
        done.set()

    refresher = Refresher("resman-test")
    refresher.add(task, period=1.0)
    refresher.start()
    try:
        assert done.wait(10)
        assert refresher.running
    finally:
        refresher.stop()
    assert not refresher.running
    assert seen[0] == "resman-test"


def test_poke_runs_a_task_before_its_period_is_over():
    calls = []
    refresher = Refresher()
    first = threading.Event()
    refresher.add(lambda: (calls.append(1), first.set()), period=3600)
    refresher.start()
    try:
        assert first.wait(10)  # the first call is due at once
        refresher.poke()  # the next one would be due in an hour
        wait_for(lambda: len(calls) >= 2, what="the poked task")
    finally:
        refresher.stop()


def test_stop_when_idle_ends_the_thread_once_the_last_task_is_removed():
    refresher = Refresher("resman-idle", stop_when_idle=True)
    ran = threading.Event()

    def task():
        ran.set()

    refresher.add(task)  # starts the thread by itself
    assert ran.wait(10)
    refresher.remove(task)
    wait_for(lambda: not any(t.name == "resman-idle" for t in threading.enumerate()),
             what="the idle thread to end")
    assert not refresher.running
    # A new task starts a new thread.
    ran.clear()
    refresher.add(task)
    assert ran.wait(10)
    refresher.remove(task)
    wait_for(lambda: not refresher.running, what="the second idle thread to end")


def test_a_failing_task_is_logged_once_and_retried(caplog):
    calls = []

    def broken():
        calls.append(1)
        raise OSError("database is busy")

    refresher = Refresher()
    refresher.add(broken, period=MIN_PERIOD)
    with caplog.at_level(logging.DEBUG, logger="jupyter_resman.widgets"):
        refresher.start()
        try:
            wait_for(lambda: len(calls) >= 3, what="three attempts")
        finally:
            refresher.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "database is busy" in errors[0].exc_text


@pytest.mark.parametrize("period", [0, -1, float("nan"), "1s"])
def test_bad_periods_are_refused(period):
    with pytest.raises(ConfigError, match="period"):
        Refresher().add(lambda: None, period=period)


def test_stop_from_inside_a_task_does_not_deadlock():
    refresher = Refresher()
    stopped = threading.Event()

    def task():
        refresher.stop()  # e.g. the dashboard noticing its session was closed
        stopped.set()

    refresher.add(task)
    refresher.start()
    assert stopped.wait(10)
    wait_for(lambda: not refresher.running, what="the thread to end")
