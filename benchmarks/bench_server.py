"""Latency of the server's metrics route with 10 kernels, side by side with jupyter-resource-usage.

Run: ``python benchmarks/bench_server.py`` (about 6 minutes; ``--quick`` for a
smoke run with 3 kernels that does not touch RESULTS.md). The peer is a
benchmark-only dependency: ``pip install jupyter-resource-usage``; without it
the script says so and measures ours alone.

Each configuration is a real ``jupyter server`` subprocess (token auth, only
the extension under test enabled) with 10 python3 kernels opened through
``/api/sessions``, measured from this process over keep-alive HTTP:

* **metrics route**, one request at a time at random moments: p50 and p95 of
  ``/resman/api/metrics`` (CPU % of every kernel always tracked) and of
  ``/api/metrics/v1`` with ``track_cpu_percent`` off (its default) and on;
* **other routes**: p50 and p95 of ``/api/status`` (a bare authenticated
  route) on an idle server and while a separate process polls the metrics
  route 5 times a second (a few open sidebars);
* ours again with a monitor running in every kernel (10 Hz for 32 s to fill
  the 300 samples of a five-minute window at 1 Hz, then 1 Hz while measured),
  polled plainly and with ``?since=`` as an incremental client would.

Targets (issue 7): our metrics p50 ≤ 5 ms and p95 ≤ 20 ms with CPU tracking
on, and no other route slowed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import median_time, table, write_section

from jupyter_resman.core.usage import ProcessTreeSampler

TARGET_P50_MS = 5.0
TARGET_P95_MS = 20.0
#: /api/status may be this much slower (p95, ms) under polling and still be "not slowed".
SLOWED_MARGIN_MS = 5.0

OTHER_EXTENSIONS = ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")

POLLER = """
import sys, time, requests
url, token, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = requests.Session(); s.headers["Authorization"] = "token " + token
while time.time() < until:
    s.get(url).raise_for_status()
    time.sleep(0.2)
