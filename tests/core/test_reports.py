"""The plain-data reports behind the REST API, with real processes publishing to a real home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from jupyter_resman.core import Session
from jupyter_resman.core.errors import (
    CheckpointNameError,
    CheckpointNotFoundError,
    RequestError,
    ResmanError,
    ResourceNotFoundError,
)
from jupyter_resman.core.gpu import GpuReader
from jupyter_resman.core.registry import Asset, Grid, Stack
from jupyter_resman.core.reports import (
    KernelInfo,
    MetricsSampler,
    cache_report,
    checkpoints_report,
    clear_cache,
    delete_checkpoint,
    existing_registry,
    metrics_report,
    progress_report,
    registry_item_report,
    registry_report,
    resource_id_of,
    resources_report,
    thin,
)
from jupyter_resman.core.resources import PoolConfig

KERNEL = """
import sys, time, jupyter_resman as r
s = r.get_session()
limits = {k: v for k, v in (a.split("=", 1) for a in sys.argv[1:] if "=" in a)}
if "monitor" in sys.argv:
    s.monitor.start(0.1)
if limits:
    s.monitor.set_limits(**limits)
if "bar" in sys.argv:
    bar = r.progress(total=4, desc="outer", renderer="silent")
    bar.update(1); time.sleep(0.6); bar.update(1)
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def spawn(home):
    """Start stand-in kernels: Python processes using the home, told what to do by argv."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> int:
        env = {**os.environ, "RESMAN_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-c", KERNEL, *args], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc.pid

    yield start
    for proc in procs:
        proc.communicate("\n", timeout=60)


@pytest.fixture
def sampler(home):
    s = MetricsSampler(home, gpu=False)
    yield s
    s.close()


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# -- metrics ------------------------------------------------------------------------------


def test_metrics_of_kernels_with_and_without_monitors(session, spawn, sampler):
    watched = spawn("monitor", "memory=8GB")
    quiet = spawn()
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    kernels = [
        KernelInfo("k1", "python3", watched, "a.ipynb", "busy"),
        {"id": "k2", "name": "python3", "pid": quiet, "path": "b.ipynb"},
        KernelInfo("k3", pid=dead.pid),
        KernelInfo("k4", name="remote"),  # a kernel with no local pid
    ]

    def with_samples():
        report = metrics_report(session, kernels, sampler)
        return report if len(report["kernels"][0]["samples"]) >= 3 else None

    report = wait_for(with_samples)
    assert report, "the monitor's samples never reached the live feed"
    json.dumps(report, allow_nan=False)  # plain JSON, no NaN
    by_id = {k["kernel_id"]: k for k in report["kernels"]}
    assert [k["kernel_id"] for k in report["kernels"]] == ["k1", "k2", "k3", "k4"]

    k1 = by_id["k1"]
    assert (k1["pid"], k1["path"], k1["name"], k1["execution_state"]) == (
        watched, "a.ipynb", "python3", "busy")
    assert k1["rss"] > 1_000_000 and k1["cpu_percent"] >= 0
    assert k1["memory_limit"] == 8_000_000_000 and k1["status"] == "ok" and k1["monitoring"]
    samples = k1["samples"]
    assert all(set(s) == {"t", "rss", "cpu_percent"} for s in samples)
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)

    k2 = by_id["k2"]
    assert k2["rss"] > 1_000_000 and k2["samples"] == [] and k2["memory_limit"] is None
    assert k2["status"] == "ok" and not k2["monitoring"]
    for gone in ("k3", "k4"):
        assert by_id[gone]["rss"] is None and by_id[gone]["status"] == "unknown"
        assert by_id[gone]["samples"] == []

    system = report["system"]
    assert system["memory"]["total"] >= system["memory"]["used"] > 0
    assert system["cpu"]["cores"] > 0 and system["gpus"] == []
    assert system["disk"]["total"] > 0  # the home's filesystem
    assert report["warning_threshold"] == 0.8


def test_status_follows_the_limits_the_kernel_set(session, spawn, sampler):
    exceeded = spawn("memory=1MB")
    warning = spawn("memory=1GB", "warn_at=0.001")
    ok = spawn("memory=1TB")
    report = metrics_report(session, [KernelInfo(str(p), pid=p) for p in (exceeded, warning, ok)],
                            sampler)
    assert [k["status"] for k in report["kernels"]] == ["exceeded", "warning", "ok"]
    assert [k["memory_limit"] for k in report["kernels"]] == [10**6, 10**9, 10**12]


def test_a_kernel_without_a_process_is_listed_as_unknown(session, sampler):
    report = metrics_report(session, [KernelInfo("gone", pid=2**22 + 12345)], sampler)
    (row,) = report["kernels"]
    assert row["status"] == "unknown" and row["rss"] is None and row["samples"] == []


def test_bad_since_is_a_request_error(session, sampler):
    for bad in ("yesterday", "nan", float("inf"), -1, True):
        with pytest.raises(RequestError, match="seconds since the epoch"):
            metrics_report(session, [], sampler, since=bad)


class FakeNVML:
    """NVML as a machine with one GPU would answer (this machine has none)."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def nvmlInit(self): pass
    def nvmlShutdown(self): pass
    def nvmlDeviceGetCount(self): return 1
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetName(self, h): return "Fake H100"
    def nvmlDeviceGetUtilizationRates(self, h): return type("U", (), {"gpu": 42})()
    def nvmlDeviceGetMemoryInfo(self, h): return type("M", (), {"used": 2**30, "total": 2**34})()
    def nvmlDeviceGetTemperature(self, h, sensor): return 55
    def nvmlDeviceGetPowerUsage(self, h): return 70500

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": self.pid, "usedGpuMemory": 5 * 2**20})()]


