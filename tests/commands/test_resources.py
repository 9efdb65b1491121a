"""``resman resources``: in the kernel's own process and from a separate ``resman`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupyter_resman.commands import UI, UsageError, run
from jupyter_resman.commands.cache import Declined
from jupyter_resman.commands.resources import NothingToRelease
from jupyter_resman.core.resources import FactoryProvider, FileSystemProvider, PoolConfig


class Conn:
    def close(self):
        pass


@pytest.fixture
def registered(session, tmp_path):
    resources = session.resources
    resources.register_provider("db", FactoryProvider(Conn), PoolConfig(max_size=4))
    resources.register_provider("scratch", FileSystemProvider(tmp_path / "scratch"))
    resources.acquire("db", owner="cell-3")
    resources.acquire("db", owner="cell-3")
    resources.acquire("scratch", owner="cell-4")
    return session


def test_overview_shows_health_owners_and_metrics(registered):
    out = run(["resources"], registered)
    table = out.table.set_index("resource")
    assert list(table.index) == ["db", "scratch"]
    assert table.loc["db", "health"] == "healthy" and table.loc["scratch", "health"] == "healthy"
    assert table.loc["db", "in use"] == "2/4" and table.loc["db", "owners"] == "cell-3 (2)"
    assert table.loc["scratch", "owners"] == "cell-4" and table.loc["db", "acquired"] == 2
    text = out.to_text()
    assert "cell-3 (2)" in text and "filesystem" in text
    data = json.loads(out.to_json())
    assert data[str(os.getpid())]["providers"]["db"]["metrics"]["active"] == 2


def test_no_check_leaves_health_unknown(session):
    session.resources.register_provider("db", FactoryProvider(Conn))
    table = run(["resources", "--no-check"], session).table
    assert table["health"].tolist() == ["not checked"]


def test_actions_health_owners_metrics(registered):
    health = run(["resources", "health"], registered)
    assert health.table["status"].tolist() == ["healthy", "healthy"]
    assert health.message == "All healthy."
    owners = run(["resources", "owners"], registered).table
    assert owners["owner"].tolist() == ["cell-3", "cell-3", "cell-4"]
    assert owners["taken at"].str.contains("test_resources.py").all()
    metrics = run(["resources", "metrics"], registered).table.set_index("resource")
    # The default health check made (and disposed of) one more besides the two held.
    assert metrics.loc["db", "acquired"] == 2
    assert metrics.loc["db", "provider"] == "made=3, disposed=1"


def test_release_needs_a_target_and_confirmation(registered):
    with pytest.raises(NothingToRelease):
        run(["resources", "release"], registered)
    with pytest.raises(Declined):
        run(["resources", "release", "--owner", "cell-3"], registered, UI(confirm=lambda q: False))
    assert registered.resources.owners("db") == {"cell-3": 2}
    out = run(["resources", "release", "--owner", "cell-3"], registered)
    assert out.data == {"released": 2} and registered.resources.owners("db") == {}
    out = run(["resources", "release", "--all", "--yes"], registered)
    assert out.data == {"released": 1}
    assert "Nothing to release" in run(["resources", "release", "--all"], registered).message
    with pytest.raises(UsageError):
        run(["resources", "release", "--bogus"], registered)


def test_empty_overview_says_how_to_register(session):
    out = run(["resources"], session)
    assert out.table.empty and "register_provider" in out.message


def test_a_terminal_sees_what_a_kernel_holds(registered):
    registered.resources.publish()
    env = {**os.environ, "RESMAN_HOME": str(registered.home.root)}
    env.pop("RESMAN_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-m", "jupyter_resman.cli", "resources", "owners"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cell-3" in out.stdout and "cell-4" in out.stdout and str(os.getpid()) in out.stdout
    overview = subprocess.run([sys.executable, "-m", "jupyter_resman.cli", "--json", "resources"],
                              env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(overview.stdout)
    assert data[str(os.getpid())]["providers"]["db"]["metrics"]["active"] == 2
