"""The one psutil sampling path: process trees and the system, never blocking.

Everything that shows resource usage — the kernel's :class:`Monitor`, the
Jupyter server's ``/resman/api/metrics``, the CLI — reads it through the two
samplers here, so the figures agree wherever they are drawn.

* :class:`ProcessTreeSampler` — RSS, CPU % and threads of processes *and
  their descendants* (a kernel's multiprocessing workers count as the
  kernel's). It keeps state between calls, so CPU % is the rate since the
  previous call and no call ever sleeps (psutil's ``interval=`` would block
  the server's event loop).
* :class:`SystemSampler` — memory, swap, CPU, load, disk and network of the
  machine, with container (cgroup) limits applied, plus NVIDIA GPUs when a
  driver is present. :func:`system_usage` is a shared default one.

Rates (CPU %, disk and network bytes/s) are deltas between two calls of the
same sampler. On a first call, CPU % is the average since the process (or the
machine) started; disk and network rates are ``None``.

>>> sampler = ProcessTreeSampler()
>>> usage = sampler.sample([os.getpid()])[os.getpid()]
>>> usage.rss > 0 and usage.threads >= 1
True
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from .cgroup import Cgroup, CgroupLimits, cpu_affinity_count
from .gpu import GpuReader, GpuUsage

__all__ = [
    "ProcessTreeSampler",
    "ProcessUsage",
    "SystemSampler",
    "SystemUsage",
    "system_usage",
]

log = logging.getLogger("jupyter_resman.monitor")

#: Two reads of CPU time closer than this give noise, not a rate (the kernel
#: counts CPU time in 10 ms ticks): the previous rate is reported instead.
MIN_RATE_WINDOW_S = 0.05
#: A process not asked about for this long is forgotten.
FORGET_AFTER_S = 60.0
#: Container limits change rarely (a pod resize); re-read them this often.
LIMITS_MAX_AGE_S = 30.0
#: A tree's descendants are listed again when their list is this old: one walk costs
#: a read per thread of every process in the tree, and many clients polling the
#: server should not each pay it. (A monitor at 1 Hz re-walks on every sample.)
DESCENDANTS_MAX_AGE_S = 0.5
#: Disk and network counters are re-read at most this often; rates over shorter
#: windows are noise, so a closer call repeats the previous rates.
IO_MIN_WINDOW_S = 0.25

# Linux lists a task's children in /proc/<pid>/task/<tid>/children (kernel
# 3.5+, CONFIG_PROC_CHILDREN). Reading it costs a few µs per thread, where
# psutil's children() reads /proc/<pid>/stat of *every* process on the machine
# (about 1 ms for 70 processes, more on a busy hub node).
_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
# /proc/<pid>/stat alone has CPU times, threads, RSS and start time: one read per
# process instead of psutil's three files (stat, statm, status).
_PROC_STAT = os.path.exists(f"/proc/{os.getpid()}/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# -- process trees ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProcessUsage:
    """One process together with its live descendants.

    ``cpu_percent`` is in percent of one core, as ``top`` shows it (200 means
    two cores busy); ``*_self`` fields count the process alone. ``uss`` (memory
    unique to the tree) is only measured on request: it costs milliseconds.
    """

    pid: int
    rss: int
    cpu_percent: float
    threads: int
    children: int
    rss_self: int
    cpu_percent_self: float
    uss: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Tracked:
    process: psutil.Process | None  # made only when psutil has to read (USS, not Linux)
    start: float  # start time as the kernel tells it; a reused pid has another one
    create_time: float
    cpu_total: float
    mono: float
    rate: float
    seen: float


@dataclasses.dataclass
class _Raw:
    rss: int
    cpu_total: float  # user + system seconds
    threads: int
    start: float
    create_time: float


@dataclasses.dataclass
class _Reading:
    rss: int
    cpu_percent: float
    threads: int
    uss: int | None


class ProcessTreeSampler:
    """Non-blocking usage of process trees, for one pid or a dozen kernels at once.

    Keep one sampler and call :meth:`sample` repeatedly: it remembers each
    process's CPU time, so CPU % is the rate since the previous call. Children
    that exit or deny access between two calls are skipped, never raised.
    Not thread-safe; give each thread its own sampler or hold a lock.
    """

    def __init__(self) -> None:
        self._tracked: dict[int, _Tracked] = {}
        self._trees: dict[int, tuple[float, list[int]]] = {}  # root -> (listed at, descendants)

    def sample(self, pids: Iterable[int], *, uss: bool = False) -> dict[int, ProcessUsage]:
        """``{pid: ProcessUsage}`` for each pid still alive and readable.

        A pid that does not exist (or that we may not read) is left out of
        the result rather than raising: a kernel may die at any moment.
        ``uss=True`` adds memory unique to each tree (``memory_full_info``,
        about 2.5 ms a process). Descendants are listed again at most every
        :data:`DESCENDANTS_MAX_AGE_S` (a child that exits is dropped at once).
        """
        now_wall, now_mono = time.time(), time.monotonic()
        readings: dict[int, _Reading | None] = {}  # one read per pid per call, even if shared
        out: dict[int, ProcessUsage] = {}
        for root in dict.fromkeys(pids):
            root_reading = self._reading(root, readings, now_wall, now_mono, uss)
            if root_reading is None:
                self._trees.pop(root, None)
                continue
            rss, cpu, threads, unique, children = (root_reading.rss, root_reading.cpu_percent,
                                                   root_reading.threads, root_reading.uss, 0)
            for child in self._descendants(root, now_mono):
                reading = self._reading(child, readings, now_wall, now_mono, uss)
                if reading is None:
                    continue  # exited since we listed it, or access denied
                children += 1
                rss += reading.rss
                cpu += reading.cpu_percent
                threads += reading.threads
                if unique is not None and reading.uss is not None:
                    unique += reading.uss
            out[root] = ProcessUsage(
                pid=root, rss=rss, cpu_percent=cpu, threads=threads, children=children,
                rss_self=root_reading.rss, cpu_percent_self=root_reading.cpu_percent, uss=unique,
            )
        self._forget(now_wall)
        return out

    def _descendants(self, root: int, now_mono: float) -> list[int]:
        listed = self._trees.get(root)
        if listed is None or not 0 <= now_mono - listed[0] < DESCENDANTS_MAX_AGE_S:
            listed = self._trees[root] = (now_mono, _descendants(root))
        return listed[1]

    def _reading(
        self, pid: int, cache: dict[int, _Reading | None], now_wall: float, now_mono: float,
        uss: bool,
    ) -> _Reading | None:
        if pid in cache:
            return cache[pid]
        reading = cache[pid] = self._read(pid, now_wall, now_mono, uss)
        return reading

    def _read(self, pid: int, now_wall: float, now_mono: float, uss: bool) -> _Reading | None:
        tracked = self._tracked.get(pid)
        try:
            raw = _read_proc_stat(pid) if _PROC_STAT else None
            process = None
            if raw is None:  # not Linux, or a zombie (which psutil then reports as gone)
                process = (tracked.process if tracked is not None and tracked.process is not None
                           else psutil.Process(pid))
                raw = _read_psutil(process)
            if tracked is None or tracked.start != raw.start:  # new, or a reused pid
                tracked = _Tracked(process, raw.start, raw.create_time, -1.0, 0.0, 0.0, now_wall)
            unique = None
            if uss:
                if tracked.process is None:
                    tracked.process = psutil.Process(pid)
                unique = tracked.process.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            # Gone (or a zombie), or not ours to read: skip it this time.
            self._tracked.pop(pid, None)
            return None
        total = raw.cpu_total
        if tracked.cpu_total < 0:
            # First sight: the average since the process started is the best
            # estimate we have (and exact for a child born since the last call).
            tracked.rate = 100.0 * total / max(now_wall - tracked.create_time, MIN_RATE_WINDOW_S)
            tracked.cpu_total, tracked.mono = total, now_mono
        elif now_mono - tracked.mono >= MIN_RATE_WINDOW_S:
            tracked.rate = 100.0 * max(0.0, total - tracked.cpu_total) / (now_mono - tracked.mono)
            tracked.cpu_total, tracked.mono = total, now_mono
        tracked.seen = now_wall
        self._tracked[pid] = tracked
        return _Reading(rss=raw.rss, cpu_percent=tracked.rate, threads=raw.threads, uss=unique)

    def _forget(self, now_wall: float) -> None:
        stale = [pid for pid, t in self._tracked.items() if now_wall - t.seen > FORGET_AFTER_S]
        for pid in stale:
            del self._tracked[pid]
            self._trees.pop(pid, None)


def _read_proc_stat(pid: int) -> _Raw | None:
    """CPU time, threads, RSS and start of ``pid`` from one read of /proc/<pid>/stat.

    Raises ProcessLookupError when the process is gone or unreadable; ``None``
    for a zombie (no memory left to count: the psutil path reports it gone).
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        raise ProcessLookupError(pid) from None
    try:
        data = os.read(fd, 4096)
    except OSError:
        raise ProcessLookupError(pid) from None
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    if not fields or fields[0] == b"Z":
        return None
    # fields[0] is field 3 (state): utime is field 14, stime 15, threads 20, start 22, rss 24.
    start_ticks = int(fields[19])
    return _Raw(rss=int(fields[21]) * _PAGE_SIZE,
                cpu_total=(int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
                threads=int(fields[17]), start=start_ticks,
                create_time=_boot_time() + start_ticks / _CLOCK_TICKS)


def _read_psutil(process: psutil.Process) -> _Raw:
    with process.oneshot():
        times = process.cpu_times()
        create_time = process.create_time()
        return _Raw(rss=process.memory_info().rss, cpu_total=times.user + times.system,
                    threads=process.num_threads(), start=create_time, create_time=create_time)


_BOOT_TIME: float | None = None


def _boot_time() -> float:
    global _BOOT_TIME
    if _BOOT_TIME is None:
        _BOOT_TIME = psutil.boot_time()
    return _BOOT_TIME


def _descendants(pid: int) -> list[int]:
    """All live descendants of ``pid``, breadth first; empty if it has none or is gone."""
    if not _PROC_CHILDREN:
        try:
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []
    found: list[int] = []
    seen = {pid}
    queue = [pid]
    while queue:
        parent = queue.pop()
        for child in _proc_children(parent):
            if child not in seen:  # guards against a pid reused mid-walk
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


def _proc_children(pid: int) -> list[int]:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone, or hidden from us
        return []
    children: list[int] = []
    for tid in tids:
        # os.open/os.read, not open(): no buffered file object per thread (half the cost,
        # and the server walks ~10 kernels of ~13 threads on every metrics request).
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY)
        except OSError:
            continue  # the thread exited between listdir and open
        try:
            data = os.read(fd, 65536)
        except OSError:
            continue
        finally:
            os.close(fd)
        children.extend(int(x) for x in data.split())
    return children


