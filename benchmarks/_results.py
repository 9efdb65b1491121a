"""Shared helpers of the benchmark scripts: timing, machine facts, RESULTS.md sections.

Each script owns one section of ``benchmarks/RESULTS.md`` between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers and rewrites only
that section, so scripts can be re-run one at a time.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib.metadata
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Figures written by the scripts in this folder (`python benchmarks/<script>.py`).\n"
    "Each section names the date, machine and versions of its run. The machine is\n"
    "shared and noisy: figures are medians of repeated runs, and peers run in the\n"
    "same process and run as ours, so ratios are the figures to trust.\n"
)


def median_time(fn: Callable[[], object], *, repeat: int = 7, number: int = 1,
                setup: Callable[[], object] | None = None) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
        finally:
            gc.enable()
    return statistics.median(times)


def versions(packages: Iterable[str]) -> str:
    out = []
    for name in packages:
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
            f"{mem:.0f} GiB RAM, Python {platform.python_version()}")


def fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str, packages: Iterable[str] = ()) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    pkgs = versions(["jupyter_resman", *packages])
    section = (f"<!-- {name}:start -->\n## {title}\n\n"
               f"Run {stamp} on {machine()}.  \nVersions: {pkgs}.\n\n{body.strip()}\n"
               f"<!-- {name}:end -->")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text if text.endswith("\n") else text + "\n")
