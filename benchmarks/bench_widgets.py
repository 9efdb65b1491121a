"""Notebook widgets: ``resman.track``'s widget bars vs ``tqdm.notebook``, and the dashboard's cost.

Everything runs in a real Jupyter kernel (``jupyter_client``), where
``resman.track`` picks its widget renderer by itself and ``tqdm.notebook``
draws ipywidgets; the front end's side is counted from the kernel's
messages (``comm_open`` = a widget model the browser must create,
``comm_msg`` = an update it must apply).

Measures

* a flat loop of 1e6 items: overhead per item over a bare ``for`` loop.
  Target: ≤ 1.0× tqdm.notebook's overhead.
* nested loops (20 outer × 100 inner items of 1 ms work each, inner bars not
  kept): overhead over the same loops without bars, widget models created and
  messages sent. Targets: overhead ≤ 1.0× tqdm.notebook's, fewer widget models
  (ours reuses a tree's rows; tqdm makes a widget per bar).
* the dashboard while the kernel is idle for 10 s: CPU of its refresh thread
  (process CPU minus the same wait with only the monitor sampling) and
  messages per second. Target: ≤ 5 % of one core.

Rounds of the variants are interleaved; figures are medians. Run:
``python benchmarks/bench_widgets.py`` (``--quick`` for a smoke run that does
not write RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import fmt_time, table, write_section  # noqa: E402
from jupyter_client.manager import start_new_kernel  # noqa: E402

SETUP = """
import gc, json, time
import jupyter_resman as resman
from tqdm.notebook import tqdm as tqdm_notebook

def timed(fn):
    gc.collect(); gc.disable()
    try:
        start = time.perf_counter(); fn(); return time.perf_counter() - start
    finally:
        gc.enable()

def flat_bare(n):
    for _ in range(n):
        pass

def flat_ours(n):
    for _ in resman.track(range(n), desc="ours", publish=False):
        pass

def flat_tqdm(n):
    for _ in tqdm_notebook(range(n), desc="tqdm"):
        pass

def work():
    time.sleep(0.001)  # a millisecond of "real work" per inner item

def nested_bare(outer, inner):
    for _ in range(outer):
        for _ in range(inner):
            work()

def nested_ours(outer, inner):
    for _ in resman.track(range(outer), desc="outer", publish=False):
        for _ in resman.track(range(inner), desc="inner"):
            work()

def nested_tqdm(outer, inner):
    for _ in tqdm_notebook(range(outer), desc="outer"):
        for _ in tqdm_notebook(range(inner), desc="inner", leave=False):
            work()
