"""Resource limits: what a limit means, when it warns, and how it is reported.

Four limits, each about *this process and its children* except the disk:

==================  =========================================================
``memory``          bytes of RSS (``"8GB"``)
``memory_percent``  RSS as a percentage of the memory we may use: the
                    container's limit when there is one, else the host's RAM
``cpu_percent``     CPU used as a percentage of the cores we may use (a
                    container's CPU quota, the CPUs we are pinned to, or all)
``disk_free``       a floor: free bytes on the home's filesystem
==================  =========================================================

A limit is at ``warning`` once usage reaches ``warn_at`` (default 0.8) of it —
for the disk floor, once free space drops below ``limit / warn_at`` — and
``exceeded`` beyond the limit itself. Levels go back down only after usage has
fallen a little (:data:`HYSTERESIS` of the limit) below the line, so a value
hovering at a boundary does not fire a callback every second.

>>> limits = LimitSet()
>>> limits.update(memory="8GB", cpu_percent="90%")
>>> limits.values()["memory"], limits.values()["cpu_percent"]
(8000000000.0, 90.0)
>>> level_for(0.85, warn_at=0.8, previous=0), level_for(0.79, warn_at=0.8, previous=1)
(1, 1)
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ResourceLimitExceeded
from .settings import format_size, parse_size

if TYPE_CHECKING:
    from .monitor import Sample

__all__ = ["HYSTERESIS", "LEVELS", "LIMIT_NAMES", "LimitEvent", "LimitSet", "level_for"]

LIMIT_NAMES = ("memory", "memory_percent", "cpu_percent", "disk_free")
LEVELS = ("ok", "warning", "exceeded")
DEFAULT_WARN_AT = 0.8
#: How far (as a fraction of the limit) usage must fall below a line to step down.
HYSTERESIS = 0.02


class _Keep:
    """Sentinel: a limit argument that was not passed keeps its current value."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclasses.dataclass(frozen=True)
class LimitEvent:
    """What a ``on_warning`` / ``on_exceeded`` callback receives.

    ``ratio`` is usage over limit (for the disk floor, limit over free space),
    so 1.0 is the limit itself whatever the unit.
    """

    name: str
    level: str
    usage: float
    limit: float
    ratio: float
    message: str
    sample: Sample


def level_for(ratio: float, *, warn_at: float, previous: int = 0) -> int:
    """The level (0 ok, 1 warning, 2 exceeded) for ``ratio``, with hysteresis."""
    raw = 2 if ratio > 1.0 else 1 if ratio >= warn_at else 0
    if raw >= previous:
        return raw
    # Stepping down needs a margin below the line we are crossing.
    lowered = 2 if ratio > 1.0 - HYSTERESIS else 1 if ratio >= warn_at - HYSTERESIS else 0
    return max(raw, min(previous, lowered))


def usage_of(name: str, sample: Sample) -> float | None:
    """The measurement a limit is compared with; ``None`` when not available."""
    if name == "memory":
        return float(sample.rss)
    if name == "memory_percent":
        return sample.rss_percent
    if name == "cpu_percent":
        return sample.cpu_capacity_percent
    if name == "disk_free":
        free = sample.system.disk_free
        return None if free is None else float(free)
    raise KeyError(name)


def ratio_of(name: str, usage: float, limit: float) -> float:
    if name == "disk_free":  # a floor: less free space is worse
        return limit / usage if usage > 0 else float("inf")
    return usage / limit


def _percent(value: Any, name: str) -> float:
    text = str(value).strip().removesuffix("%") if isinstance(value, str) else value
    try:
        number = float(text)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0 < number <= 100:
        raise ConfigError(
            f"{name}={value!r} is not a percentage; use a number in (0, 100], e.g. {name}=90"
        )
    return number


def _bytes(value: Any, name: str) -> float:
    size = parse_size(value, name=name)
    if size <= 0:
        raise ConfigError(
            f"{name}={value!r} must be more than zero; use e.g. {name}='8GB', or None to remove it"
        )
    return float(size)