def test_gpus_and_the_gpu_memory_of_each_kernel(session, home):
    sampler = MetricsSampler(home, gpu_reader=GpuReader(FakeNVML(os.getpid())))
    try:
        report = metrics_report(session, [KernelInfo("me", pid=os.getpid())], sampler)
    finally:
        sampler.close()
    assert report["system"]["gpus"] == [{
        "index": 0, "name": "Fake H100", "utilization": 42.0, "memory_used": 2**30,
        "memory_total": 2**34, "temperature": 55.0, "power_w": 70.5}]
    assert report["kernels"][0]["gpu_memory"] == 5 * 2**20


# -- the sampler's incremental view of the live feed ---------------------------------------------


def publish(session, times, rss=100, now=None):
    session.live.publish_samples([{"t": t, "rss": rss + i, "cpu_percent": 1.0, "extra": "x"}
                                  for i, t in enumerate(times)], now=now)


def test_samples_are_read_incrementally_and_kept_to_the_window(session):
    me = os.getpid()
    sampler = MetricsSampler(gpu=False, window=60.0)
    now = float(int(time.time()))  # whole seconds: window edges compare exactly
    publish(session, [now - 100, now - 50, now - 10], now=now)
    first = sampler.samples(session.live, [me], now=now)[me]
    assert [s["t"] for s in first] == [round(now - 50, 3), round(now - 10, 3)]
    assert set(first[0]) == {"t", "rss", "cpu_percent"}  # trimmed
    # Published later, including a sample taken before our previous read (a batch).
    publish(session, [now - 5, now + 1, now + 2], rss=200, now=now + 2)
    second = sampler.samples(session.live, [me], now=now + 3)[me]
    assert [s["t"] for s in second] == [round(t, 3) for t in
                                         (now - 50, now - 10, now - 5, now + 1, now + 2)]
    # Only what is newer than ?since=.
    since = sampler.samples(session.live, [me], now=now + 3, since=now - 5)[me]
    assert [s["t"] for s in since] == [round(now + 1, 3), round(now + 2, 3)]
    # Time moves on: old samples fall out of the window.
    later = sampler.samples(session.live, [me], now=now + 55)[me]
    assert [s["t"] for s in later] == [round(t, 3) for t in (now - 5, now + 1, now + 2)]
    sampler.close()


