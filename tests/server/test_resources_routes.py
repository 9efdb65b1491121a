"""``GET /resman/api/resources``: the providers kernels publish, read without asking a kernel.

A real kernel started through the server registers and holds resources;
script processes (sessions that are not kernels) publish others, one of
them garbled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .test_kernels import execute, open_notebook, poll

KERNEL_CELL = """
import os
from jupyter_resman import get_session
from jupyter_resman.core.resources import FactoryProvider, PoolConfig
s = get_session()
s.resources.register_provider("lab-db", FactoryProvider(dict, kind="sql"), PoolConfig(max_size=3))
first = s.resources.acquire("lab-db")      # charged to this cell
second = s.resources.acquire("lab-db")
s.resources.health()                       # publishes the health report too
"""


def body(response) -> dict:
    return json.loads(response.body)


def providers_of(data: dict, **match) -> dict[str, dict]:
    rows = [r for r in data["kernels"] if all(r[k] == v for k, v in match.items())]
    return {p["name"]: p for row in rows for p in row["providers"]}


async def test_providers_of_a_real_kernel(jp_serverapp, fetch):
    kernel_id = await open_notebook(fetch, "nb/assay.ipynb")
    await execute(jp_serverapp, kernel_id, "%load_ext jupyter_resman")
    facts = await execute(jp_serverapp, kernel_id, KERNEL_CELL, pid="os.getpid()")
    pid = int(facts["pid"])

    data = await poll(fetch, "resources", lambda d: "lab-db" in providers_of(d, pid=pid))
    (row,) = [r for r in data["kernels"] if r["pid"] == pid]
    assert row["kernel_id"] == kernel_id and row["path"] == "nb/assay.ipynb"
    assert row["updated"] <= data["time"]
    db = row["providers"][0]
    assert db["name"] == "lab-db" and db["kind"] == "sql" and db["target"] == "dict"
    assert db["health"]["status"] == "healthy" and db["health"]["checked_at"] > 0
    assert db["pool"] == {"in_use": 2, "idle": 0, "waiting": 0, "peak": 2, "min_size": 0,
                          "max_size": 3}
    (owner,) = db["owners"]
    assert owner["owner"].startswith("cell-") and owner["count"] == 2
    assert len(owner["leases"]) == 2 and owner["held_s"] > 0
    assert owner["held_s"] == max(lease["held_s"] for lease in owner["leases"])
    assert all(lease["thread"] == "MainThread" for lease in owner["leases"])
    metrics = db["metrics"]
    assert metrics["acquisitions"] == 2 and metrics["failures"] == 0 and metrics["releases"] == 0
    assert metrics["provider"]["made"] == 3  # its own figures: the health check made one too

    # Hold times grow between requests although the kernel publishes nothing new.
    later = providers_of(await poll(fetch, "resources", lambda d: True), pid=pid)["lab-db"]
    assert later["owners"][0]["held_s"] > owner["held_s"]

    # Released in the next cell: the pool shows them idle, nobody holds anything.
    await execute(jp_serverapp, kernel_id, "s.resources.release_all()")
    data = await poll(fetch, "resources",
                      lambda d: providers_of(d, pid=pid)["lab-db"]["owners"] == [])
    db = providers_of(data, pid=pid)["lab-db"]
    assert db["owners"] == [] and db["pool"]["in_use"] == 0 and db["pool"]["idle"] == 2
    assert db["metrics"]["releases"] == 2


SCRIPT = """
import math, sys, jupyter_resman as r
from jupyter_resman.core.resources import FactoryProvider, PoolConfig
s = r.get_session()
if sys.argv[1] == "failing":
    def connect():
        raise ConnectionRefusedError("db.example:5432 refused the connection")
    s.resources.register_provider("warehouse", FactoryProvider(connect), PoolConfig(max_size=2))
    try:
        s.resources.acquire("warehouse", owner="etl", timeout=0.1)
    except Exception as exc:
        print(type(exc).__name__, file=sys.stderr)
    s.resources.health()
else:  # a record no manager would write: wrong types, NaN
    s.live.publish_process({"resources": {"pid": 1, "updated": "now", "providers": {
        "odd": {"metrics": {"active": "two", "avg_hold_s": math.nan,
                            "provider": {"ratio": math.inf, "nested": {"a": 1}}},
                "leases": [{"owner": "x", "held_s": "long"}, "junk"],
                "health": {"status": "on fire"}},
        "worse": "not a provider"}}})
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def script(home):
    """Start a session process that publishes and waits; returns its pid."""
    procs: list[subprocess.Popen] = []

    def start(mode: str) -> int:
        env = {**os.environ, "RESMAN_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT), mode], env=env,
                                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc.pid

    yield start
    for proc in procs:
        proc.communicate("\n", timeout=60)


async def test_a_failing_provider_of_a_script_is_listed_unhealthy(fetch, script):
    pid = script("failing")
    data = body(await fetch("resman", "api", "resources"))
    (row,) = [r for r in data["kernels"] if r["pid"] == pid]
    assert row["kernel_id"] is None and row["path"] is None
    warehouse = row["providers"][0]
    assert warehouse["health"]["status"] == "unhealthy"
    assert "refused" in warehouse["health"]["message"]
    assert warehouse["metrics"]["failures"] >= 1 and warehouse["metrics"]["acquisitions"] == 0
    assert warehouse["owners"] == [] and warehouse["pool"]["max_size"] == 2


async def test_a_garbled_record_does_not_break_the_route(fetch, script):
    good, bad = script("failing"), script("garbled")
    data = body(await fetch("resman", "api", "resources"))
    assert good in {r["pid"] for r in data["kernels"]}
    (row,) = [r for r in data["kernels"] if r["pid"] == bad]
    odd, worse = row["providers"]
    assert odd["pool"]["in_use"] == 0 and odd["metrics"]["avg_hold_s"] == 0.0
    assert odd["metrics"]["provider"] == {"ratio": None, "nested": "{'a': 1}"}
    assert odd["health"]["status"] == "unknown"
    assert [o["owner"] for o in odd["owners"]] == ["x"] and odd["owners"][0]["held_s"] >= 0
    assert worse["name"] == "worse" and worse["owners"] == [] and worse["health"] is None


async def test_an_exited_process_is_no_longer_listed(fetch, other_process):
    pid = int(other_process("""
        import os, jupyter_resman as r
        from jupyter_resman.core.resources import FactoryProvider
        s = r.get_session()
        s.resources.register_provider("tmp", FactoryProvider(list))
        print(os.getpid(), flush=True)
        os._exit(0)  # no clean close: the record stays in the feed
    """))
    data = body(await fetch("resman", "api", "resources"))
    assert pid not in {r["pid"] for r in data["kernels"]}


async def test_nothing_published_is_an_empty_list(fetch):
    data = body(await fetch("resman", "api", "resources"))
    assert data["kernels"] == [] and data["time"] > 0


async def test_the_resources_route_is_read_only(fetch):
    for method in ("POST", "PUT", "DELETE"):
        response = await fetch("resman", "api", "resources", method=method,
                               body=b"{}" if method != "DELETE" else None,
                               allow_nonstandard_methods=True)
        assert response.code == 405, method