def _fraction(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        return _percent(value, "warn_at") / 100.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0 < number <= 1:
        raise ConfigError(
            f"warn_at={value!r} is not a fraction of the limit; use e.g. warn_at=0.8 (or '80%')"
        )
    return number


_PARSERS = {
    "memory": _bytes, "disk_free": _bytes, "memory_percent": _percent, "cpu_percent": _percent,
}


class LimitSet:
    """The limits in force, the warning threshold and each limit's current level.

    Not thread-safe on its own: the monitor guards it with its lock.
    """

    def __init__(self) -> None:
        self._limits: dict[str, float] = {}
        self.warn_at = DEFAULT_WARN_AT
        self._levels: dict[str, int] = {}

    def update(self, *, warn_at: Any = None, **limits: Any) -> None:
        """Set the given limits (``None`` removes one, :data:`KEEP` leaves it).

        Everything is validated before anything changes, so a bad value leaves
        the previous limits in force.
        """
        unknown = set(limits) - set(LIMIT_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown limit(s) {', '.join(sorted(unknown))}; "
                f"the limits are {', '.join(LIMIT_NAMES)}"
            )
        parsed: dict[str, float | None] = {}
        for name, value in limits.items():
            if value is KEEP:
                continue
            parsed[name] = None if value is None else _PARSERS[name](value, name)
        new_warn_at = self.warn_at if warn_at is None else _fraction(warn_at)
        for name, value in parsed.items():
            if value is None:
                self._limits.pop(name, None)
            else:
                self._limits[name] = value
            self._levels.pop(name, None)  # a new line: judge afresh
        if new_warn_at != self.warn_at:
            self.warn_at = new_warn_at
            self._levels.clear()

    def values(self) -> dict[str, float | None]:
        """Every limit name with its value (``None`` when unset)."""
        return {name: self._limits.get(name) for name in LIMIT_NAMES}

    def snapshot(self) -> tuple[dict[str, float], float]:
        return dict(self._limits), self.warn_at

    def restore(self, state: tuple[dict[str, float], float]) -> None:
        self._limits, self.warn_at = dict(state[0]), state[1]
        self._levels.clear()

    def __bool__(self) -> bool:
        return bool(self._limits)

    # -- evaluation -------------------------------------------------------------

    def observe(self, sample: Sample) -> list[LimitEvent]:
        """Update levels from ``sample``; return an event for each step *up*."""
        events = []
        for name, limit in self._limits.items():
            usage = usage_of(name, sample)
            if usage is None:
                continue
            ratio = ratio_of(name, usage, limit)
            previous = self._levels.get(name, 0)
            level = self._levels[name] = level_for(ratio, warn_at=self.warn_at, previous=previous)
            if level > previous:
                events.append(LimitEvent(
                    name=name, level=LEVELS[level], usage=usage, limit=limit, ratio=ratio,
                    message=message(name, LEVELS[level], usage, limit, self.warn_at, sample),
                    sample=sample,
                ))
        return events

    def exceeded(self, sample: Sample) -> list[str]:
        """Messages for every limit ``sample`` is over (no hysteresis: the raw truth)."""
        out = []
        for name, limit in self._limits.items():
            usage = usage_of(name, sample)
            if usage is not None and ratio_of(name, usage, limit) > 1.0:
                out.append(message(name, "exceeded", usage, limit, self.warn_at, sample))
        return out

    def info(self, sample: Sample | None) -> dict[str, Any]:
        """Plain-data state for magics, panels and the server."""
        checks: dict[str, dict[str, Any]] = {}
        worst = 0
        for name, limit in self._limits.items():
            usage = None if sample is None else usage_of(name, sample)
            level = self._levels.get(name, 0)
            worst = max(worst, level)
            checks[name] = {
                "limit": limit,
                "usage": usage,
                "level": LEVELS[level],
                "percent_of_limit": (None if usage is None
                                     else round(100.0 * ratio_of(name, usage, limit), 1)),
                "text": None if usage is None or sample is None else
                        message(name, LEVELS[level], usage, limit, self.warn_at, sample),
            }
        return {
            "limits": self.values(),
            "warn_at": self.warn_at,
            "status": LEVELS[worst],
            "checks": checks,
            "t": None if sample is None else sample.t,
        }


def message(
    name: str, level: str, usage: float, limit: float, warn_at: float, sample: Sample
) -> str:
    """A sentence naming the limit and the usage, and what to do about it."""
    system = sample.system
    where = "the container's memory limit" if system.container_mem_limit else "the machine's memory"
    cores = f"{system.cpu_count:g} CPU core{'s' if system.cpu_count != 1 else ''}"
    if name == "memory":
        what = f"memory limit {format_size(limit)}"
        now = f"this process and its children use {format_size(usage)} (RSS)"
    elif name == "memory_percent":
        what = f"memory limit {limit:g} % of {where} ({format_size(system.mem_total)})"
        now = f"this process and its children use {usage:.1f} % ({format_size(sample.rss)})"
    elif name == "cpu_percent":
        what = f"CPU limit {limit:g} % of {cores}"
        now = f"this process and its children use {usage:.1f} % of {cores}"
    else:
        what = f"disk limit of at least {format_size(limit)} free"
        now = f"only {format_size(usage)} is free on the home's filesystem"
    if level == "exceeded":
        fix = {
            "memory": "free memory (del large objects) or raise it",
            "memory_percent": "free memory (del large objects) or raise it",
            "cpu_percent": "use fewer workers or raise it",
            "disk_free": "free space (e.g. `resman cache clear --older-than 7d`) or lower it",
        }[name] + f" with set_limits({name}=...)"
        return f"{what} exceeded: {now}; {fix}"
    if level == "warning":
        return f"{what}: {now}, past the warning threshold of {warn_at:.0%} of the limit"
    return f"{what}: {now}"


# -- interrupting the thread that set a scoped limit --------------------------------


def exceeded_error_type(text: str, on_raise: Any) -> type[ResourceLimitExceeded]:
    """A ``ResourceLimitExceeded`` subclass whose no-argument instances carry ``text``.

    An asynchronous exception is given as a class and instantiated without
    arguments where it lands; this class fills in the message and calls
    ``on_raise()`` so the scope knows it was delivered.
    """

    def __init__(self: ResourceLimitExceeded, *args: object) -> None:
        ResourceLimitExceeded.__init__(self, *(args or (text,)))
        on_raise()

    return type("ResourceLimitExceeded", (ResourceLimitExceeded,), {
        "__init__": __init__, "__module__": ResourceLimitExceeded.__module__,
    })


def raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> bool:
    """Schedule ``exc_type`` in thread ``ident`` (``None`` cancels a pending one).

    CPython delivers it at the thread's next bytecode boundary, the way
    Ctrl-C interrupts a cell: a long C call (a big numpy allocation) finishes
    first. Returns whether the thread was found.
    """
    setter = ctypes.pythonapi.PyThreadState_SetAsyncExc
    setter.argtypes = (ctypes.c_ulong, ctypes.py_object)
    setter.restype = ctypes.c_int
    found = setter(ident, ctypes.py_object() if exc_type is None else exc_type)
    return found == 1


class Interrupt:
    """One ``limits(..., interrupt=True)`` scope waiting to interrupt its thread."""

    def __init__(self, names: set[str]) -> None:
        self.ident = threading.get_ident()
        self.names = names
        self.active = True
        self.fired: str | None = None  # the message, once scheduled
        self.delivered = False

    def fire(self, text: str) -> None:
        """Interrupt the scope's thread once (the caller holds the monitor's lock)."""
        if not self.active or self.fired is not None:
            return
        self.fired = text
        raise_in_thread(self.ident, exceeded_error_type(text, self._mark_delivered))

    def _mark_delivered(self) -> None:
        self.delivered = True

    def disarm(self) -> None:
        """Stop firing and cancel an exception scheduled but not yet delivered."""
        self.active = False
        if self.fired is not None and not self.delivered:
            raise_in_thread(self.ident, None)
