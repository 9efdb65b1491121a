"""Metrics and progress of REAL kernels started through the server's REST API."""

from __future__ import annotations

import asyncio
import json
import time

import psutil
from jupyter_client.asynchronous import AsyncKernelClient


def body(response) -> dict:
    return json.loads(response.body)


async def open_notebook(fetch, path: str) -> str:
    """Start a kernel for ``path`` the way JupyterLab does (a session); returns its id."""
    response = await fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}}))
    assert response.code == 201, response.body
    return body(response)["kernel"]["id"]


async def execute(serverapp, kernel_id: str, code: str, **expressions: str) -> dict:
    """Run ``code`` in the kernel (as a notebook cell); returns the user expressions' values."""
    kernel = serverapp.kernel_manager.get_kernel(kernel_id)
    client = AsyncKernelClient()
    client.load_connection_info(kernel.get_connection_info())
    client.start_channels(hb=False)  # the heartbeat channel would be a thread
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(code, user_expressions=expressions,
                                                 timeout=60, output_hook=lambda msg: None)
    finally:
        client.stop_channels()
    content = reply["content"]
    assert content["status"] == "ok", content
    return {name: value["data"]["text/plain"]
            for name, value in content["user_expressions"].items()}


async def poll(fetch, route: str, ready, timeout: float = 30.0, params=None) -> dict:
    """GET ``route`` until ``ready(data)`` holds; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        data = body(await fetch("resman", "api", route, params=params))
        if ready(data) or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.3)


def row_of(data: dict, kernel_id: str) -> dict:
    (row,) = [k for k in data["kernels"] if k["kernel_id"] == kernel_id]
    return row


MONITOR = """
import os, subprocess, sys, jupyter_resman
s = jupyter_resman.get_session()
s.monitor.start(0.2)
s.monitor.set_limits(memory="8GB")
# A worker process holding 150 MB: the kernel's RSS counts its children.
child = subprocess.Popen([sys.executable, "-c",
                          "import sys, time; b = b'x' * 150_000_000; sys.stdout.write('ok\\\\n'); "
                          "sys.stdout.flush(); time.sleep(600)"], stdout=subprocess.PIPE)
assert child.stdout.readline() == b"ok\\n"
"""


async def test_metrics_of_a_real_kernel(jp_serverapp, fetch, home):
    kernel_id = await open_notebook(fetch, "nb/analysis.ipynb")
    facts = await execute(jp_serverapp, kernel_id, MONITOR, pid="os.getpid()",
                          home="str(s.home.root)", child="child.pid")
    pid, child = int(facts["pid"]), int(facts["child"])
    try:
        assert facts["home"].strip("'") == str(home)  # the kernel inherited RESMAN_HOME
        data = await poll(fetch, "metrics", lambda d: len(row_of(d, kernel_id)["samples"]) >= 3)
        row = row_of(data, kernel_id)
        assert row["pid"] == pid
        assert row["path"] == "nb/analysis.ipynb"
        assert row["name"] == "python3"
        assert row["execution_state"] in ("idle", "busy")
        assert row["children"] >= 1
        assert row["rss"] > 150_000_000 + psutil.Process(pid).memory_info().rss // 2
        assert row["cpu_percent"] >= 0
        assert row["memory_limit"] == 8_000_000_000
        assert row["status"] == "ok" and row["monitoring"] is True
        samples = row["samples"]
        assert all({"t", "rss", "cpu_percent"} <= set(s) for s in samples)
        assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
        assert all(data["time"] - 300 <= s["t"] <= data["time"] + 1 for s in samples)
        assert samples[-1]["rss"] > 150_000_000  # the monitor counts the child too

        system = data["system"]
        assert system["memory"]["total"] > 0 and 0 <= system["memory"]["percent"] <= 100
        assert system["cpu"]["cores"] > 0 and isinstance(system["gpus"], list)

        # Polling with ?since= returns only what is new.
        last = samples[-1]["t"]
        newer = await poll(fetch, "metrics", lambda d: True, params={"since": str(last)})
        assert all(s["t"] > last for s in row_of(newer, kernel_id)["samples"])

        # A limit the kernel is past turns its status to "exceeded".
        await execute(jp_serverapp, kernel_id, 's.monitor.set_limits(memory="100MB")')
        data = await poll(fetch, "metrics", lambda d: row_of(d, kernel_id)["status"] == "exceeded")
        assert row_of(data, kernel_id)["memory_limit"] == 100_000_000
        assert row_of(data, kernel_id)["status"] == "exceeded"
    finally:
        psutil.Process(child).kill()


async def test_progress_of_a_real_kernel(jp_serverapp, fetch):
    kernel_id = await open_notebook(fetch, "nb/train.ipynb")
    facts = await execute(jp_serverapp, kernel_id, """
import os, time, jupyter_resman
bar = jupyter_resman.progress(total=10, desc="epochs")
bar.update(1)
time.sleep(0.7)  # bars publish at most every 0.5 s, and only once they ran that long
bar.update(2)
""", pid="os.getpid()")
    data = await poll(fetch, "progress",
                      lambda d: any(r["kernel_id"] == kernel_id for r in d["kernels"]))
    (row,) = [r for r in data["kernels"] if r["kernel_id"] == kernel_id]
    assert row["pid"] == int(facts["pid"]) and row["path"] == "nb/train.ipynb"
    (tree,) = row["trees"]
    assert tree["desc"] == "epochs" and tree["n"] == 3 and tree["total"] == 10
    assert tree["status"] == "running" and tree["percent"] == 30.0

    await execute(jp_serverapp, kernel_id, "bar.close()")
    data = await poll(fetch, "progress", lambda d: any(
        t["status"] == "done" for r in d["kernels"] if r["kernel_id"] == kernel_id
        for t in r["trees"]))
    (row,) = [r for r in data["kernels"] if r["kernel_id"] == kernel_id]
    assert [t["status"] for t in row["trees"]] == ["done"]  # kept briefly once finished


async def test_paths_from_a_session_manager_without_a_table():
    """A custom session manager (no SQLite cursor) is asked through list_sessions."""
    from jupyter_resman.server.kernels import kernel_paths

    class SessionsElsewhere:
        async def list_sessions(self):
            return [{"path": "a.ipynb", "kernel": {"id": "k1"}},
                    {"path": "b.ipynb", "kernel": {"id": "k1"}},  # the first one wins
                    {"path": None, "kernel": {"id": "k2"}}, {"path": "c.ipynb", "kernel": None}]

    assert await kernel_paths(SessionsElsewhere()) == {"k1": "a.ipynb"}
    assert await kernel_paths(None) == {}
