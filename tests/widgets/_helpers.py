"""Small helpers shared by the widget tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def trace(figure, name):
    """The trace called ``name`` of a plotly figure."""
    for item in figure.data:
        if item.name == name:
            return item
    raise KeyError(f"no trace {name!r}; traces: {[t.name for t in figure.data]}")


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition"):
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds.

    The deadline only bounds a hang on a loaded machine; tests assert behaviour, not speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