"""


class Kernel:
    """A kernel and the messages each execution causes."""

    def __init__(self, home: str) -> None:
        env = {**os.environ, "RESMAN_HOME": home}
        env.pop("RESMAN_PROGRESS", None)
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env,
                                                     startup_timeout=120)

    def run(self, code: str, timeout: float = 600) -> tuple[str, dict[str, int]]:
        """Execute ``code``; its stdout and a count of its messages by type."""
        msg_id = self.client.execute(textwrap.dedent(code))
        out, counts = [], {}
        while True:
            msg = self.client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
        return "".join(out), counts

    def value(self, expression: str) -> tuple[float, dict[str, int]]:
        out, counts = self.run(f"print(json.dumps({expression}))")
        return json.loads(out.strip().splitlines()[-1]), counts

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def bench_flat(kernel: Kernel, n: int, repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"bare": [], "ours": [], "tqdm": []}
    for _ in range(repeat):
        for name in times:
            seconds, _counts = kernel.value(f"timed(lambda: flat_{name}({n}))")
            times[name].append(seconds)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_nested(kernel: Kernel, outer: int, inner: int, repeat: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for name in ("bare", "ours", "tqdm"):
        results[name] = {"times": [], "opens": [], "msgs": []}
    for _ in range(repeat):
        for name in ("bare", "ours", "tqdm"):
            seconds, counts = kernel.value(f"timed(lambda: nested_{name}({outer}, {inner}))")
            results[name]["times"].append(seconds)
            results[name]["opens"].append(counts.get("comm_open", 0))
            results[name]["msgs"].append(counts.get("comm_msg", 0))
    return {name: {key: statistics.median(values) for key, values in r.items()}
            for name, r in results.items()}


def bench_dashboard(kernel: Kernel, seconds: float) -> dict[str, float]:
    wait = f"""
    before = time.process_time()
    time.sleep({seconds})
    print(json.dumps(time.process_time() - before))
    """
    kernel.run("resman.get_session().monitor.start(interval=1.0)")
    out, _ = kernel.run(wait)
    monitor_only = json.loads(out.strip())
    kernel.run("board = resman.dashboard(); board.refresh()")
    out, counts = kernel.run(wait)
    with_board = json.loads(out.strip())
    kernel.run("board.close(); resman.get_session().monitor.stop()")
    return {"monitor_cpu": monitor_only / seconds, "board_cpu": with_board / seconds,
            "extra_cpu": max(with_board - monitor_only, 0.0) / seconds,
            "msgs_per_s": counts.get("comm_msg", 0) / seconds}


def _overhead(seconds: float) -> str:
    # Sleeping loops are noisy: an overhead below the noise can come out negative.
    return fmt_time(seconds) if seconds > 0 else "≈ 0 (below noise)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; no RESULTS.md")
    args = parser.parse_args()
    n, repeat = (200_000, 3) if args.quick else (1_000_000, 7)
    outer, inner, nested_repeat = (5, 100, 2) if args.quick else (20, 100, 5)
    idle = 3.0 if args.quick else 10.0

    with tempfile.TemporaryDirectory(prefix="resman-bench-widgets-") as home:
        kernel = Kernel(home)
        try:
            kernel.run(SETUP)
            flat = bench_flat(kernel, n, repeat)
            nested = bench_nested(kernel, outer, inner, nested_repeat)
            board = bench_dashboard(kernel, idle)
        finally:
            kernel.close()

    ours_over = (flat["ours"] - flat["bare"]) / n
    tqdm_over = (flat["tqdm"] - flat["bare"]) / n
    flat_ratio = ours_over / tqdm_over if tqdm_over > 0 else float("nan")
    ours_nested = nested["ours"]["times"] - nested["bare"]["times"]
    tqdm_nested = nested["tqdm"]["times"] - nested["bare"]["times"]
    nested_ratio = ours_nested / tqdm_nested if tqdm_nested > 0 else float("nan")
    rows = [
        [f"flat loop, {n:,} items: overhead per item", fmt_time(ours_over),
         fmt_time(tqdm_over), f"{flat_ratio:.2f}×", "≤ 1.0×",
         "met" if flat_ratio <= 1.0 else "NOT met"],
        [f"nested {outer}×{inner:,} (1 ms items): overhead over no bars",
         _overhead(ours_nested), _overhead(tqdm_nested), f"{max(nested_ratio, 0.0):.2f}×",
         "≤ 1.0×",
         "met" if nested_ratio <= 1.0 else "NOT met"],
        [f"nested {outer}×{inner:,}: widget models created", f"{nested['ours']['opens']:.0f}",
         f"{nested['tqdm']['opens']:.0f}",
         f"{nested['ours']['opens'] / max(nested['tqdm']['opens'], 1):.2f}×", "< 1.0×",
         "met" if nested["ours"]["opens"] < nested["tqdm"]["opens"] else "NOT met"],
        [f"nested {outer}×{inner:,}: widget messages", f"{nested['ours']['msgs']:.0f}",
         f"{nested['tqdm']['msgs']:.0f}",
         f"{nested['ours']['msgs'] / max(nested['tqdm']['msgs'], 1):.2f}×", "(reported)", ""],
    ]
    body = "\n".join([
        "In a real kernel; ours = `resman.track` with its automatic widget renderer, peer = "
        "`tqdm.notebook.tqdm`. Overhead = time over a bare `for` loop.",
        "",
        table(["measure", "jupyter_resman", "tqdm.notebook", "ratio", "target", ""], rows),
        "",
        table(["dashboard, kernel idle", "value", "target", ""], [
            ["refresh thread CPU (process CPU minus monitor-only)",
             f"{board['extra_cpu']:.1%} of one core", "≤ 5 %",
             "met" if board["extra_cpu"] <= 0.05 else "NOT met"],
            ["monitor thread alone (1 Hz)", f"{board['monitor_cpu']:.1%} of one core", "", ""],
            ["widget messages to the browser", f"{board['msgs_per_s']:.1f} / s", "", ""],
        ]),
    ])
    print(body)
    if not args.quick:
        write_section("widgets", "Notebook widgets: widget bars vs tqdm.notebook, dashboard cost",
                      body, packages=["tqdm", "ipywidgets", "plotly", "ipykernel"])


if __name__ == "__main__":
    main()
