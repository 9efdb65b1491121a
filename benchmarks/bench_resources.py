"""What resource pooling and structured logging cost, side by side with the bare libraries.

Run: ``python benchmarks/bench_resources.py`` (under a minute; ``--quick`` for
a smoke run that does not touch RESULTS.md).

1. **Acquire + release a SQLite connection**: ``session.resources.use("db")``
   (owner tracking, lease, validation) against SQLAlchemy's own
   ``engine.connect()`` / ``close()`` from its ``QueuePool``, the peer. With
   ``ping=True`` each reuse runs the dialect's ping (like ``pool_pre_ping``),
   so the peer for that row is SQLAlchemy with ``pool_pre_ping=True``.
   Target: our overhead ≤ 2× the peer's.
2. **Eight threads, pool of three**: 8 × 500 acquire/release cycles through
   our pool against the same through SQLAlchemy's QueuePool (``pool_size=3,
   max_overflow=0``). Target ≤ 2×.
3. **One log record to a file**: our handler (context filter, text format
   with fields, multi-process-safe rotation check) against the stdlib
   ``RotatingFileHandler`` with a plain ``Formatter``; and JSON lines, ours
   against ``python-json-logger``'s formatter on the stdlib handler.
   Target ≤ 2× — a log line must stay cheap enough to leave on.
4. **A timed block** (``with session.log.timer(...)``, fast path logged at
   DEBUG, i.e. filtered out) against two ``perf_counter`` calls and a dict
   update. Reported, no target: it is microseconds either way.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import fmt_time, median_time, table, write_section

from jupyter_resman.core import Session
from jupyter_resman.core.logs import LogManager
from jupyter_resman.core.resources import PoolConfig, SQLProvider

TARGET = 2.0


def bench_acquire(tmp: Path, number: int, repeat: int) -> list[list[object]]:
    url = f"sqlite:///{tmp / 'bench.db'}"
    rows = []
    for ping in (False, True):
        peer = sa.create_engine(url, pool_pre_ping=ping)
        with Session(home=tmp / f"home-{ping}") as session:
            session.resources.register_provider("db", SQLProvider(url, ping=ping),
                                                PoolConfig(max_size=5))

            def ours() -> None:
                with session.resources.use("db", owner="bench"):
                    pass

            def theirs(peer: sa.Engine = peer) -> None:
                with peer.connect():
                    pass

            ours(), theirs()  # warm both pools
            t_ours = median_time(ours, number=number, repeat=repeat)
            t_peer = median_time(theirs, number=number, repeat=repeat)
        peer.dispose()
        ratio = t_ours / t_peer
        rows.append([f"acquire+release, ping={'on' if ping else 'off'}", fmt_time(t_ours),
                     fmt_time(t_peer), f"{ratio:.2f}×", _verdict(ratio)])
    return rows


def _threads(fn, threads: int, cycles: int) -> float:
    def work() -> None:
        for _ in range(cycles):
            fn()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def bench_threads(tmp: Path, cycles: int, repeat: int) -> list[list[object]]:
    url = f"sqlite:///{tmp / 'bench.db'}"
    peer = sa.create_engine(url, pool_size=3, max_overflow=0, pool_timeout=60)
    with Session(home=tmp / "home-threads") as session:
        session.resources.register_provider(
            "db", SQLProvider(url, ping=False), PoolConfig(max_size=3, acquire_timeout=60))

        def ours() -> None:
            with session.resources.use("db", owner="bench"):
                pass

        def theirs() -> None:
            with peer.connect():
                pass

        t_ours = sorted(_threads(ours, 8, cycles) for _ in range(repeat))[repeat // 2]
        t_peer = sorted(_threads(theirs, 8, cycles) for _ in range(repeat))[repeat // 2]
    peer.dispose()
    n = 8 * cycles
    ratio = t_ours / t_peer
    return [[f"8 threads, pool of 3 (per cycle, {n} cycles)", fmt_time(t_ours / n),
             fmt_time(t_peer / n), f"{ratio:.2f}×", _verdict(ratio)]]


def bench_logging(tmp: Path, number: int, repeat: int) -> list[list[object]]:
    from pythonjsonlogger.json import JsonFormatter

    rows = []
    for fmt in ("text", "json"):
        ours_path, peer_path = tmp / f"ours-{fmt}.log", tmp / f"peer-{fmt}.log"
        manager = LogManager(path=ours_path, format=fmt, max_bytes="50MB", backups=2,
                             environ={})
        ours_logger = logging.getLogger("jupyter_resman.bench")
        peer_handler = logging.handlers.RotatingFileHandler(peer_path, maxBytes=50_000_000,
                                                            backupCount=2)
        peer_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
            if fmt == "text" else
            JsonFormatter("{asctime}{levelname}{name}{process}{message}", style="{"))
        peer_logger = logging.getLogger("bench_peer")
        peer_logger.propagate = False
        peer_logger.setLevel(logging.INFO)
        peer_logger.addHandler(peer_handler)
        try:
            with manager.context(step="bench"):
                t_ours = median_time(lambda log=ours_logger: log.info("evicted %d entries", 3),
                                     number=number, repeat=repeat)
                t_peer = median_time(lambda log=peer_logger: log.info("evicted %d entries", 3,
                                                                      extra={"step": "bench"}),
                                     number=number, repeat=repeat)
        finally:
            peer_logger.removeHandler(peer_handler)
            peer_handler.close()
            manager.close()
        ratio = t_ours / t_peer
        rows.append([f"one log record, {fmt}", fmt_time(t_ours), fmt_time(t_peer),
                     f"{ratio:.2f}×", _verdict(ratio)])
    return rows


def bench_timer(tmp: Path, number: int, repeat: int) -> list[list[object]]:
    manager = LogManager(path=tmp / "timer.log", environ={})
    totals: dict[str, float] = {}
    try:
        def ours() -> None:
            with manager.timer("op"):
                pass

        def bare() -> None:
            start = time.perf_counter()
            totals["op"] = totals.get("op", 0.0) + time.perf_counter() - start

        t_ours = median_time(ours, number=number, repeat=repeat)
        t_peer = median_time(bare, number=number, repeat=repeat)
    finally:
        manager.close()
    return [["timed block (fast, not logged)", fmt_time(t_ours), fmt_time(t_peer),
             f"{t_ours / t_peer:.1f}×", "reported only"]]


def _verdict(ratio: float) -> str:
    return "met" if ratio <= TARGET else f"NOT met (target ≤ {TARGET:g}×)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; RESULTS.md untouched")
    args = parser.parse_args()
    number, repeat, cycles = (50, 3, 50) if args.quick else (2000, 7, 500)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = (bench_acquire(tmp, number, repeat) + bench_threads(tmp, cycles, repeat)
                + bench_logging(tmp, number, repeat) + bench_timer(tmp, number * 5, repeat))
    body = table(["operation", "jupyter_resman", "peer", "ratio", "target ≤ 2×"], rows)
    body += (
        "\n\nPeers: SQLAlchemy's QueuePool (`engine.connect()`/`close()`, with "
        "`pool_pre_ping` for the ping row), the stdlib `RotatingFileHandler` with a plain "
        "`Formatter` or python-json-logger's `JsonFormatter`, and bare `perf_counter` calls. "
        "Our acquire adds owner tracking, a lease with its call site (for leak reports) and, "
        "with ping, the same dialect ping; our log record adds context fields and the "
        "inode/size checks that let several processes rotate one file safely.\n")
    print(body)
    if not args.quick:
        write_section("resources", "Resource pools and structured logging", body,
                      packages=["SQLAlchemy", "python-json-logger"])


if __name__ == "__main__":
    main()
