"""Reading the log back: the tail of ``resman.log`` (and its rotated copies) as entries.

Both formats parse, even mixed in one file (the format was switched): a line
starting with ``{`` is a JSON record, anything else a text record or a
continuation (traceback) line of the one before it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .timing import COLUMNS

__all__ = ["LogEntry", "read_log", "slowest_in_log"]

_TEXT = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ([A-Z]+|Level \d+) (\S+) \[(\d+)\] ?(.*)$")
_JSON_KEYS = ("time", "level", "logger", "pid", "message")


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One record as read back from the file."""

    time: str
    level: str
    logger: str
    pid: int | None
    message: str
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def levelno(self) -> int:
        return level_number(self.level)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def level_number(level: str | int) -> int:
    """``"WARNING"`` → 30; unknown names count as 0."""
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    return value if isinstance(value, int) else 0


def _split_fields(first_line: str) -> tuple[str, dict[str, Any]]:
    """Separate ``message  {"k": v}`` into the message and its fields."""
    if not first_line.endswith("}"):
        return first_line, {}
    start = len(first_line)
    while True:
        start = first_line.rfind("  {", 0, start)
        if start < 0:
            return first_line, {}
        try:
            fields = json.loads(first_line[start + 2:])
        except ValueError:
            continue
        if isinstance(fields, dict):
            return first_line[:start], fields


def parse_lines(lines: Iterable[str]) -> list[LogEntry]:
    """Entries of one file's lines, oldest first."""
    entries: list[LogEntry] = []
    extra_lines: list[str] = []

    def finish() -> None:
        if extra_lines and entries:
            last = entries[-1]
            entries[-1] = dataclasses.replace(
                last, message=last.message + "\n" + "\n".join(extra_lines))
        extra_lines.clear()

    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                data = None  # a torn or foreign line: not a record of ours
            if isinstance(data, dict):
                finish()
                entries.append(_from_json(data))
                continue
        match = _TEXT.match(line)
        if match is None:
            if entries:
                extra_lines.append(line)
            continue
        finish()
        when, level, logger, pid, rest = match.groups()
        message, fields = _split_fields(rest)
        entries.append(LogEntry(when, level, logger, int(pid), message, fields))
    finish()
    return entries


def _from_json(data: dict[str, Any]) -> LogEntry:
    fields = {k: v for k, v in data.items() if k not in _JSON_KEYS}
    message = str(data.get("message", ""))
    for key in ("exc_info", "stack_info"):
        if fields.get(key):
            message += "\n" + str(fields.pop(key))
        else:
            fields.pop(key, None)
    pid = data.get("pid")
    return LogEntry(str(data.get("time", "")), str(data.get("level", "")),
                    str(data.get("logger", "")), pid if isinstance(pid, int) else None,
                    message, fields)


def log_files(path: Path) -> list[Path]:
    """``resman.log``, ``resman.log.1``, ``resman.log.2`` … that exist, newest first."""
    files = [path] if path.exists() else []
    i = 1
    while True:
        older = path.with_name(f"{path.name}.{i}")
        if not older.exists():
            return files
        files.append(older)
        i += 1


def read_log(path: Path, *, lines: int | None = 50, level: str | int | None = None,
             logger: str | None = None) -> list[LogEntry]:
    """The last ``lines`` entries (oldest first) at ``level`` or above, of ``logger``
    and its children; rotated copies are read only when the newest file has too few.

    ``logger`` may be given without the ``jupyter_resman.`` prefix: ``"cache"``.
    """
    threshold = level_number(level) if level is not None else 0
    prefix = None
    if logger:
        prefix = logger if logger.startswith("jupyter_resman") else f"jupyter_resman.{logger}"
    found: list[LogEntry] = []
    for file in log_files(Path(path)):
        with open(file, encoding="utf-8", errors="replace") as f:
            entries = parse_lines(f)
        keep = [e for e in entries if e.levelno >= threshold
                and (prefix is None or e.logger == prefix or e.logger.startswith(prefix + "."))]
        found = keep + found
        if lines is not None and len(found) >= lines:
            break
    if lines is None:
        return found
    return found[max(0, len(found) - lines):] if lines > 0 else []


def slowest_in_log(path: Path, n: int | None = 10, *, by: str = "max_s") -> Any:
    """The "slowest operations" table from timing records of every process in the log."""
    import pandas as pd

    rows: dict[str, list[float]] = {}
    for entry in read_log(path, lines=None):
        op, seconds = entry.fields.get("operation"), entry.fields.get("duration_s")
        if op is None or not isinstance(seconds, (int, float)) or entry.logger != \
                "jupyter_resman.timing":
            continue
        row = rows.setdefault(str(op), [0, 0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += 0 if entry.fields.get("ok", True) else 1
        row[2] += seconds
        row[3] = max(row[3], seconds)
        row[4] = seconds
    frame = pd.DataFrame([[op, int(c), int(f), t, t / c, m, last]
                          for op, (c, f, t, m, last) in rows.items()], columns=COLUMNS)
    frame = frame.sort_values(by, ascending=False, kind="stable").reset_index(drop=True)
    return frame.head(n) if n is not None else frame
