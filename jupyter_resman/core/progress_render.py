"""Drawing progress snapshots: pure text formatting, console and silent renderers.

A progress tree (:mod:`jupyter_resman.core.progress`) owns the numbers; this
module only turns its :meth:`~jupyter_resman.core.progress.Progress.snapshot`
(a plain, JSON-able dict) into something to look at. The same snapshot feeds
the console, the notebook widget and the JupyterLab sidebar, so all of them
agree on what a bar says.

:func:`format_line` is a pure function of one snapshot node:

>>> snap = {"desc": "train", "n": 30, "total": 120, "unit": "it", "rate": 2.5,
...         "elapsed": 12.0, "eta": 36.0, "status": "running", "percent": 25.0}
>>> format_line(snap, width=60, ascii=True)
'train:  25%|####............| 30/120 [00:12<00:36, 2.50it/s]'
>>> format_line({**snap, "total": None, "status": "paused"}, width=60)
'train: 30it [00:12, 2.50it/s] (paused)'

Renderers draw a whole tree (the root's snapshot, children included). Which
one a new tree gets is pluggable: front ends (the notebook widget) register a
factory with a ``detect`` callable, and :func:`make_renderer` picks, in order,
the ``renderer=`` argument, :func:`set_default_renderer`, the
``RESMAN_PROGRESS`` environment variable (``console``, ``silent``, ``auto`` or
a registered name), then the first registered detector that says yes, then the
console (or silence when there is no ``sys.stderr``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

from .errors import ConfigError
from .settings import format_size

__all__ = [
    "ConsoleRenderer",
    "Renderer",
    "SilentRenderer",
    "format_compact",
    "format_line",
    "format_rate",
    "format_time",
    "format_tree",
    "make_renderer",
    "register_renderer",
    "renderer_names",
    "set_default_renderer",
    "unregister_renderer",
]

log = logging.getLogger("jupyter_resman.progress")

_BLOCKS = " ▏▎▍▌▋▊▉█"
_ENV_VAR = "RESMAN_PROGRESS"

Snapshot = Mapping[str, Any]


# -- pure formatting -------------------------------------------------------------


def format_time(seconds: float | None) -> str:
    """``75.2`` → ``'01:15'``, ``3725`` → ``'1:02:05'``, ``None`` → ``'?'``.

    >>> format_time(5), format_time(3725), format_time(90061)
    ('00:05', '1:02:05', '1d 1:01:01')
    """
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _count(n: float | None, unit: str) -> str:
    if n is None:
        return "?"
    if unit == "B":  # bytes read the way people expect: 1.5 MB, not 1500000B
        return format_size(n)
    if isinstance(n, float) and not n.is_integer():
        return f"{n:.2f}"
    return str(int(n))


def format_rate(rate: float | None, unit: str = "it") -> str:
    """Items per second, or seconds per item when slower than one a second.

    >>> format_rate(12.345), format_rate(0.25), format_rate(None), format_rate(2e6, "B")
    ('12.35it/s', '4.00s/it', '?it/s', '2.0 MB/s')
    """
    if rate is None or math.isnan(rate):
        return f"?{unit}/s"
    if unit == "B":
        return f"{format_size(rate)}/s"
    if 0 < rate < 1:
        return f"{1 / rate:.2f}s/{unit}"
    return f"{rate:.2f}{unit}/s"


def _status_suffix(node: Snapshot) -> str:
    status = node.get("status")
    if status == "paused":
        return " (paused)"
    if status == "failed":
        error = node.get("error")
        return f" (failed: {error})" if error else " (failed)"
    return ""


def _bar(fraction: float, width: int, ascii: bool) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    if ascii:
        full = int(fraction * width)
        return "#" * full + "." * (width - full)
    eighths = int(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = _BLOCKS[-1] * full
    if full < width:
        text += _BLOCKS[part] + " " * (width - full - 1)
    return text


def format_line(snapshot: Snapshot, width: int = 80, *, ascii: bool = False) -> str:
    """One line of text for one node of a snapshot (its children are ignored).

    A pure function of the snapshot's values, so a snapshot that went through
    JSON (the live store, the REST API) formats to the very same line. With a
    total the line has a bar sized to fill ``width``; without one it shows
    the count, elapsed time and rate.
    """
    unit = str(snapshot.get("unit") or "it")
    desc = snapshot.get("desc")
    prefix = f"{desc}: " if desc else ""
    n, total = snapshot.get("n", 0), snapshot.get("total")
    rate = format_rate(snapshot.get("rate"), unit)
    elapsed = format_time(snapshot.get("elapsed"))
    suffix = _status_suffix(snapshot)
    if total is None:
        count = _count(n, unit) if unit == "B" else f"{_count(n, unit)}{unit}"
        return _fit(f"{prefix}{count} [{elapsed}, {rate}]{suffix}", width)
    percent = snapshot.get("percent")
    if percent is None:
        percent = 100.0 * n / total if total else 100.0
    eta = format_time(snapshot.get("eta"))
    head = f"{prefix}{percent:3.0f}%"
    tail = f" {_count(n, unit)}/{_count(total, unit)} [{elapsed}<{eta}, {rate}]{suffix}"
    room = width - len(head) - len(tail) - 2
    if room >= 4:
        return f"{head}|{_bar(percent / 100.0, room, ascii)}|{tail}"
    return _fit(f"{head}{tail}", width)


def _fit(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    return line[: max(width - 1, 0)] + "…"


def format_tree(snapshot: Snapshot, width: int = 80, *, ascii: bool = False) -> list[str]:
    """Every node of a snapshot, one line each, children indented under parents.

    >>> tree = {"desc": "outer", "n": 1, "total": 2, "status": "running", "children": [
    ...     {"desc": "inner", "n": 5, "total": None, "status": "running", "children": []}]}
    >>> for line in format_tree(tree, width=50, ascii=True): print(line)
    outer:  50%|##########..........| 1/2 [?<?, ?it/s]
      inner: 5it [?, ?it/s]
    """
    lines: list[str] = []

    def walk(node: Snapshot, depth: int) -> None:
        indent = "  " * depth
        lines.append(indent + format_line(node, max(width - len(indent), 20), ascii=ascii))
        for child in node.get("children") or ():
            walk(child, depth + 1)

    walk(snapshot, 0)
    return lines


def format_compact(snapshot: Snapshot, width: int = 80, *, ascii: bool = False) -> str:
    """A whole tree on one line: the path of running bars, the deepest one in full.

    For outputs that cannot move the cursor up (log files, a notebook without
    widgets): ``outer 3/10 › inner:  45%|███▌    | 45/100 [...]``.
    """
    path = [snapshot]
    while True:
        running = [c for c in path[-1].get("children") or () if c.get("status") in
                   ("running", "paused")]
        if not running:
            break
        path.append(running[-1])  # the newest running child is the one moving
    if len(path) == 1:
        return format_line(snapshot, width, ascii=ascii)
    parts = []
    for node in path[:-1]:
        unit = str(node.get("unit") or "it")
        count = _count(node.get("n", 0), unit)
        if node.get("total") is not None:
            count += f"/{_count(node['total'], unit)}"
        parts.append(f"{node.get('desc') or '…'} {count}")
    head = " › ".join(parts) + " › "
    return _fit(head + format_line(path[-1], max(width - len(head), 30), ascii=ascii), width)


# -- renderers ---------------------------------------------------------------------


@runtime_checkable
class Renderer(Protocol):
    """Something that draws one progress tree.

    ``draw`` gets the root's snapshot at most every ``mininterval`` of the tree
    (the tree throttles; renderers need not); ``close`` gets the final one once.
    """

    def draw(self, snapshot: dict[str, Any]) -> None: ...

    def close(self, snapshot: dict[str, Any]) -> None: ...


class SilentRenderer:
    """Draws nothing (scripts, tests, or ``RESMAN_PROGRESS=silent``)."""

    def draw(self, snapshot: dict[str, Any]) -> None:
        """Do nothing."""

    def close(self, snapshot: dict[str, Any]) -> None:
        """Do nothing."""


# Two trees drawing to one terminal at once must at least not interleave mid-line.
_write_lock = threading.Lock()


class ConsoleRenderer:
    """Text on a stream (``sys.stderr`` by default), redrawn in place.

    On a terminal (``ansi=True``, the default when ``file.isatty()``) the whole
    tree is drawn, one line per bar, and redrawn in place with ANSI cursor
    moves. Elsewhere (files, pipes, a notebook without widgets) the tree is
    one line (:func:`format_compact`) rewritten with ``\\r``, and the full
    tree is written once when it finishes, so logs keep a summary.
    """

    def __init__(
        self, file: IO[str] | None = None, *, ansi: bool | None = None, width: int | None = None,
        ascii: bool = False,
    ) -> None:
        self.file = sys.stderr if file is None else file
        if ansi is None:
            isatty = getattr(self.file, "isatty", None)
            ansi = bool(isatty()) if callable(isatty) else False
        self.ansi = ansi
        self.width = width or shutil.get_terminal_size((80, 24)).columns
        self.ascii = ascii
        self._lines = 0  # lines on screen from the last draw (ANSI mode)
        self._last_len = 0  # length of the last \r line (plain mode)
        self._closed = False

    def draw(self, snapshot: dict[str, Any]) -> None:
        """Redraw the tree in place."""
        if self._closed:
            return
        if self.ansi:
            self._write(self._ansi_frame(format_tree(snapshot, self.width, ascii=self.ascii)))
        else:
            line = format_compact(snapshot, self.width, ascii=self.ascii)
            pad = " " * max(self._last_len - len(line), 0)
            self._last_len = len(line)
            self._write(f"\r{line}{pad}")

    def close(self, snapshot: dict[str, Any]) -> None:
        """Draw the final state and move below it; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        lines = format_tree(snapshot, self.width, ascii=self.ascii)
        if self.ansi:
            self._write(self._ansi_frame(lines) + "\n")
        else:
            pad = " " * max(self._last_len - len(lines[0]), 0)
            self._write("\r" + lines[0] + pad + "".join("\n" + ln for ln in lines[1:]) + "\n")

    def _ansi_frame(self, lines: list[str]) -> str:
        # Go back to the first line we drew, rewrite every line, clear leftovers.
        up = f"\x1b[{self._lines - 1}A" if self._lines > 1 else ""
        frame = up + "\r" + "\n".join(line + "\x1b[K" for line in lines)
        extra = self._lines - len(lines)
        if extra > 0:
            frame += "\n\x1b[K" * extra + f"\x1b[{extra}A"
        self._lines = len(lines)
        return frame

    def _write(self, text: str) -> None:
        with _write_lock:
            self.file.write(text)
            flush = getattr(self.file, "flush", None)
            if flush is not None:
                flush()