def test_a_kernel_seen_later_gets_its_whole_window(session, spawn):
    late = spawn("monitor")
    assert wait_for(lambda: session.live.recent_samples(late))
    sampler = MetricsSampler(gpu=False)
    # A first read well after the kernel's samples were published: an incremental
    # read would look back only a few seconds from then.
    now = time.time() + 30
    sampler.samples(session.live, [os.getpid()], now=now)
    rows = sampler.samples(session.live, [late], now=now + 1)[late]
    first = session.live.recent_samples(late)[late][0]
    assert rows and rows[0]["t"] == round(first["t"], 3)
    sampler.close()


def test_many_samples_are_thinned_keeping_peaks(session):
    me = os.getpid()
    sampler = MetricsSampler(gpu=False, max_points=10)
    now = float(int(time.time()))
    session.live.publish_samples([{"t": now - 100 + i, "rss": 5 if i == 37 else 1,
                                   "cpu_percent": 0.0} for i in range(100)], now=now)
    rows = sampler.samples(session.live, [me], now=now)[me]
    assert len(rows) == 10
    assert rows[-1]["t"] == round(now - 1, 3)  # the newest point is exact
    assert sorted(r["rss"] for r in rows) == [1] * 9 + [5]  # the spike survived
    sampler.close()


def test_thin():
    rows = [{"t": float(i), "v": i % 4} for i in range(10)]
    assert thin(rows, 10) == rows and thin(rows, 20) == rows
    out = thin(rows, 3)
    assert len(out) <= 3 and out[-1]["t"] == 9.0
    assert [r["v"] for r in out] == [1, 3, 3]  # buckets 0-1, 2-5, 6-9 (aligned to the newest)
    assert thin([], 5) == []


# -- cache --------------------------------------------------------------------------------


def test_cache_report(session):
    cache = session.cache
    cache.set("a", b"x" * 500, namespace="emb", tags=["exp1"])
    cache.set("b", 1)
    cache.get("a", namespace="emb")
    cache.get("nope")
    report = cache_report(session)
    json.dumps(report, allow_nan=False)
    stats = report["stats"]
    assert (stats["entries"], stats["hits"], stats["misses"], stats["sets"]) == (2, 1, 1, 2)
    assert stats["hit_rate"] == 0.5 and "namespaces" not in stats
    assert {n["namespace"]: (n["entries"], n["hits"], n["misses"])
            for n in report["namespaces"]} == {"default": (1, 0, 1), "emb": (1, 1, 0)}
    history = report["history"]
    assert {h["namespace"] for h in history} == {"default", "emb"}
    assert all(isinstance(h["time"], float) and h["time"] % 60 == 0 for h in history)
    assert cache_report(session, since=time.time() + 600)["history"] == []
    with pytest.raises(RequestError):
        cache_report(session, since="soon")


@pytest.fixture
def filled(session):
    c = session.cache
    c.set("a", 1, namespace="emb", tags=["exp1"])
    c.set("b", 2, namespace="emb", tags=["exp2"])
    c.set(("t", 1), 3, namespace="emb")
    c.set("a", 4, namespace="other", tags=["exp1"])
    c.set("z", 5)
    return lambda: sorted(f"{ns}:{k}" for ns in ("default", "emb", "other") for k in c.keys(ns))


def test_clear_cache_conditions_combine(session, filled):
    assert clear_cache(session, {"tags": "exp1", "namespace": "emb"}) == {"removed": 1}
    assert clear_cache(session, {"keys": [["t", 1], "missing"], "namespace": "emb"}) == {
        "removed": 1}
    assert filled() == ["default:z", "emb:b", "other:a"]
    assert clear_cache(session, {"older_than": "1h"}) == {"removed": 0}
    assert clear_cache(session, {"older_than": 0}) == {"removed": 3}
    assert filled() == []


@pytest.mark.parametrize("request_body", [
    None, [], "all", {}, {"all": False}, {"all": 1}, {"bogus": 1}, {"namespace": ""},
    {"namespace": "/abs"}, {"tags": None}, {"tags": [""]}, {"keys": []}, {"keys": [{}]},
    {"keys": ["a"], "all": True}, {"older_than": "-1d"}, {"older_than": True},
])
def test_invalid_clear_requests_raise_and_remove_nothing(session, filled, request_body):
    with pytest.raises(RequestError) as info:
        clear_cache(session, request_body)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ResmanError)
    assert len(filled()) == 5


