"""How records reach ``<home>/logs/resman.log``: context fields, two formats, and a
rotating file that several processes can share.

Text lines read well and still parse back (:mod:`.reader`)::

    2026-05-09 07:35:25.123 INFO jupyter_resman.cache [4242] evicted 3 entries  {"step": "fit"}

The optional JSON object at the end of the first line holds the context
fields and ``extra=`` values. JSON lines (``format="json"``) carry the same
keys — ``time``, ``level``, ``logger``, ``pid``, ``message`` and the fields —
one object per line, written by ``python-json-logger``.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import logging
import logging.handlers
import os
import time
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["ContextFilter", "SharedRotatingFileHandler", "TextFormatter", "json_formatter",
           "log_context", "record_fields"]

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "jupyter_resman_log_context", default=types.MappingProxyType({}))

# Attributes every LogRecord has; anything else on a record is a field (extra= or context).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


class _LogContext:
    """The context manager :func:`log_context` returns (a class: timers enter one per call)."""

    __slots__ = ("_token", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> Mapping[str, Any]:
        merged = {**_context.get(), **self.fields}
        self._token = _context.set(merged)
        return merged

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def log_context(**fields: Any) -> _LogContext:
    """``with log_context(step="fit"):`` adds ``fields`` to every record logged in the
    block (this thread or task).

    Blocks nest; an inner field of the same name wins until the inner block ends.
    """
    bad = sorted(k for k in fields if k in _STANDARD or k.startswith("_"))
    if bad:
        raise ValueError(f"log context field names {bad} clash with LogRecord attributes; "
                         "choose other names (e.g. step, dataset, run)")
    return _LogContext(fields)


def current_context() -> Mapping[str, Any]:
    return _context.get()


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context and ``extra=`` fields of ``record``."""
    return {k: v for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")}


class ContextFilter(logging.Filter):
    """Copies the current :func:`log_context` fields onto each record (never overwriting)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


# One encoder for every record: json.dumps with options builds a new one per call.
_FIELDS_JSON = json.JSONEncoder(default=str, ensure_ascii=False, sort_keys=True)
_second_cache: tuple[int, str] = (-1, "")


def _iso_time(record: logging.LogRecord) -> str:
    """``2026-05-09 07:35:25.123`` in local time (the seconds part cached: records come in bursts)."""
    global _second_cache
    second = int(record.created)
    cached_second, text = _second_cache
    if second != cached_second:
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        _second_cache = (second, text)
    return f"{text}.{int(record.msecs):03d}"


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [pid] message  {fields}``, then any traceback lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        first, newline, rest = record.message.partition("\n")
        fields = record_fields(record)
        if fields:
            first += "  " + _FIELDS_JSON.encode(fields)
        text = (f"{_iso_time(record)} {record.levelname} {record.name} [{record.process}] "
                f"{first}{newline}{rest}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def json_formatter() -> logging.Formatter:
    """One JSON object per record, through python-json-logger (>= 3.1)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    class _Formatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            return _iso_time(record)

    return _Formatter(
        "{asctime}{levelname}{name}{process}{message}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                       "process": "pid"},
        reserved_attrs=[*RESERVED_ATTRS, "taskName"],
        json_default=str, json_ensure_ascii=False,
    )


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that many processes (kernels, the server) append to.

    The stdlib handler assumes it is alone: two processes would both rename
    the file, and one would keep writing into the renamed copy forever. Here
    rotation happens under an exclusive ``flock`` on ``<file>.lock``, after
    re-checking the size (another process may just have rotated), and every
    process notices a rotated file by its inode and reopens the new one.
    Records are appended with ``O_APPEND``, so lines of different processes
    do not interleave.
    """

    def __init__(self, filename: str | os.PathLike[str], *, max_bytes: int,
                 backup_count: int) -> None:
        super().__init__(os.fspath(filename), mode="a", maxBytes=max_bytes,
                         backupCount=backup_count, encoding="utf-8", delay=True)
        self._lock_path = self.baseFilename + ".lock"

    def _open(self) -> Any:
        # The file holds whatever the notebook logs: keep it private like the rest of the home.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def _rotated_elsewhere(self) -> bool:
        if self.stream is None:
            return False
        try:
            on_disk = os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            return True
        return on_disk != os.fstat(self.stream.fileno()).st_ino

    def _reopen(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(OSError):
                self.stream.close()
        self.stream = self._open()

    def emit(self, record: logging.LogRecord) -> None:
        # The stdlib formats each record twice (once to measure it for rollover);
        # formatting once and checking the size on the open descriptor halves the cost.
        try:
            line = self.format(record) + self.terminator
            if self._should_roll(len(line.encode("utf-8"))):
                self.doRollover()
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(line)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _should_roll(self, nbytes: int) -> bool:
        if self.stream is None:
            self.stream = self._open()
        elif self._rotated_elsewhere():
            self._reopen()
        if self.maxBytes <= 0:
            return False
        size = os.fstat(self.stream.fileno()).st_size
        # Never rotate an empty file, however long the record.
        return size > 0 and size + nbytes > self.maxBytes

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        return self._should_roll(len((self.format(record) + self.terminator).encode("utf-8")))

    def doRollover(self) -> None:
        fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self._rotated_elsewhere():
                self._reopen()  # someone rotated while we waited for the lock
                return
            super().doRollover()
        finally:
            os.close(fd)  # closing releases the flock
