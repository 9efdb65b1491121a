"""Fixtures shared by the whole suite."""

from __future__ import annotations

import threading
import time

import pytest

import jupyter_resman as resman


@pytest.fixture
def home(tmp_path):
    """A fresh, empty home directory."""
    return tmp_path / "home"


@pytest.fixture
def session(home):
    """An isolated Session rooted in a temp home; closed after the test."""
    s = resman.Session(home=home)
    previous = resman.set_session(s)
    yield s
    resman.set_session(previous)
    s.close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_threads: the test may leave threads running (e.g. a server's pool)"
    )


@pytest.fixture(autouse=True)
def no_leaked_threads(request):
    """Fail a test that leaves a thread running (monitors, publishers, widgets).

    Threads get a short grace period to finish after the test body, since a
    correctly stopped daemon may still be returning from its last iteration.
    """
    before = set(threading.enumerate())
    yield
    if request.node.get_closest_marker("allow_threads"):
        return
    deadline = time.monotonic() + 2.0
    while True:
        # The codec's hashing helper lives as long as the process by design (one idle
        # thread, made on the first large read), like a module-level pool.
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
                  and not t.name.startswith("resman-hash")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"