# -- progress --------------------------------------------------------------------------------


def test_progress_is_matched_to_kernels_by_pid(session, spawn):
    in_kernel = spawn("bar")
    script = spawn("bar")
    assert wait_for(lambda: {in_kernel, script} <= set(session.live.progress()))
    report = progress_report(session, [KernelInfo("k1", pid=in_kernel, path="x.ipynb"),
                                       KernelInfo("idle", pid=os.getpid(), path="y.ipynb")])
    json.dumps(report, allow_nan=False)
    rows = [r for r in report["kernels"] if r["pid"] in (in_kernel, script)]
    assert [(r["pid"], r["kernel_id"], r["path"]) for r in rows] == [
        (in_kernel, "k1", "x.ipynb"), (script, None, None)]  # kernels first
    (tree,) = rows[0]["trees"]
    assert tree["desc"] == "outer" and tree["n"] == 2 and tree["status"] == "running"
    # A kernel that publishes nothing is not listed.
    assert all(r["kernel_id"] != "idle" for r in report["kernels"])


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoints_report_and_delete(session):
    ck = session.checkpoints
    ck.save("run", {"step": 1}, description="one")
    ck.save("run", {"step": 2}, description="two")
    ck.save("other", [1, 2, 3])
    rows = {r["name"]: r for r in checkpoints_report(session)["checkpoints"]}
    assert set(rows) == {"run", "other"}
    run = rows["run"]
    assert (run["versions"], run["latest_version"], run["description"], run["complete"]) == (
        2, 2, "two", True)
    assert run["bytes"] == sum(v.bytes for v in ck.versions("run"))
    ck.write_part("run", "extra", ck.encode_part("run", "extra", b"x" * 5000))  # e.g. a loop's
    again = {r["name"]: r for r in checkpoints_report(session)["checkpoints"]}["run"]
    assert again["bytes"] == run["bytes"] + ck.parts_bytes("run") and ck.parts_bytes("run") > 5000
    assert delete_checkpoint(session, "run") == {"deleted": "run", "versions": 2}
    assert [r["name"] for r in checkpoints_report(session)["checkpoints"]] == ["other"]
    with pytest.raises(CheckpointNotFoundError):
        delete_checkpoint(session, "run")
    with pytest.raises(CheckpointNameError):
        delete_checkpoint(session, "bad\x00name")
    with pytest.raises(RequestError):
        delete_checkpoint(session, 5)


def test_kernel_info_from_a_mapping():
    assert KernelInfo.coerce({"kernel_id": "a", "pid": "12"}) == KernelInfo("a", pid=12)
    assert KernelInfo.coerce({"id": "b", "pid": None, "path": "p"}) == KernelInfo("b", path="p")
    info = KernelInfo("c")
    assert KernelInfo.coerce(info) is info



# -- registry ------------------------------------------------------------------------------


def test_looking_at_a_home_never_creates_its_registry(session):
    assert existing_registry(session) is None
    assert registry_report(session, {"kind": "grid", "limit": "5"})["exists"] is False
    with pytest.raises(ResourceNotFoundError, match="no registry"):
        registry_item_report(session, "01J9ZQ3V5X7K2M4N6P8R0T2W4Y")
    assert not session.home.registry_db.exists()
    session.registry.add(Asset(name="s1"))
    assert existing_registry(session) is session.registry


