"""Fixtures of the widget tests: every widget a test creates must be closed by it."""

from __future__ import annotations

import pytest
from ipywidgets.widgets.widget import _instances


@pytest.fixture(autouse=True)
def no_leaked_widgets():
    """Fail a test that leaves widget models open (each one lives on in the browser too)."""
    before = set(_instances)
    yield
    leaked = [type(_instances[m]).__name__ for m in set(_instances) - before]
    assert not leaked, f"test left {len(leaked)} widget(s) open: {sorted(leaked)}"

