"""The JSON routes of docs/rest-api.md against a real server, with other processes writing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traitlets import TraitError

import jupyter_resman
from jupyter_resman import server as resman_server
from jupyter_resman.server.extension import ResmanExtension


def body(response) -> dict:
    return json.loads(response.body)


# -- the extension itself ------------------------------------------------------------------


def test_pip_install_enables_the_extension():
    points = jupyter_resman._jupyter_server_extension_points()
    assert points == [{"module": "jupyter_resman.server"}]
    assert callable(resman_server._load_jupyter_server_extension)
    config = Path(jupyter_resman.__file__).parent.parent / "jupyter-config" / "server-config"
    enabled = json.loads((config / "jupyter_resman.json").read_text())
    assert enabled == {"ServerApp": {"jpserver_extensions": {"jupyter_resman": True}}}


def test_jupyter_server_extension_list_shows_it_enabled(tmp_path):
    # What a user runs after `pip install jupyter_resman` (the shipped jupyter-config is in
    # the environment's etc/jupyter): listed as enabled, and its hooks validate.
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "empty")}
    out = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert re.search(r"^\s*jupyter_resman enabled\s*$", text, re.MULTILINE), text
    assert re.search(r"^\s*jupyter_resman \S+ OK\s*$", text, re.MULTILINE), text


def test_the_server_loads_it(jp_serverapp):
    package = jp_serverapp.extension_manager.extensions["jupyter_resman"]
    assert package.enabled
    assert list(package.extension_points) == ["jupyter_resman.server"]
    extension = jp_serverapp.web_app.settings["jupyter_resman"]
    assert isinstance(extension, ResmanExtension)
    assert extension.session.home.root == Path(extension.home)


def test_without_a_configured_home_it_follows_the_default_session(session):
    extension = ResmanExtension()
    try:
        assert extension.session is session
    finally:
        extension.close()


@pytest.mark.parametrize("trait, value", [("workers", 0), ("warning_threshold", 1.5)])
def test_bad_settings_are_refused(trait, value):
    with pytest.raises(TraitError, match=trait):
        ResmanExtension(**{trait: value})


async def test_stopping_the_server_stops_the_pool(jp_serverapp, fetch):
    assert (await fetch("resman", "api", "metrics")).code == 200
    extension = jp_serverapp.web_app.settings["jupyter_resman"]
    await jp_serverapp.cleanup_extensions()
    with pytest.raises(RuntimeError, match="stopped"):
        await extension.run(time.time)


# -- cache -----------------------------------------------------------------------------------


async def test_cache_report_sums_what_other_processes_did(fetch, other_process):
    other_process("""
        import jupyter_resman as r
        c = r.get_session().cache
        c.set("a", b"x" * 1000, namespace="emb", tags=["exp1"])
        c.set("b", b"y" * 1000, namespace="emb")
        c.set("c", 1)
        c.get("a", namespace="emb"); c.get("missing", namespace="emb")
    """)
    data = body(await fetch("resman", "api", "cache"))
    stats = data["stats"]
    assert stats["entries"] == 3 and stats["sets"] == 3
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["hit_rate"] == 0.5
    assert stats["bytes"] >= 2000 and stats["max_bytes"] > 0
    assert {"memory", "disk", "evictions", "time_saved_s"} <= set(stats)
    namespaces = {n["namespace"]: n for n in data["namespaces"]}
    assert set(namespaces) == {"default", "emb"}
    assert namespaces["emb"]["entries"] == 2 and namespaces["emb"]["hit_rate"] == 0.5
    assert namespaces["default"]["entries"] == 1
    history = [h for h in data["history"] if h["namespace"] == "emb"]
    assert sum(h["hits"] for h in history) == 1 and sum(h["misses"] for h in history) == 1
    assert all(abs(h["time"] - time.time()) < 3600 for h in history)
    # ?since= after the activity leaves the history empty; the totals stay.
    later = body(await fetch("resman", "api", "cache", params={"since": str(time.time() + 120)}))
    assert later["history"] == [] and later["stats"]["entries"] == 3


LIST_KEYS = """
    import json, jupyter_resman as r
    c = r.get_session().cache
    print(json.dumps(sorted(f"{ns}:{k}" for ns in ("default", "emb", "other") for k in c.keys(ns))))
