"""Cache benchmark: jupyter_resman side by side with diskcache, numpy, pickle and joblib.

Run: ``python benchmarks/bench_cache.py [--quick]``. Every figure is a
median over repeated rounds; ours and the peer run alternately in the same
process, so machine noise hits both. Writes the "cache" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import diskcache
import joblib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _results import fmt_time, table, write_section  # noqa: E402

from jupyter_resman.core.cache import Cache  # noqa: E402
from jupyter_resman.core.fingerprints import fingerprint  # noqa: E402

KEY = b"b" * 32


def per_op(fn, keys, rounds: int) -> float:
    """Median seconds per call of ``fn(key)`` over ``rounds`` passes across ``keys``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for k in keys:
            fn(k)
        times.append((time.perf_counter() - start) / len(keys))
    return statistics.median(times)


def alternate(pairs: dict, rounds: int, sync: bool = False) -> dict:
    """Run each named zero-argument callable once per round, alternating; median each.

    ``sync``: flush dirty pages before each call, so a write never pays for the
    writeback the previous one left behind (this disk is slow and shared).
    """
    samples = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, fn in pairs.items():
            if sync:
                os.sync()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    opts = parser.parse_args()
    rounds = 3 if opts.quick else 9
    work = Path(tempfile.mkdtemp(prefix="resman-bench-"))
    rows, checks = [], []

    def record(what, ours, peer_name, peer, target, ok, note=""):
        ratio = ours / peer if peer else float("nan")
        rows.append([what, fmt_time(ours), f"{peer_name}: {fmt_time(peer)}" if peer else "—",
                     f"{ratio:.2f}×" if peer else "—", target, "met" if ok else "**not met**", note])
        checks.append(ok)

    try:
        # -- small values: disk get-hit and set vs diskcache ---------------------------------
        small = {"user": 42, "name": "alice", "scores": [1.5, 2.5, 3.5]}
        n = 2000 if not opts.quick else 500
        keys = [f"key-{i}" for i in range(n)]
        ours = Cache(work / "ours", secret_key=KEY, memory_bytes=0)  # disk tier only
        dc = diskcache.Cache(str(work / "dc"))
        set_ours, set_dc, get_ours, get_dc = [], [], [], []
        for _ in range(rounds):
            set_ours.append(per_op(lambda k: ours.set(k, small), keys, 1))
            set_dc.append(per_op(lambda k: dc.set(k, small), keys, 1))
            get_ours.append(per_op(ours.get, keys, 1))
            get_dc.append(per_op(dc.get, keys, 1))
        s_o, s_d = statistics.median(set_ours), statistics.median(set_dc)
        g_o, g_d = statistics.median(get_ours), statistics.median(get_dc)
        record("small set", s_o, "diskcache.set", s_d, "≤ 0.5×", s_o <= 0.5 * s_d)
        record("small disk get-hit", g_o, "diskcache.get", g_d, "≤ 1.0×", g_o <= 1.0 * g_d)
        ours.close()
        dc.close()

        # -- memory-tier hit ---------------------------------------------------------------------
        mem = Cache(work / "mem", secret_key=KEY)
        mem.set("hot", small)
        mem.get("hot")
        hot = ["hot"] * 100_000
        m = statistics.median(per_op(mem.get, hot, 1) for _ in range(rounds))
        record("memory-tier hit", m, "", 0, "≤ 1 µs", m <= 1e-6)

        # -- memoize: small args vs diskcache.memoize ----------------------------------------------
        @mem.memoize()
        def add_ours(a, b):
            return a + b

        @diskcache.Cache(str(work / "dcm")).memoize()
        def add_dc(a, b):
            return a + b

        add_ours(1, 2), add_dc(1, 2)
        calls = [None] * 20_000
        res = {"ours": [], "dc": []}
        for _ in range(rounds):
            res["ours"].append(per_op(lambda _: add_ours(1, 2), calls, 1))
            res["dc"].append(per_op(lambda _: add_dc(1, 2), calls, 1))
        mo, md = statistics.median(res["ours"]), statistics.median(res["dc"])
        record("memoize hit, small args", mo, "diskcache.memoize", md, "≤ 0.5×", mo <= 0.5 * md)

        # -- memoize with a 100 MB array argument vs joblib.Memory -------------------------------------
        big = np.random.default_rng(0).random(12_500_000)  # 100 MB float64

        @mem.memoize()
        def mean_ours(a):
            return float(a.mean())

        memory = joblib.Memory(str(work / "joblib"), verbose=0)

        @memory.cache
        def mean_joblib(a):
            return float(a.mean())

        mean_ours(big), mean_joblib(big)
        t = alternate({"ours": lambda: mean_ours(big), "joblib": lambda: mean_joblib(big)},
                      rounds)
        record("memoize hit, 100 MB array arg", t["ours"], "joblib.Memory", t["joblib"],
               "≤ 10 ms", t["ours"] <= 0.010)

        # -- 100 MB float64 array set/get vs np.save/np.load ------------------------------------------
        arr_cache = Cache(work / "arr", secret_key=KEY, memory_bytes=0)
        npy = work / "array.npy"
        arr_cache.set("array", big)
        np.save(npy, big)
        t = alternate({"set": lambda: arr_cache.set("array", big),
                       "save": lambda: np.save(npy, big),
                       "get": lambda: arr_cache.get("array"),
                       "load": lambda: np.load(npy)}, rounds, sync=True)
        gbps = big.nbytes / 1e9
        record("100 MB array set", t["set"], "np.save", t["save"], "≥ 0.8× throughput",
               t["save"] / t["set"] >= 0.8, f"{gbps / t['set']:.2f} vs {gbps / t['save']:.2f} GB/s")
        record("100 MB array get", t["get"], "np.load", t["load"], "≥ 0.8× throughput",
               t["load"] / t["get"] >= 0.8, f"{gbps / t['get']:.2f} vs {gbps / t['load']:.2f} GB/s")
        arr_cache.close()

        # -- 1e6-row, 5-column DataFrame vs pickle protocol 5 to a file -----------------------------------
        rng = np.random.default_rng(1)
        rows_n = 1_000_000
        df = pd.DataFrame({
            "id": np.arange(rows_n, dtype="int64"),
            "x": rng.random(rows_n),
            "y": rng.random(rows_n).astype("float32"),
            "when": pd.date_range("2020-01-01", periods=rows_n, freq="s"),
            "label": pd.Categorical(rng.choice(["alpha", "beta", "gamma"], rows_n)),
        })
        df_cache = Cache(work / "df", secret_key=KEY, memory_bytes=0)
        pkl = work / "frame.pkl"

        def pickle_dump():
            with open(pkl, "wb") as f:
                pickle.dump(df, f, protocol=5)

        def pickle_load():
            with open(pkl, "rb") as f:
                return pickle.load(f)

        df_cache.set("frame", df)
        pickle_dump()
        t = alternate({"set": lambda: df_cache.set("frame", df), "dump": pickle_dump,
                       "get": lambda: df_cache.get("frame"), "load": pickle_load}, rounds,
                      sync=True)
        record("1e6×5 DataFrame set", t["set"], "pickle 5 dump", t["dump"], "≥ 0.8× throughput",
               t["dump"] / t["set"] >= 0.8)
        record("1e6×5 DataFrame get", t["get"], "pickle 5 load", t["load"], "≥ 0.8× throughput",
               t["load"] / t["get"] >= 0.8)
        pd.testing.assert_frame_equal(df_cache.get("frame"), df)  # full fidelity
        df_cache.close()

        # -- fingerprint of a 200 MB array vs joblib.hash ---------------------------------------------------
        arr200 = np.random.default_rng(2).random(25_000_000)
        t = alternate({"ours": lambda: fingerprint(arr200), "joblib": lambda: joblib.hash(arr200)},
                      max(5, rounds))
        speed = arr200.nbytes / t["ours"] / 1e9
        speedup = t["joblib"] / t["ours"]
        record("fingerprint 200 MB array", t["ours"], "joblib.hash", t["joblib"],
               "≥ 15 GB/s and ≥ 20× faster", speed >= 15 and speedup >= 20,
               f"{speed:.1f} GB/s, {speedup:.0f}× faster")
        mem.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    body = table(["operation", "jupyter_resman", "peer (same run)", "ratio ours/peer",
                  "target", "status", "note"], rows)
    body += (f"\n\n{sum(checks)} of {len(checks)} targets met. Ratios are time ratios "
             "(lower is better for us); throughput targets compare bytes per second.")
    print(body)
    write_section("cache", "Cache (benchmarks/bench_cache.py)", body,
                  ["diskcache", "joblib", "numpy", "pandas"])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
