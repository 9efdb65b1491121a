"""``resman log [--level WARNING] [--lines 50] [--logger cache] [--slowest [N]]``: the log's tail.

Reads ``<home>/logs/resman.log`` (and its rotated copies when needed), which
every kernel and the Jupyter server of the home write to; text and JSON
lines are both understood.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd

from ..core.logs import read_log, slowest_in_log
from ..core.logs.manager import FILE_NAME, LEVELS
from .output import Output


def register(sub: Any) -> None:
    log = sub.add_parser("log", help="the tail of the log file, filterable by level")
    log.add_argument("--level", "-l", type=str.upper, choices=LEVELS, metavar="LEVEL",
                     help="only records at this level or above: " + ", ".join(LEVELS))
    log.add_argument("--lines", "-n", type=_count, default=50, metavar="N",
                     help="how many records to show (default 50)")
    log.add_argument("--logger", metavar="NAME",
                     help="only this part, e.g. cache, monitor, resources, timing")
    log.add_argument("--slowest", type=_count, nargs="?", const=10, metavar="N",
                     help="instead, the N slowest timed operations (default 10)")
    log.set_defaults(handler=log_command)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("use a number of 1 or more, e.g. 50")
    return value


def log_command(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    path = session.home.logs_dir / FILE_NAME
    if not path.exists():
        return Output(message=f"No log yet at {path}. A kernel with `%load_ext jupyter_resman` "
                              "(or any use of session.log) starts writing it.", data=[])
    if args.slowest is not None:
        return _slowest(path, args.slowest)
    entries = read_log(path, lines=args.lines, level=args.level, logger=args.logger)
    table = pd.DataFrame({
        "time": [e.time for e in entries],
        "level": [e.level for e in entries],
        "logger": [_short(e.logger) for e in entries],
        "pid": [e.pid if e.pid is not None else "" for e in entries],
        "message": [_message(e.message, e.fields) for e in entries],
    }, columns=["time", "level", "logger", "pid", "message"])
    filters = [f for f in (f"level >= {args.level}" if args.level else "",
                           f"logger {args.logger}" if args.logger else "") if f]
    title = f"Last {len(entries)} log record(s) of {path}" + (
        f" ({', '.join(filters)})" if filters else "")
    return Output(title=title, table=table, data=[e.to_dict() for e in entries])


def _slowest(path: Any, n: int) -> Output:
    frame = slowest_in_log(path, n)
    table = pd.DataFrame({
        "operation": frame["operation"], "calls": frame["calls"],
        "failures": frame["failures"],
        "max": frame["max_s"].map(_seconds), "mean": frame["mean_s"].map(_seconds),
        "total": frame["total_s"].map(_seconds),
    }, columns=["operation", "calls", "failures", "max", "mean", "total"])
    message = None if len(frame) else ("No timed operations in the log yet. Time code with "
                                       "`with session.log.timer('name'):`; operations under "
                                       "the slow threshold are logged at DEBUG only.")
    return Output(title=f"Slowest operations in {path}", table=table, message=message,
                  data=frame.to_dict(orient="records"))


def _short(logger: str) -> str:
    return logger.removeprefix("jupyter_resman.")


def _message(message: str, fields: dict[str, Any]) -> str:
    first = message.split("\n", 1)[0]
    if "\n" in message:
        first += " […]"
    if fields:
        first += "  " + " ".join(f"{k}={json.dumps(v, default=str, ensure_ascii=False)}"
                                 if not isinstance(v, str) else f"{k}={v}"
                                 for k, v in fields.items())
    return first


def _seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{s / 60:.1f} min"