"""


@pytest.fixture
def filled(other_process):
    other_process("""
        import jupyter_resman as r
        c = r.get_session().cache
        c.set("a", 1, namespace="emb", tags=["exp1"])
        c.set("b", 2, namespace="emb", tags=["exp2"])
        c.set(("t", 1), 3, namespace="emb")
        c.set("a", 4, namespace="other", tags=["exp1"])
        c.set("z", 5)
    """)
    return lambda: json.loads(other_process(LIST_KEYS))


@pytest.mark.parametrize("request_body, removed, left", [
    ({"namespace": "emb"}, 3, ["default:z", "other:a"]),
    ({"tags": ["exp1"]}, 2, ["default:z", "emb:('t', 1)", "emb:b"]),
    ({"tags": ["exp1"], "namespace": "emb"}, 1, ["default:z", "emb:('t', 1)", "emb:b", "other:a"]),
    ({"keys": ["a", ["t", 1]], "namespace": "emb"}, 2, ["default:z", "emb:b", "other:a"]),
    ({"keys": ["z", "not-there"]}, 1, ["emb:('t', 1)", "emb:a", "emb:b", "other:a"]),
    ({"all": True}, 5, []),
    ({"all": True, "namespace": "other"}, 1, ["default:z", "emb:('t', 1)", "emb:a", "emb:b"]),
])
async def test_clear_really_clears_seen_from_another_process(fetch, filled, request_body,
                                                             removed, left):
    assert len(filled()) == 5
    response = await fetch("resman", "api", "cache", "clear", method="POST",
                           body=json.dumps(request_body))
    assert response.code == 200, response.body
    assert body(response) == {"removed": removed}
    assert filled() == left


@pytest.mark.parametrize("raw, fragment", [
    (b"", "empty body"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"{}", "nothing to clear"),
    (b'{"all": false}', "clears nothing"),
    (b'{"all": "yes"}', "true or false"),
    (b'{"colour": "red"}', "unknown field"),
    (b'{"namespace": "../x"}', "invalid namespace"),
    (b'{"namespace": 3}', "invalid namespace"),
    (b'{"tags": []}', "tags must be"),
    (b'{"tags": [1]}', "tags must be"),
    (b'{"keys": "a"}', "keys must be"),
    (b'{"keys": [{"a": 1}]}', "cache key"),
    (b'{"keys": ["a"], "tags": ["x"]}', "keys combines only with namespace"),
    (b'{"older_than": "soon"}', "older_than"),
])
async def test_bad_clear_requests_are_400_and_clear_nothing(fetch, session, raw, fragment):
    session.cache.set("a", 1, namespace="emb")
    session.cache.set("b", 2)
    response = await fetch("resman", "api", "cache", "clear", method="POST", body=raw,
                           allow_nonstandard_methods=True)
    assert response.code == 400, response.body
    assert fragment in body(response)["message"]
    assert session.cache.keys("emb") == ["a"] and session.cache.keys() == ["b"]


@pytest.mark.parametrize("route", ["cache", "metrics"])
@pytest.mark.parametrize("since", ["yesterday", "nan", "-5", "inf"])
async def test_bad_since_is_400(fetch, route, since):
    response = await fetch("resman", "api", route, params={"since": since})
    assert response.code == 400
    assert "seconds since the epoch" in body(response)["message"]


# -- checkpoints ---------------------------------------------------------------------------


async def test_checkpoints_list_and_delete(fetch, other_process):
    other_process("""
        import jupyter_resman as r
        ck = r.get_session().checkpoints
        ck.save("training", {"epoch": 1}, description="epoch 1")
        ck.save("training", {"epoch": 2}, description="epoch 2")
        ck.save("labels", list(range(100)))
    """)
    data = body(await fetch("resman", "api", "checkpoints"))
    rows = {row["name"]: row for row in data["checkpoints"]}
    assert set(rows) == {"training", "labels"}
    training = rows["training"]
    assert training["versions"] == 2 and training["latest_version"] == 2
    assert training["description"] == "epoch 2" and training["bytes"] > 0
    assert abs(training["time"] - time.time()) < 600

    response = await fetch("resman", "api", "checkpoints", "training", method="DELETE")
    assert body(response) == {"deleted": "training", "versions": 2}
    remaining = other_process("""
        import jupyter_resman as r
        print(r.get_session().checkpoints.names())
    """)
    assert remaining.strip() == "['labels']"

    response = await fetch("resman", "api", "checkpoints", "training", method="DELETE")
    assert response.code == 404
    assert "no checkpoint named 'training'" in body(response)["message"]


async def test_a_bad_checkpoint_name_is_400(fetch_raw):
    response = await fetch_raw("resman/api/checkpoints/a%00b", method="DELETE")
    assert response.code == 400
    assert "control character" in json.loads(response.body)["message"]
    response = await fetch_raw("resman/api/checkpoints/" + "x" * 300, method="DELETE")
    assert response.code == 400
    response = await fetch_raw("resman/api/checkpoints/%20%20", method="DELETE")
    assert response.code == 400
    assert "cannot be empty" in json.loads(response.body)["message"]


# -- progress of processes that are not kernels ------------------------------------------------


async def test_progress_of_a_script_is_listed_without_a_kernel(fetch, home):
    script = """