def test_a_configured_registry_url_always_exists(home, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    with Session(home=home, registry_url=url) as s:
        assert existing_registry(s) is s.registry
        assert registry_report(s)["location"] == str(tmp_path / "shared.sqlite")


def test_registry_report_pages_and_filters(session):
    reg = session.registry
    box = reg.add(Stack(name="box", resource_class="box", capacity=20))
    for i in range(7):
        reg.push(box, Asset(name=f"tube {i}", resource_class="tube"))
    first = registry_report(session, {"class": "tube", "limit": "3", "order": "name"})
    assert first["total"] == 7 and [r["name"] for r in first["resources"]] == [
        "tube 0", "tube 1", "tube 2"]
    last = registry_report(session, {"class": "tube", "limit": "3", "offset": "6",
                                     "order": "-name"})
    assert [r["name"] for r in last["resources"]] == ["tube 0"]
    inside = registry_report(session, {"parent": box.id.lower(), "name": "tube 6"})
    assert [r["name"] for r in inside["resources"]] == ["tube 6"]
    assert registry_report(session, {"kind": "CONTAINER"})["total"] == 1
    json.dumps(first, allow_nan=False)  # what the server sends


@pytest.mark.parametrize("params", [
    {"kind": "spaceship"}, {"removed": "sometimes"}, {"limit": "0"}, {"limit": "501"},
    {"limit": "1.5"}, {"offset": "-3"}, {"order": "attributes"}, {"parent": "box"},
    {"name": 7},
])
def test_bad_registry_parameters_are_request_errors(session, params):
    with pytest.raises(RequestError):
        registry_report(session, params)


def test_registry_item_report_of_a_nested_resource(session):
    reg = session.registry
    rack = reg.add(Grid(name="rack", rows=2, columns=2))
    plate = reg.set_child(rack, (0, 0), Grid(name="plate", rows=2, columns=2))
    well = reg.set_child(plate, (1, 1), Asset(name="well"))
    data = registry_item_report(session, well.id)
    assert data["hierarchy"]["ancestor_ids"] == [plate.id, rack.id]
    assert [a["name"] for a in data["ancestors"]] == ["plate", "rack"]
    top = registry_item_report(session, rack.id)
    assert top["hierarchy"]["descendants"] == 2 and top["children_total"] == 1
    assert [c["name"] for c in top["children"]] == ["plate"]
    (added,) = top["history"]
    assert added["change_type"] == "added" and added["changes"]["name"] == [None, "rack"]
    json.dumps(data, allow_nan=False)


def test_resource_ids_are_checked_before_any_query(session):
    assert resource_id_of(" 01j9zq3v5x7k2m4n6p8r0t2w4y ", "id") == "01J9ZQ3V5X7K2M4N6P8R0T2W4Y"
    for bad in ("", "x" * 26, "01J9ZQ3V5X7K2M4N6P8R0T2W4", None, 42):
        with pytest.raises(RequestError, match="not a registry id"):
            resource_id_of(bad, "id")


# -- resource providers -----------------------------------------------------------------------


def test_resources_report_reads_the_feed_and_ages_the_leases(session):
    """What this process published, read back at a later ``now``: holds have grown."""
    manager = session.resources
    manager.register_provider("scratch", list, PoolConfig(max_size=4))
    held = [manager.acquire("scratch", owner=owner) for owner in ("cell-1", "cell-2", "cell-2")]
    manager.publish()
    snapshot_time = session.live.processes()[os.getpid()]["resources"]["updated"]
    data = resources_report(session, [KernelInfo("k1", pid=os.getpid(), path="a.ipynb")],
                            now=snapshot_time + 60)
    (row,) = data["kernels"]
    assert row["kernel_id"] == "k1" and row["path"] == "a.ipynb"
    (provider,) = row["providers"]
    assert provider["health"] is None  # no check ran
    assert provider["pool"]["in_use"] == 3 and provider["pool"]["max_size"] == 4
    assert [(o["owner"], o["count"]) for o in provider["owners"]] == [("cell-1", 1), ("cell-2", 2)]
    assert all(60 <= o["held_s"] < 70 for o in provider["owners"])
    assert provider["metrics"]["acquisitions"] == 3
    json.dumps(data, allow_nan=False)
    for resource in held:
        manager.release("scratch", resource=resource)


def test_resources_of_processes_that_are_not_kernels_come_last(session, spawn):
    pid = spawn("monitor")  # publishes samples but no resources: not listed
    session.resources.register_provider("mine", list)
    data = resources_report(session, [KernelInfo("k", pid=pid)])
    assert [(r["pid"], r["kernel_id"]) for r in data["kernels"]] == [(os.getpid(), None)]


def test_the_doctests_hold():
    import doctest

    from jupyter_resman.core import reports

    assert doctest.testmod(reports).failed == 0