"""

# 10 Hz for 32 s fills what a five-minute window holds at 1 Hz (300 samples);
# then the monitor goes on at 1 Hz, the default, while we measure.
MONITOR_STARTUP = """
import threading, jupyter_resman
_monitor = jupyter_resman.get_session().monitor
_monitor.start(0.1)
threading.Timer(32, lambda: _monitor.start(1.0)).start()
"""


def have_peer() -> bool:
    return importlib.util.find_spec("jupyter_resource_usage") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), statistics.quantiles(ms, n=20)[18]


class Server:
    """A jupyter server subprocess with kernels; stopped (with its kernels) on exit."""

    def __init__(self, root: Path, extensions: dict[str, bool], args: list[str],
                 monitors: bool = False) -> None:
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        env = {**os.environ, "RESMAN_HOME": str(root / "home"),
               "JUPYTER_CONFIG_DIR": str(root / "config"),
               "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "IPYTHONDIR": str(root / "ipython")}
        if monitors:  # every kernel starts a monitor (an IPython startup file)
            startup = root / "ipython" / "profile_default" / "startup"
            startup.mkdir(parents=True)
            (startup / "00-resman.py").write_text(MONITOR_STARTUP)
        (root / "notebooks").mkdir(parents=True)
        enabled = {**dict.fromkeys(OTHER_EXTENSIONS, False), **extensions}
        self.log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root / 'notebooks'}",
             f"--ServerApp.jpserver_extensions={enabled!r}", "--ServerApp.log_level=WARN", *args],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.http.get(self.url + "/api/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the server did not start; see {root / 'server.log'}")
            time.sleep(0.2)

    def open_kernels(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            r = self.http.post(self.url + "/api/sessions", json={
                "path": f"nb/k{i}.ipynb", "type": "notebook", "name": f"k{i}",
                "kernel": {"name": "python3"}})
            r.raise_for_status()
            ids.append(r.json()["kernel"]["id"])
        deadline = time.monotonic() + 120
        while True:  # until every kernel has started and answered
            states = {k["id"]: k["execution_state"] for k in self.http.get(
                self.url + "/api/kernels").json()}
            if all(states.get(i) == "idle" for i in ids) or time.monotonic() > deadline:
                return ids
            time.sleep(0.5)

    def latencies(self, path: str, n: int, params: dict | None = None,
                  gap: float = 0.04) -> list[float]:
        """Seconds each of ``n`` requests took, sent at random moments.

        A random pause (mean ``gap``) before each request makes requests land
        anywhere in the server's periodic work, as a sidebar's polls and a
        user's clicks do; back-to-back requests would mostly miss a stall that
        comes once a second, however long it is.
        """
        url = self.url + path
        out = []
        for _ in range(n):
            time.sleep(random.uniform(0, 2 * gap))
            start = time.perf_counter()
            r = self.http.get(url, params=params)
            out.append(time.perf_counter() - start)
            r.raise_for_status()
        return out

    @contextlib.contextmanager
    def polling(self, path: str, seconds: float) -> Iterator[None]:
        """A separate process polling ``path`` 5 times a second (a few open sidebars)."""
        poller = subprocess.Popen([sys.executable, "-c", POLLER, self.url + path, self.token,
                                   str(time.time() + seconds)])
        try:
            time.sleep(0.5)  # let it start
            yield
        finally:
            poller.wait(timeout=seconds + 30)
            if poller.returncode:
                raise RuntimeError(f"the poller of {path} failed")

    def close(self) -> None:
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        with contextlib.suppress(requests.RequestException):
            self.http.post(self.url + "/api/shutdown", timeout=10)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for child in family:  # kernels (and anything they started) must not outlive us
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.http.close()
        self.log.close()


def measure(label: str, root: Path, extensions: dict[str, bool], args: list[str], route: str,
            kernels: int, n: int, monitors: bool = False) -> dict:
    print(f"-- {label}: starting a server with {kernels} kernels", flush=True)
    server = Server(root, extensions, args, monitors=monitors)
    try:
        ids = server.open_kernels(kernels)
        out: dict = {"label": label, "route": route}
        if monitors:
            # Wait until each kernel's monitor has published a full window's worth.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                rows = server.http.get(server.url + route).json()["kernels"]
                spans = [r["samples"][-1]["t"] - r["samples"][0]["t"] if r["samples"] else 0
                         for r in rows if r["kernel_id"] in ids]
                if len(spans) == len(ids) and min(spans) >= 31:
                    break
                time.sleep(1)
            time.sleep(3)  # every monitor is at 1 Hz now
            first = server.http.get(server.url + route).json()
            out["points"] = sum(len(r["samples"]) for r in first["kernels"])
            out["bytes"] = len(json.dumps(first))
        server.latencies(route, max(10, n // 10), gap=0)  # warm up (first CPU %, imports)
        out["route_p"] = percentiles(server.latencies(route, n))
        if route.startswith("/resman/") and not monitors:
            # Where our time goes: the same psutil path on the same kernels, in this process.
            pids = [k["pid"] for k in server.http.get(server.url + route).json()["kernels"]]
            trees = ProcessTreeSampler()
            out["trees_ms"] = median_time(lambda: trees.sample(pids), number=20) * 1000
            out["threads"] = statistics.median(psutil.Process(p).num_threads() for p in pids)
        if monitors:
            # An incremental client asks only for samples newer than its last one.
            since = {"since": str(time.time() - 2)}
            out["since_p"] = percentiles(server.latencies(route, n, since))
        else:
            out["status_idle"] = percentiles(server.latencies("/api/status", n))
            seconds = n * 0.06 + 15
            with server.polling(route, seconds):
                out["status_polled"] = percentiles(server.latencies("/api/status", n))
        print(f"   {label}: {route} p50 {out['route_p'][0]:.2f} ms, p95 {out['route_p'][1]:.2f} ms",
              flush=True)
        return out
    finally:
        server.close()


def fmt(p: tuple[float, float] | None) -> tuple[str, str]:
    return ("—", "—") if p is None else (f"{p[0]:.2f} ms", f"{p[1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 kernels, few requests, no RESULTS.md")
    opts = parser.parse_args()
    kernels, n = (3, 60) if opts.quick else (10, 300)
    peer = have_peer()
    if not peer:
        print("jupyter-resource-usage is NOT installed: measuring jupyter_resman alone. "
              "Install the peer with `pip install jupyter-resource-usage` for the side-by-side "
              "figures.", file=sys.stderr, flush=True)
    base = Path(tempfile.mkdtemp(prefix="bench_server_"))
    results = []
    try:
        ours = {"jupyter_resman": True, "jupyter_resource_usage": False}
        results.append(measure("jupyter_resman", base / "ours", ours, [], "/resman/api/metrics",
                               kernels, n))
        if peer:
            theirs = {"jupyter_resman": False, "jupyter_resource_usage": True}
            results.append(measure(
                "jupyter-resource-usage", base / "jru", theirs,
                ["--ResourceUseDisplay.track_cpu_percent=False"], "/api/metrics/v1", kernels, n))
            results.append(measure(
                "jupyter-resource-usage, track_cpu_percent", base / "jru-cpu", theirs,
                ["--ResourceUseDisplay.track_cpu_percent=True"], "/api/metrics/v1", kernels, n))
        monitored = measure("jupyter_resman, a monitor in every kernel", base / "ours-mon", ours,
                            [], "/resman/api/metrics", kernels, n, monitors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ours_p50, ours_p95 = results[0]["route_p"]
    rows = []
    for r in results:
        p50, p95 = fmt(r["route_p"])
        idle, polled = r["status_idle"], r["status_polled"]
        slowed = polled[1] > idle[1] + SLOWED_MARGIN_MS
        rows.append([r["label"], f"`{r['route']}`", p50, p95,
                     f"{idle[0]:.2f} / {idle[1]:.2f} ms", f"{polled[0]:.2f} / {polled[1]:.2f} ms",
                     "**yes**" if slowed else "no"])
    latency = table(["server", "metrics route", "p50", "p95", "`/api/status` p50 / p95 idle",
                     "… while the route is polled 5/s", "other routes slowed?"], rows)
    m50, m95 = fmt(monitored["route_p"])
    s50, s95 = fmt(monitored["since_p"])
    monitors = table(["request", "p50", "p95", "payload"], [
        [f"`/resman/api/metrics` ({monitored['points']} points in all)", m50, m95,
         f"{monitored['bytes'] / 1000:.0f} kB"],
        ["`/resman/api/metrics?since=<2 s ago>` (incremental client)", s50, s95, "small"],
    ])
    ratio_lines = []
    for r in results[1:]:
        p50, p95 = r["route_p"]
        ratio_lines.append(f"- vs {r['label']}: p50 {p50 / ours_p50:.1f}x faster, "
                           f"p95 {p95 / ours_p95:.1f}x faster.")
    verdict_p50 = "met" if ours_p50 <= TARGET_P50_MS else "**not met**"
    verdict_p95 = "met" if ours_p95 <= TARGET_P95_MS else "**not met**"
    ours_slowed = rows[0][-1] != "no"
    peer_note = "" if peer else (
        "\n**jupyter-resource-usage was not installed for this run: the peer rows are missing** "
        "(`pip install jupyter-resource-usage`).\n")
    body = f"""
{kernels} python3 kernels opened through `/api/sessions` in a real `jupyter server`
subprocess (token auth, only the extension under test enabled), {n} keep-alive requests per
figure after a warm-up, measured from another process, one at a time at random moments (a
random pause of 0–80 ms before each, so periodic work on the server's event loop is met as
often as a sidebar's poll or a click would meet it). Ours always reports the
CPU % of every kernel (non-blocking, rates between requests); jupyter-resource-usage is
measured with `track_cpu_percent` off (its default) and on. `/api/status` is a bare
authenticated route: "slowed" means its p95 grew by more than {SLOWED_MARGIN_MS:g} ms while a
separate process polled the metrics route 5 times a second.
{peer_note}
{latency}

Targets: p50 ≤ {TARGET_P50_MS:g} ms ({verdict_p50}: {ours_p50:.2f} ms),
p95 ≤ {TARGET_P95_MS:g} ms ({verdict_p95}: {ours_p95:.2f} ms),
no other route slowed ({"**not met**" if ours_slowed else "met"}).
{chr(10).join(ratio_lines)}

Where our time goes: RSS and CPU % of the {kernels} kernel trees (the one psutil path,
`ProcessTreeSampler`, timed back to back in the benchmark process on the same kernels) take
{results[0]["trees_ms"]:.2f} ms; finding each kernel's child processes reads
`/proc/<pid>/task/<tid>/children` of each of its threads (median {results[0]["threads"]:g}
threads per kernel here) — done at most twice a second, since many clients polling
should not each pay for it — and one read of `/proc/<pid>/stat` per process gives RSS, CPU
time and threads. The rest is the bare authenticated route (see `/api/status`), listing
kernels (their notebook paths in one query of the session table), and the thread-pool hop.

With a monitor running in every kernel (300 samples each, as a five-minute window at 1 Hz holds;
the answer thins them to at most 150 points per kernel):

{monitors}

Why: the handler only lists kernels (in memory) on the event loop; psutil and SQLite work runs
in the extension's thread pool. One `ProcessTreeSampler` per server keeps CPU times between
requests, so CPU % never sleeps (jupyter-resource-usage's Prometheus callback samples CPU with
`interval=0.05` per process *on the event loop* every second when `track_cpu_percent` is on,
stalling every route), and RSS comes from `/proc/<pid>/stat`, not `smaps` (PSS).
Monitor samples already read are kept, so a request decodes only what kernels published since
the previous one.
"""
    print(body)
    if not opts.quick:
        write_section("server", "Server metrics route (10 kernels)", body,
                      packages=["jupyter_server", "jupyter-resource-usage", "psutil"])


if __name__ == "__main__":
    main()