import sys, time, jupyter_resman as r
with r.progress(total=10, desc="batch") as bar:
    for i in range(3):
        bar.update(1)
        time.sleep(0.3)
    print("published", flush=True)
    sys.stdin.readline()
"""
    env = {**os.environ, "RESMAN_HOME": str(home)}
    # Blocking on purpose: nothing is asked of the server until the script is ready.
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,  # noqa: ASYNC220
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "published"
        rows = body(await fetch("resman", "api", "progress"))["kernels"]
        mine = [r for r in rows if r["pid"] == proc.pid]
        assert len(mine) == 1 and mine[0]["kernel_id"] is None and mine[0]["path"] is None
        (tree,) = mine[0]["trees"]
        assert tree["desc"] == "batch" and tree["total"] == 10 and tree["status"] == "running"
        assert 1 <= tree["n"] <= 3
    finally:
        proc.communicate("\n", timeout=30)
    # Once the script has exited, its bars are gone.
    rows = body(await fetch("resman", "api", "progress"))["kernels"]
    assert not [r for r in rows if r["pid"] == proc.pid]


# -- the event loop never waits on the store ---------------------------------------------------


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


async def test_a_blocked_store_does_not_block_other_requests(fetch, home, other_process):
    # A process that published and exited: the next metrics request prunes it,
    # which needs the live feed's write lock...
    other_process("""
        import jupyter_resman as r
        r.get_session().live.publish_samples([{"t": 1.0, "rss": 1}])
    """)
    # ...which another process holds until we tell it to let go.
    holder = subprocess.Popen(  # noqa: ASYNC220 - blocking on purpose, as above
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(home / "live.sqlite")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        metrics = asyncio.ensure_future(fetch("resman", "api", "metrics"))
        await asyncio.sleep(0.3)
        # The loop is free: other routes, ours included, answer meanwhile.
        assert (await fetch("api", "status")).code == 200
        assert (await fetch("resman", "api", "checkpoints")).code == 200
        assert not metrics.done()
    finally:
        holder.communicate("\n", timeout=30)
    assert (await metrics).code == 200
