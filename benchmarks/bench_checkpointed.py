"""``%%checkpointed`` benchmark: restoring and storing a cell's 1 GB of variables.

Side by side in one run, with the same 1 GB (a 500 MB numpy array and a 500 MB
DataFrame): a ``%%checkpointed`` hit vs ``pickle.load`` from a file and a
cached ``joblib.Memory`` call; a ``%%checkpointed`` miss vs the bare cell plus
``pickle.dump`` of its outputs. Writes the "checkpointed" section of RESULTS.md.

Run: ``python benchmarks/bench_checkpointed.py [--quick]`` (``--quick``: 100 MB).
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

sys.path.insert(0, str(Path(__file__).parent))
from _results import fmt_time, table, write_section  # noqa: E402

CELL_BODY = """\
rng = np.random.default_rng(0)
arr = rng.random({n_arr})
frame = pd.DataFrame(rng.random(({n_rows}, 4)), columns=list("abcd"))
"""


def measure(shell, base: Path, total: int, rounds: int) -> dict[str, float]:
    """Medians (seconds) of the bare cell, pickle.dump/load, a miss, a hit and joblib.Memory,
    with the home, the pickle file and joblib's store all under ``base``."""
    import joblib

    from jupyter_resman.core.session import Session, set_session

    work = Path(tempfile.mkdtemp(prefix="resman-bench-cells-", dir=base))
    session = Session(home=work / "home")
    set_session(session)
    shell.run_line_magic("load_ext", "jupyter_resman")
    shell.run_cell("import numpy as np, pandas as pd")
    body = CELL_BODY.format(n_arr=total // 2 // 8, n_rows=total // 2 // 8 // 4)
    cell = "%%checkpointed big\n" + body

    def run(code: str) -> float:
        os.sync()  # start every timed step with no dirty pages left by the previous one
        start = time.perf_counter()
        result = shell.run_cell(code)
        elapsed = time.perf_counter() - start
        if not result.success:
            raise RuntimeError(f"cell failed: {result.error_in_exec!r}")
        return elapsed

    # Peers: the bare cell, pickle to a file, joblib.Memory.
    pkl = work / "outputs.pkl"
    memory = joblib.Memory(str(work / "joblib"), verbose=0)
    namespace: dict = {}

    def make():
        exec("import numpy as np, pandas as pd\n" + body, namespace)
        return namespace["arr"], namespace["frame"]

    cached_make = memory.cache(make)
    cached_make()

    samples: dict[str, list[float]] = {k: [] for k in
                                       ("bare", "dump", "miss", "hit", "load", "joblib")}
    try:
        for _ in range(rounds):
            samples["bare"].append(run(body))
            outputs = {"rng": shell.user_ns["rng"], "arr": shell.user_ns["arr"],
                       "frame": shell.user_ns["frame"]}
            os.sync()
            start = time.perf_counter()
            with open(pkl, "wb") as f:
                pickle.dump(outputs, f, protocol=5)
            samples["dump"].append(time.perf_counter() - start)
            del outputs
            samples["miss"].append(run(cell.replace("big\n", "big --fresh\n", 1)))
            shell.run_line_magic("reset", "-f")
            shell.run_cell("import numpy as np, pandas as pd")
            samples["hit"].append(run(cell))
            start = time.perf_counter()
            with open(pkl, "rb") as f:
                pickle.load(f)
            samples["load"].append(time.perf_counter() - start)
            start = time.perf_counter()
            cached_make()
            samples["joblib"].append(time.perf_counter() - start)
    finally:
        shell.run_line_magic("unload_ext", "jupyter_resman")
        shell.run_line_magic("reset", "-f")
        set_session(None)
        session.close()
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    # Paired per round: the bare run, the dump and the miss of one round meet the same
    # state of the machine, so their difference is steadier than a difference of medians.
    medians["overhead"] = statistics.median(
        (miss - bare - dump) / dump
        for miss, bare, dump in zip(samples["miss"], samples["bare"], samples["dump"]))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds (default 9; 3 with --quick): the disk here is noisy")
    opts = parser.parse_args()
    total = 100_000_000 if opts.quick else 1_000_000_000
    rounds = opts.rounds or (3 if opts.quick else 9)

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    shell = InteractiveShell.instance(config=Config({"HistoryManager": {"enabled": False}}))
    # On the disk (what users get), and on tmpfs, where no disk writeback can blur the
    # miss overhead: there it is the CPU cost of storing over pickle.dump's, alone.
    places = [("disk", Path(tempfile.gettempdir()))]
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * total:
        places.append(("tmpfs", shm))
    gb = total / 1e9
    rows, met = [], []
    for label, base in places:
        m = measure(shell, base, total, rounds)
        hit_speed = gb / m["hit"]
        overhead = m["overhead"]
        met += [hit_speed >= 2, overhead <= 0.05]
        rows += [
            [f"hit: restore {'1 GB' if not opts.quick else '100 MB'} of variables ({label})",
             fmt_time(m["hit"]), f"{hit_speed:.2f} GB/s",
             f"pickle.load {fmt_time(m['load'])} ({gb / m['load']:.2f} GB/s); joblib.Memory "
             f"{fmt_time(m['joblib'])} ({gb / m['joblib']:.2f} GB/s)",
             "≥ 2 GB/s", "met" if hit_speed >= 2 else "**not met**"],
            [f"miss: run + store ({label})", fmt_time(m["miss"]),
             f"{overhead:+.1%} beyond bare run + writing outputs",
             f"bare cell {fmt_time(m['bare'])}; pickle.dump of outputs {fmt_time(m['dump'])}",
             "≤ 5 % beyond writing outputs", "met" if overhead <= 0.05 else "**not met**"],
        ]
        print(" | ".join(rows[-2]), "\n", " | ".join(rows[-1]), flush=True)
    body_md = table(["case", "%%checkpointed", "figure", "peers (same run)", "target", "status"],
                    rows)
    body_md += (f"\n\nMedians of {rounds} rounds (each timed step starts after `os.sync()`, so "
                f"no step pays for the writeback of another); the cell makes a {total // 2 / 1e6:.0f} MB "
                f"float64 array and a {total // 2 / 1e6:.0f} MB 4-column DataFrame. The miss "
                "overhead is the median over rounds of (miss − bare run − pickle.dump) / "
                "pickle.dump, each from one round's three runs. On this shared VM's "
                "disk, writing 1 GB takes anywhere from 0.3 to 0.9 s from one run to the next "
                "(session 2 saw the disk miss overhead from −54 % to +25 % over four runs), so "
                "the tmpfs rows, where the same work meets no disk, are the steadier measure "
                "of what storing costs beyond pickle.dump.")
    print(body_md)
    if not opts.quick:
        write_section("checkpointed", "%%checkpointed (benchmarks/bench_checkpointed.py)", body_md,
                      ["ipython", "joblib", "numpy", "pandas"])


if __name__ == "__main__":
    main()
