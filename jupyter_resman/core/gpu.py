"""NVIDIA GPUs through NVML (``nvidia-ml-py``, imported as ``pynvml``).

Most machines running a notebook have no NVIDIA driver. There this module
stays silent: no GPU fields, no error, no warning, and NVML is asked once,
not on every sample. Where a driver is present, :class:`GpuReader` reports
utilisation, memory, temperature and power per device; a field the device
does not support (``NVMLError_NotSupported``, common on laptops and MIG
slices) is ``None`` rather than a failure.

The NVML module is injectable so the parsing logic can be tested on a
machine without a GPU:

>>> class FakeNVML:
...     class NVMLError(Exception): pass
...     NVML_TEMPERATURE_GPU = 0
...     def nvmlInit(self): pass
...     def nvmlShutdown(self): pass
...     def nvmlDeviceGetCount(self): return 1
...     def nvmlDeviceGetHandleByIndex(self, i): return i
...     def nvmlDeviceGetName(self, h): return "Fake GPU"
...     def nvmlDeviceGetUtilizationRates(self, h): return type("U", (), {"gpu": 42})()
...     def nvmlDeviceGetMemoryInfo(self, h): return type("M", (), {"used": 1, "total": 4})()
...     def nvmlDeviceGetTemperature(self, h, sensor): return 55
...     def nvmlDeviceGetPowerUsage(self, h): return 70500
>>> reader = GpuReader(FakeNVML())
>>> [(g.name, g.util_percent, g.mem_percent, g.power_w) for g in reader.read()]
[('Fake GPU', 42.0, 25.0, 70.5)]
>>> reader.close()
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

__all__ = ["GpuReader", "GpuUsage"]

log = logging.getLogger("jupyter_resman.monitor")


@dataclasses.dataclass(frozen=True)
class GpuUsage:
    """One GPU at one moment; ``None`` where the device does not report a value."""

    index: int
    name: str
    util_percent: float | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    temperature: float | None = None  # degrees Celsius
    power_w: float | None = None

    @property
    def mem_percent(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total

    def to_dict(self) -> dict[str, Any]:
        """Flat keys ``gpu<i>_util``, ``gpu<i>_mem_used``, ... as in ``Sample.to_dict``."""
        p = f"gpu{self.index}_"
        return {
            p + "util": self.util_percent,
            p + "mem_used": self.mem_used,
            p + "mem_total": self.mem_total,
            p + "mem_percent": self.mem_percent,
            p + "temperature": self.temperature,
            p + "power_w": self.power_w,
        }


class GpuReader:
    """Reads NVIDIA GPUs; reports none (quietly) when no driver is present.

    ``nvml`` is the ``pynvml`` module or an object with the same functions;
    by default ``pynvml`` is imported on first use. NVML is initialised once,
    on the first :meth:`read`, and shut down by :meth:`close`.
    """

    def __init__(self, nvml: Any | None = None) -> None:
        self._given = nvml
        self._nvml: Any = nvml
        self._lock = threading.Lock()
        self._state = "new"  # new -> ready | absent; ready -> closed
        self._handles: list[Any] = []
        self._names: list[str] = []

    @property
    def available(self) -> bool:
        """Whether NVML answered and reported at least one device."""
        self._ensure_init()
        return self._state == "ready" and bool(self._handles)

    def _error_types(self) -> tuple[type[BaseException], ...]:
        nvml_error = getattr(self._nvml, "NVMLError", None)
        kinds: tuple[type[BaseException], ...] = (OSError,)
        if isinstance(nvml_error, type) and issubclass(nvml_error, BaseException):
            kinds += (nvml_error,)
        return kinds

    def _ensure_init(self) -> None:
        if self._state != "new":
            return
        with self._lock:
            if self._state != "new":
                return
            if self._nvml is None:
                try:
                    import pynvml
                except ImportError:
                    log.debug("nvidia-ml-py is not installed; no GPU metrics")
                    self._state = "absent"
                    return
                self._nvml = pynvml
            try:
                self._nvml.nvmlInit()
            except self._error_types() as exc:
                # No driver (NVMLError_LibraryNotFound / DriverNotLoaded) is the
                # normal case on CPU machines: log at debug level, never warn.
                log.debug("NVML unavailable (%s); no GPU metrics", exc)
                self._state = "absent"
                return
            try:
                count = int(self._nvml.nvmlDeviceGetCount())
                for index in range(count):
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                    self._handles.append(handle)
                    self._names.append(self._name(handle, index))
            except self._error_types() as exc:
                log.debug("NVML could not list devices (%s)", exc)
                self._handles, self._names = [], []
            self._state = "ready"

    def _name(self, handle: Any, index: int) -> str:
        try:
            name = self._nvml.nvmlDeviceGetName(handle)
        except self._error_types():
            return f"GPU {index}"
        # Old nvidia-ml-py releases return bytes.
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name)

    def _call(self, fn_name: str, *args: Any) -> Any:
        """One NVML query; ``None`` when the device does not support it or fails."""
        try:
            return getattr(self._nvml, fn_name)(*args)
        except self._error_types():
            return None

    def read(self) -> tuple[GpuUsage, ...]:
        """The current state of every device; empty when there is no driver."""
        self._ensure_init()
        if self._state != "ready":
            return ()
        out = []
        sensor = getattr(self._nvml, "NVML_TEMPERATURE_GPU", 0)
        for index, handle in enumerate(self._handles):
            util = self._call("nvmlDeviceGetUtilizationRates", handle)
            memory = self._call("nvmlDeviceGetMemoryInfo", handle)
            temperature = self._call("nvmlDeviceGetTemperature", handle, sensor)
            power_mw = self._call("nvmlDeviceGetPowerUsage", handle)
            out.append(GpuUsage(
                index=index,
                name=self._names[index],
                util_percent=_number(getattr(util, "gpu", None)),
                mem_used=_integer(getattr(memory, "used", None)),
                mem_total=_integer(getattr(memory, "total", None)),
                temperature=_number(temperature),
                power_w=None if _number(power_mw) is None else float(power_mw) / 1000.0,
            ))
        return tuple(out)

    def process_memory(self) -> dict[int, int]:
        """``{pid: bytes}`` of GPU memory held by compute processes, all devices summed.

        Pids are as NVML sees them: inside a container without host PID
        namespace they may not match ``os.getpid()``; such entries simply do
        not match any kernel.
        """
        self._ensure_init()
        if self._state != "ready":
            return {}
        used: dict[int, int] = {}
        for handle in self._handles:
            for proc in self._call("nvmlDeviceGetComputeRunningProcesses", handle) or ():
                pid = getattr(proc, "pid", None)
                amount = _integer(getattr(proc, "usedGpuMemory", None))
                if pid is not None and amount is not None:
                    used[int(pid)] = used.get(int(pid), 0) + amount
        return used

    def fresh(self) -> GpuReader:
        """A new, uninitialised reader on the same NVML module (for a forked child)."""
        return GpuReader(self._given)

    def close(self) -> None:
        """Shut NVML down (it counts inits, so other users in the process are unaffected)."""
        with self._lock:
            if self._state == "ready":
                self._state = "closed"
                try:
                    self._nvml.nvmlShutdown()
                except self._error_types() as exc:
                    log.debug("nvmlShutdown failed: %s", exc)
            elif self._state == "new":
                self._state = "closed"
            self._handles, self._names = [], []


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    # NVML reports "not available" for per-process memory as None or a huge sentinel.
    try:
        number = None if value is None else int(value)
    except (TypeError, ValueError):
        return None
    return None if number is None or number < 0 or number >= 2**63 - 1 else number
