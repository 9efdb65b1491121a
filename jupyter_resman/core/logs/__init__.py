"""Structured logging and timing for a session (``session.log``).

:mod:`.manager` (:class:`LogManager`, the one handler per log file),
:mod:`.handlers` (context fields, text and JSON formats, the shared rotating
file), :mod:`.timing` (timer, decorator, slowest-operations table) and
:mod:`.reader` (the tail of the file, read back as entries).
"""

from __future__ import annotations

from .handlers import log_context
from .manager import LogManager
from .reader import LogEntry, read_log, slowest_in_log
from .timing import Timer, Timings

__all__ = ["LogEntry", "LogManager", "Timer", "Timings", "log_context", "read_log",
           "slowest_in_log"]
