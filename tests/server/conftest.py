"""Fixtures of the server tests: a real Jupyter server (token required) with the extension.

pytest-jupyter's fixtures (``jp_fetch``, ``jp_serverapp``...) and its hooks
that run ``async def`` tests are imported here rather than registered with
``pytest_plugins``, which pytest allows only in the root conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from pytest_jupyter.jupyter_server import *  # fixtures and hooks of the plugin
from traitlets.config import Config


@pytest.fixture
def jp_server_config(home, monkeypatch):
    """The extension enabled, reading the test's home; kernels inherit RESMAN_HOME."""
    monkeypatch.setenv("RESMAN_HOME", str(home))
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_resman": True}},
        "ResmanExtension": {"home": str(home)},
    })


@pytest.fixture
def fetch(jp_fetch):
    """``jp_fetch`` returning error responses instead of raising, JSON decoded on demand."""

    async def inner(*parts, **kwargs):
        kwargs.setdefault("raise_error", False)
        return await jp_fetch(*parts, **kwargs)

    return inner


@pytest.fixture
def fetch_raw(http_server_client, jp_base_url, jp_auth_header):
    """Fetch an already-escaped path under the base URL (``%2F``, ``%00`` kept as sent)."""

    async def inner(path, *, auth=True, headers=None, **kwargs):
        headers = dict(headers or {})
        if auth:
            headers.update(jp_auth_header)
        kwargs.setdefault("raise_error", False)
        return await http_server_client.fetch(jp_base_url + path, headers=headers, **kwargs)

    return inner


@pytest.fixture
def other_process(home):
    """Run Python code in a fresh interpreter on the same home; returns its stdout."""

    def run(code: str) -> str:
        env = {**os.environ, "RESMAN_HOME": str(home)}
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=False,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run