# -- the system --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SystemUsage:
    """The machine (or the container, when it has limits) at one moment.

    With a cgroup memory limit below the host's RAM, ``mem_total`` *is* that
    limit and ``mem_used`` the container's working set, so percentages mean
    "of what I may use". ``cpu_count`` is the effective number of cores (a
    CPU quota of 1.5 gives 1.5) and ``cpu_percent`` the share of those cores
    in use; ``per_cpu`` stays per host CPU. Disk fields describe the
    filesystem of the sampler's ``path`` (``None`` without one).
    """

    t: float
    mem_total: int
    mem_used: int
    mem_available: int
    mem_percent: float
    swap_total: int
    swap_used: int
    swap_percent: float
    cpu_count: float
    cpu_percent: float
    per_cpu: tuple[float, ...]
    load1: float | None
    load5: float | None
    load15: float | None
    container_mem_limit: int | None = None
    container_cpus: float | None = None
    disk_total: int | None = None
    disk_used: int | None = None
    disk_free: int | None = None
    disk_percent: float | None = None
    disk_read_rate: float | None = None
    disk_write_rate: float | None = None
    net_sent_rate: float | None = None
    net_recv_rate: float | None = None
    gpus: tuple[GpuUsage, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able keys (the system part of ``Sample.to_dict``)."""
        out: dict[str, Any] = {
            "sys_mem_total": self.mem_total,
            "sys_mem_used": self.mem_used,
            "sys_mem_available": self.mem_available,
            "sys_mem_percent": self.mem_percent,
            "swap_total": self.swap_total,
            "swap_used": self.swap_used,
            "swap_percent": self.swap_percent,
            "cpu_count": self.cpu_count,
            "sys_cpu_percent": self.cpu_percent,
            "load1": self.load1,
            "load5": self.load5,
            "load15": self.load15,
            "container_mem_limit": self.container_mem_limit,
            "container_cpus": self.container_cpus,
            "disk_total": self.disk_total,
            "disk_used": self.disk_used,
            "disk_free": self.disk_free,
            "disk_percent": self.disk_percent,
            "disk_read_rate": self.disk_read_rate,
            "disk_write_rate": self.disk_write_rate,
            "net_sent_rate": self.net_sent_rate,
            "net_recv_rate": self.net_recv_rate,
        }
        for i, value in enumerate(self.per_cpu):
            out[f"cpu{i}_percent"] = value
        for gpu in self.gpus:
            out.update(gpu.to_dict())
        return out


class SystemSampler:
    """Non-blocking system usage with container limits applied.

    ``path`` selects the filesystem whose space and I/O are reported (the
    monitor passes the home). ``gpu=False`` skips NVML; ``cgroup`` and
    ``gpu_reader`` can be injected (tests, another root). Thread-safe.
    """

    def __init__(
        self, path: str | Path | None = None, *, gpu: bool = True, cgroup: Cgroup | None = None,
        gpu_reader: GpuReader | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._cgroup = cgroup if cgroup is not None else Cgroup.detect()
        self._limits = CgroupLimits()
        self._limits_read = -float("inf")
        self._gpu = gpu_reader if gpu_reader is not None else (GpuReader() if gpu else None)
        self._disk_name = _block_device_name(self.path) if self.path is not None else None
        self._logical_cpus = psutil.cpu_count() or 1
        self._cpu_prev: list[tuple[float, float]] | None = None
        self._cpu_prev_mono = 0.0
        self._cpu_last: tuple[tuple[float, ...], float] = ((), 0.0)
        self._cg_cpu_prev: tuple[float, float] | None = None
        self._cg_cpu_last: float | None = None
        self._io_prev: tuple[float, tuple[int, int] | None, tuple[int, int] | None] | None = None
        self._io_rates: dict[str, float | None] = {}

    def limits(self) -> CgroupLimits:
        """The container limits (re-read at most every :data:`LIMITS_MAX_AGE_S`)."""
        now = time.monotonic()
        if now - self._limits_read > LIMITS_MAX_AGE_S:
            self._limits, self._limits_read = self._cgroup.limits(), now
        return self._limits

    def sample(self) -> SystemUsage:
        """The system now; rates are since the previous call of this sampler."""
        with self._lock:
            return self._sample()

    def _sample(self) -> SystemUsage:
        now, mono = time.time(), time.monotonic()
        limits = self.limits()
        host_total, host_available, swap_total, swap_used = _memory()
        mem_total, mem_used, mem_available = host_total, host_total - host_available, host_available
        container_mem = (limits.memory_limit
                         if limits.memory_limit and limits.memory_limit < host_total else None)
        if container_mem is not None:
            used = self._cgroup.memory_usage()
            if used is not None:
                mem_total, mem_used = container_mem, used
                mem_available = max(0, min(container_mem - used, host_available))
        logical = self._logical_cpus
        cores = float(min(logical, cpu_affinity_count() or logical))
        container_cpus = limits.cpu_limit if limits.cpu_limit and limits.cpu_limit < cores else None
        per_cpu, host_percent = self._cpu_percents(mono)
        cpu_percent = host_percent
        if container_cpus is not None:
            cores = container_cpus
            cpu_percent = self._container_cpu_percent(mono, container_cpus, host_percent)
        load: tuple[float | None, ...]
        try:
            load = os.getloadavg()
        except (AttributeError, OSError):  # not on Windows; no /proc/loadavg
            load = (None, None, None)
        load1, load5, load15 = load
        disk = self._disk(mono)
        return SystemUsage(
            t=now,
            mem_total=mem_total, mem_used=mem_used, mem_available=mem_available,
            mem_percent=100.0 * mem_used / mem_total if mem_total else 0.0,
            swap_total=swap_total, swap_used=swap_used,
            swap_percent=100.0 * swap_used / swap_total if swap_total else 0.0,
            cpu_count=cores, cpu_percent=cpu_percent, per_cpu=per_cpu,
            load1=load1, load5=load5, load15=load15,
            container_mem_limit=container_mem, container_cpus=container_cpus,
            **disk,
            gpus=self._gpu.read() if self._gpu is not None else (),
        )

    def _cpu_percents(self, mono: float) -> tuple[tuple[float, ...], float]:
        """Per-CPU and overall busy %, from our own deltas of /proc/stat times.

        psutil.cpu_percent(interval=None) keeps *one* module-wide baseline,
        so two callers in a process (the monitor thread and the server's
        handler) would shorten each other's windows; a baseline per sampler
        does not.
        """
        if self._cpu_prev is not None and mono - self._cpu_prev_mono < MIN_RATE_WINDOW_S:
            return self._cpu_last  # too soon for a meaningful rate
        current = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]
        previous = self._cpu_prev
        if previous is None or len(previous) != len(current):
            previous = [(0.0, 0.0)] * len(current)  # first call: since boot
        per_cpu, busy_sum, total_sum = [], 0.0, 0.0
        for (busy, total), (busy0, total0) in zip(current, previous, strict=True):
            d_busy, d_total = max(0.0, busy - busy0), total - total0
            per_cpu.append(round(min(100.0, 100.0 * d_busy / d_total), 1) if d_total > 0 else 0.0)
            busy_sum += d_busy
            total_sum += max(0.0, d_total)
        self._cpu_prev, self._cpu_prev_mono = current, mono
        overall = min(100.0, 100.0 * busy_sum / total_sum) if total_sum > 0 else 0.0
        self._cpu_last = (tuple(per_cpu), overall)
        return self._cpu_last

    def _container_cpu_percent(self, mono: float, cores: float, fallback: float) -> float:
        """CPU used by the container as a share of its quota (cgroup CPU time deltas)."""
        used = self._cgroup.cpu_usage()
        previous = self._cg_cpu_prev
        if used is None or previous is None:
            self._cg_cpu_prev = None if used is None else (used, mono)
            return fallback  # first call: the host's figure is the best we have
        if mono - previous[1] < MIN_RATE_WINDOW_S:
            return self._cg_cpu_last if self._cg_cpu_last is not None else fallback
        value = min(100.0, 100.0 * max(0.0, used - previous[0]) / ((mono - previous[1]) * cores))
        self._cg_cpu_prev, self._cg_cpu_last = (used, mono), value
        return value

    def _disk(self, mono: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.path is not None:
            try:
                du = psutil.disk_usage(str(self.path))
                out.update(disk_total=du.total, disk_used=du.used, disk_free=du.free,
                           disk_percent=du.percent)
            except OSError as exc:  # the folder was removed, or a network mount hung up
                log.debug("disk usage of %s unavailable: %s", self.path, exc)
        previous = self._io_prev
        if previous is not None and 0 <= mono - previous[0] < IO_MIN_WINDOW_S:
            out.update(self._io_rates)  # too soon for a meaningful rate: the previous ones
            return out
        disk_io = _disk_counters(self._disk_name) if self.path is not None else None
        net = psutil.net_io_counters(nowrap=False)  # a counter that wraps gives no rate once
        net_io = (net.bytes_sent, net.bytes_recv) if net is not None else None
        self._io_prev = (mono, disk_io, net_io)
        rates: dict[str, float | None] = {}
        if previous is not None and mono > previous[0]:
            dt = mono - previous[0]
            if disk_io is not None and previous[1] is not None:
                rates["disk_read_rate"] = _rate(disk_io[0], previous[1][0], dt)
                rates["disk_write_rate"] = _rate(disk_io[1], previous[1][1], dt)
            if net_io is not None and previous[2] is not None:
                rates["net_sent_rate"] = _rate(net_io[0], previous[2][0], dt)
                rates["net_recv_rate"] = _rate(net_io[1], previous[2][1], dt)
        self._io_rates = rates
        out.update(rates)
        return out

    def after_fork(self) -> None:
        """Make the sampler usable in a forked child.

        The parent's lock may have been held by a thread that does not exist
        in the child, and NVML handles are not to be shared across fork.
        """
        self._lock = threading.Lock()
        if self._gpu is not None:
            self._gpu = self._gpu.fresh()

    def close(self) -> None:
        """Release NVML; the sampler keeps working without GPU fields."""
        if self._gpu is not None:
            self._gpu.close()


def _memory() -> tuple[int, int, int, int]:
    """Host memory total and available, swap total and used, in bytes.

    On Linux one read of /proc/meminfo (psutil reads it, then /proc/vmstat
    for swap-in counters we do not show: four times the cost).
    """
    if _LINUX:
        try:
            found: dict[bytes, int] = {}
            with open("/proc/meminfo", "rb") as f:
                for line in f:
                    key, _, rest = line.partition(b":")
                    if key in _MEMINFO_KEYS:
                        found[key] = int(rest.split()[0]) * 1024
            total, swap_total = found[b"MemTotal"], found.get(b"SwapTotal", 0)
            available = found.get(b"MemAvailable")
            if available is not None:
                return total, available, swap_total, swap_total - found.get(b"SwapFree", swap_total)
        except (OSError, KeyError, ValueError, IndexError):
            pass  # an old kernel without MemAvailable, or no /proc: ask psutil
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    return vm.total, vm.available, swap.total, swap.used


_LINUX = os.path.exists("/proc/meminfo")
_MEMINFO_KEYS = {b"MemTotal", b"MemAvailable", b"SwapTotal", b"SwapFree"}


def _busy_and_total(times: Any) -> tuple[float, float]:
    # guest time is already counted in user/nice on Linux; psutil leaves it out too.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _rate(now: int, before: int, dt: float) -> float | None:
    # A counter that went backwards was reset (device re-plugged): no rate this time.
    return None if now < before else (now - before) / dt


def _block_device_name(path: Path) -> str | None:
    """The block device (e.g. ``sda1``, ``nvme0n1p2``) holding ``path``, if it has one."""
    try:
        dev = os.stat(path).st_dev
        target = os.readlink(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    except (OSError, AttributeError):
        return None  # tmpfs, overlayfs, NFS, or not Linux: report all disks instead
    return os.path.basename(target)


def _disk_counters(name: str | None) -> tuple[int, int] | None:
    """Bytes read and written by device ``name`` (or by all disks), since boot."""
    if name is not None and _LINUX:
        try:
            wanted = name.encode()
            with open("/proc/diskstats", "rb") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[2] == wanted:
                        # Sectors here are always 512 bytes, whatever the device's own size.
                        return int(fields[5]) * 512, int(fields[9]) * 512
        except (OSError, ValueError):
            pass
    try:
        total = psutil.disk_io_counters(nowrap=False)
    except (OSError, RuntimeError):  # no /proc/diskstats (some containers)
        return None
    return (total.read_bytes, total.write_bytes) if total is not None else None


_default_samplers: dict[str | None, SystemSampler] = {}
_default_lock = threading.Lock()


def system_usage(path: str | Path | None = None) -> SystemUsage:
    """The system now, from a process-wide sampler per ``path`` (for servers and CLIs).

    Rates are since the previous call with the same ``path``.
    """
    key = None if path is None else str(Path(path).absolute())
    sampler = _default_samplers.get(key)
    if sampler is None:
        with _default_lock:
            sampler = _default_samplers.get(key)
            if sampler is None:
                sampler = _default_samplers[key] = SystemSampler(path)
    return sampler.sample()


@atexit.register
def _close_default_samplers() -> None:
    for sampler in list(_default_samplers.values()):
        sampler.close()


def _forget_default_samplers_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    _default_samplers.clear()  # the parent's; their locks and NVML handles are not ours


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_samplers_in_child)