# -- the registry -------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    factory: Callable[[], Renderer]
    detect: Callable[[], bool] | None


_registry: dict[str, _Entry] = {
    "console": _Entry(ConsoleRenderer, None),
    "silent": _Entry(SilentRenderer, None),
}
_default: str | None = None
_registry_lock = threading.Lock()


def register_renderer(
    name: str, factory: Callable[[], Renderer], *, detect: Callable[[], bool] | None = None
) -> None:
    """Make ``factory`` available as renderer ``name``.

    ``detect()`` (optional) says whether this renderer fits the current
    process, e.g. "inside a Jupyter kernel with ipywidgets"; detectors run,
    newest registration first, when a tree is created with no renderer
    chosen. Registering an existing name replaces it.
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"a renderer name must be a non-empty string, not {name!r}")
    if name == "auto":
        raise ConfigError("'auto' is reserved (it means: detect); pick another renderer name")
    with _registry_lock:
        _registry.pop(name, None)  # re-insert so the newest detector runs first
        _registry[name] = _Entry(factory, detect)


def unregister_renderer(name: str) -> None:
    """Forget renderer ``name`` (the built-in ``console`` and ``silent`` stay)."""
    global _default
    if name in ("console", "silent"):
        raise ConfigError(f"the built-in renderer {name!r} cannot be unregistered")
    with _registry_lock:
        _registry.pop(name, None)
        if _default == name:
            _default = None


def renderer_names() -> list[str]:
    """Names of every registered renderer."""
    with _registry_lock:
        return list(_registry)


def set_default_renderer(name: str | None) -> str | None:
    """Use renderer ``name`` for new trees (``None``: detect again); returns the previous one."""
    global _default
    if name is not None and name != "auto":
        _check_name(name, source="set_default_renderer()")
    with _registry_lock:
        previous, _default = _default, (None if name == "auto" else name)
    return previous


def _check_name(name: str, *, source: str) -> _Entry:
    entry = _registry.get(name)
    if entry is None:
        raise ConfigError(
            f"{source}: no progress renderer named {name!r}; use one of "
            f"{', '.join(['auto', *_registry])}"
        )
    return entry


def make_renderer(spec: Renderer | str | None = None) -> Renderer:
    """The renderer for a new tree: ``spec`` if given, else the default, else detection."""
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Renderer):
            raise ConfigError(
                f"renderer={spec!r} has no draw(snapshot)/close(snapshot) methods; pass a "
                "renderer object or a name such as 'console' or 'silent'"
            )
        return spec
    name = spec
    source = "renderer="
    if name is None or name == "auto":
        name = _default
        source = "set_default_renderer()"
    if name is None:
        env = os.environ.get(_ENV_VAR, "").strip().lower()
        if env and env != "auto":
            name, source = env, f"{_ENV_VAR}={env}"
    if name is not None and name != "auto":
        with _registry_lock:
            entry = _check_name(name, source=source)
        return entry.factory()
    return _detect()


def _detect() -> Renderer:
    with _registry_lock:
        entries = list(_registry.items())
    for name, entry in reversed(entries):
        if entry.detect is None:
            continue
        try:
            fits = entry.detect()
        except Exception:  # a broken detector must not break every loop; say so and move on
            log.exception("progress renderer %r: detect() failed; skipping it", name)
            continue
        if fits:
            return entry.factory()
    if sys.stderr is None:  # pythonw, daemons: nowhere to draw
        return SilentRenderer()
    return ConsoleRenderer()
