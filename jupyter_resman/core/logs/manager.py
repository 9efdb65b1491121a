"""``session.log``: stdlib logging for the ``jupyter_resman`` loggers, set up once.

>>> import tempfile, logging
>>> from jupyter_resman.core import Session
>>> with Session(home=tempfile.mkdtemp()) as s:
...     with s.log.context(step="validate"):
...         logging.getLogger("jupyter_resman.demo").warning("3 rows dropped")
...     entry = s.log.tail(1)[0]
>>> entry.level, entry.message, entry.fields
('WARNING', '3 rows dropped', {'step': 'validate'})

Every core module logs to ``logging.getLogger("jupyter_resman.<part>")``;
a LogManager adds one handler to the ``jupyter_resman`` logger writing
``<home>/logs/resman.log`` (rotated by size, shared safely by every kernel
of the home). Two sessions on the same home share that handler; closing the
last one removes it and puts the logger's level back, so sessions created
and closed again never stack duplicate handlers.

Defaults come from the environment: ``RESMAN_LOG_LEVEL`` (``INFO``),
``RESMAN_LOG_FORMAT`` (``text`` or ``json``), ``RESMAN_LOG_MAX_SIZE``
(``5MB``) and ``RESMAN_LOG_BACKUPS`` (``3``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..settings import parse_size
from .handlers import (
    ContextFilter,
    SharedRotatingFileHandler,
    TextFormatter,
    json_formatter,
    log_context,
)
from .reader import LogEntry, read_log
from .timing import Timer, Timings, timed_decorator

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["LogManager"]

ROOT = "jupyter_resman"
FILE_NAME = "resman.log"
FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass
class _Shared:
    handler: SharedRotatingFileHandler
    users: int = 0


_registry_lock = threading.Lock()
_shared: dict[str, _Shared] = {}
_saved_level: int | None = None  # the level the root logger had before we touched it


def _apply_level() -> None:
    """Under the registry lock: let through what the most verbose handler wants."""
    global _saved_level
    logger = logging.getLogger(ROOT)
    if not _shared:
        if _saved_level is not None:
            logger.setLevel(_saved_level)
            _saved_level = None
        return
    if _saved_level is None:
        _saved_level = logger.level
    wanted = min(shared.handler.level for shared in _shared.values())
    logger.setLevel(wanted if _saved_level == logging.NOTSET else min(wanted, _saved_level))


class LogManager:
    """Logging of one session: the file, its format and level, context, timings.

    Arguments override the ``RESMAN_LOG_*`` environment; ``path`` defaults to
    ``<home>/logs/resman.log``. ``slow_s`` is the duration from which timed
    operations are logged at INFO rather than DEBUG.
    """

    def __init__(self, session: Session | None = None, *, path: str | os.PathLike[str] | None = None,
                 level: str | int | None = None, format: str | None = None,
                 max_bytes: int | str | None = None, backups: int | None = None,
                 slow_s: float = 1.0, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        if path is None:
            if session is None:
                raise TypeError("LogManager needs a session or a path=")
            path = session.home.logs_dir / FILE_NAME
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.slow_s = float(slow_s)
        self.timings = Timings()
        self._closed = False
        level_no = _parse_level(level if level is not None else env.get("RESMAN_LOG_LEVEL") or
                                "INFO", "RESMAN_LOG_LEVEL" if level is None else "level")
        fmt = _parse_format(format if format is not None else env.get("RESMAN_LOG_FORMAT") or
                            "text", "RESMAN_LOG_FORMAT" if format is None else "format")
        size = parse_size(max_bytes if max_bytes is not None else
                          env.get("RESMAN_LOG_MAX_SIZE") or "5MB",
                          name="RESMAN_LOG_MAX_SIZE" if max_bytes is None else "max_bytes")
        count = _parse_backups(backups if backups is not None else
                               env.get("RESMAN_LOG_BACKUPS") or 3,
                               "RESMAN_LOG_BACKUPS" if backups is None else "backups")
        self._key = os.path.realpath(self.path)
        with _registry_lock:
            shared = _shared.get(self._key)
            if shared is None:
                handler = SharedRotatingFileHandler(self.path, max_bytes=size, backup_count=count)
                handler.addFilter(ContextFilter())
                _configure(handler, level_no, fmt)
                shared = _shared[self._key] = _Shared(handler)
                logging.getLogger(ROOT).addHandler(handler)
            shared.users += 1
            self._handler = shared.handler
            _apply_level()

    # -- configuration ------------------------------------------------------------

    @property
    def level(self) -> str:
        return logging.getLevelName(self._handler.level)

    @property
    def format(self) -> str:
        return "json" if not isinstance(self._handler.formatter, TextFormatter) else "text"

    def configure(self, *, level: str | int | None = None, format: str | None = None,
                  max_bytes: int | str | None = None, backups: int | None = None) -> None:
        """Change level, format (``"text"``/``"json"``) or rotation of the log file.

        The file is shared by every session of this home in the process, so
        the change applies to all of them.
        """
        self._check_open()
        handler = self._handler
        with _registry_lock:
            handler.acquire()
            try:
                _configure(handler,
                           _parse_level(level, "level") if level is not None else handler.level,
                           _parse_format(format, "format") if format is not None else self.format)
                if max_bytes is not None:
                    handler.maxBytes = parse_size(max_bytes, name="max_bytes")
                if backups is not None:
                    handler.backupCount = _parse_backups(backups, "backups")
            finally:
                handler.release()
            _apply_level()

    # -- writing ------------------------------------------------------------------

    @staticmethod
    def logger(name: str | None = None) -> logging.Logger:
        """``jupyter_resman`` or ``jupyter_resman.<name>``: log here to reach the file."""
        return logging.getLogger(ROOT if not name else f"{ROOT}.{name}")

    context = staticmethod(log_context)

    def timer(self, operation: str, *, slow_s: float | None = None, **fields: Any) -> Timer:
        """``with session.log.timer("fit", model="rf"):`` — time, log and tabulate a block.

        ``fields`` become context of the records inside and of the timing record;
        ``slow_s`` overrides the session's threshold for logging at INFO.
        """
        return Timer(self.timings, operation, slow_s=self.slow_s if slow_s is None else slow_s,
                     **fields)

    def timed(self, fn: Callable[..., Any] | str | None = None, *,
              name: str | None = None) -> Any:
        """Decorator timing every call: ``@session.log.timed`` or ``@session.log.timed("load")``."""
        if isinstance(fn, str):
            name, fn = fn, None
        if fn is None:
            return lambda f: timed_decorator(self.timer, f, name)
        return timed_decorator(self.timer, fn, name)

    def slowest(self, n: int | None = 10, *, by: str = "max_s") -> Any:
        """The operations this process timed, slowest first, as a DataFrame."""
        return self.timings.table(n, by=by)

    def flush(self) -> None:
        self._handler.flush()

    # -- reading ------------------------------------------------------------------

    def tail(self, lines: int | None = 50, *, level: str | int | None = None,
             logger: str | None = None) -> list[LogEntry]:
        """The last ``lines`` records of the file (every process's), oldest first."""
        self.flush()
        return read_log(self.path, lines=lines, level=level, logger=logger)

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Detach from the shared handler; the last user removes and closes it. Idempotent."""
        with _registry_lock:
            if self._closed:
                return
            self._closed = True
            shared = _shared.get(self._key)
            if shared is not None:
                shared.users -= 1
                if shared.users <= 0:
                    del _shared[self._key]
                    logging.getLogger(ROOT).removeHandler(shared.handler)
                    shared.handler.close()
            _apply_level()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this LogManager is closed; use a new session's .log")

    def __repr__(self) -> str:
        return f"LogManager({str(self.path)!r}, level={self.level}, format={self.format})"


def _configure(handler: logging.Handler, level: int, fmt: str) -> None:
    handler.setLevel(level)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())


def _parse_level(value: str | int, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    if text not in LEVELS:
        raise ConfigError(f"{name}={value!r} is not a log level; use one of "
                          f"{', '.join(LEVELS)}, e.g. {name}=INFO")
    return logging.getLevelName(text)


def _parse_format(value: str, name: str) -> str:
    text = str(value).strip().lower()
    if text not in FORMATS:
        raise ConfigError(f"{name}={value!r} is not a log format; use text or json")
    return text


def _parse_backups(value: int | str, name: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if isinstance(value, bool) or count < 1:
        raise ConfigError(f"{name}={value!r}: keep at least 1 rotated file, e.g. {name}=3")
    return count
