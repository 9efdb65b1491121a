"""Container limits: the memory and CPU a cgroup (v2 or v1) lets this process use.

A kernel on a JupyterHub pod or in a Docker container sees the host's RAM and
CPUs through ``/proc``, but the kernel OOM killer and the CPU throttler act on
the container's cgroup. This module finds the cgroup of the process and reads
its limits, so the monitor shows (and computes percentages against) the limit
that will actually bite.

Both layouts are supported:

* **cgroup v2** (unified): ``memory.max`` (``max`` means unlimited),
  ``memory.current``, ``memory.stat``, ``cpu.max`` (``"<quota> <period>"`` or
  ``"max <period>"``), ``cpu.stat`` (``usage_usec``).
* **cgroup v1**: ``memory.limit_in_bytes`` (a huge number means unlimited),
  ``memory.usage_in_bytes``, ``memory.stat``, ``cpu.cfs_quota_us`` (``-1``
  means unlimited) with ``cpu.cfs_period_us``, ``cpuacct.usage`` (ns).

A limit can sit on any ancestor of the process's own cgroup (Kubernetes puts
the pod's limit one level above the container's), so the effective limit is
the smallest one on the way from the process's cgroup up to the mount point.
On a hybrid host (v1 controllers plus an empty v2 mount) a v1 controller wins.

Everything is read relative to ``root`` so tests can point it at a fixture
tree laid out like ``/proc/self/{cgroup,mountinfo}`` and ``/sys/fs/cgroup``:

>>> parse_cpu_max("150000 100000"), parse_cpu_max("max 100000")
(1.5, None)
>>> parse_memory_limit("max"), parse_memory_limit("9223372036854771712")
(None, None)
>>> parse_memory_limit("2147483648")
2147483648
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

__all__ = [
    "Cgroup",
    "CgroupLimits",
    "Mount",
    "cpu_affinity_count",
    "parse_cpu_max",
    "parse_memory_limit",
    "parse_mountinfo",
    "parse_proc_cgroup",
]

log = logging.getLogger("jupyter_resman.monitor")

#: v1 reports "no limit" as the largest page-aligned counter (about 2**63);
#: anything this large cannot be a real limit.
UNLIMITED_THRESHOLD = 2**62

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo`` that matters here."""

    root: str  # the part of the hierarchy mounted (``/`` unless a namespace hides the rest)
    mount_point: str
    fstype: str
    super_options: frozenset[str]


@dataclasses.dataclass(frozen=True)
class CgroupLimits:
    """The effective limits of this process's cgroup; ``None`` means unlimited.

    ``version`` is 2 or 1 (the layout the limits came from), or ``None`` when
    no cgroup filesystem was found (not Linux, or ``/sys`` not mounted).
    """

    version: int | None = None
    memory_limit: int | None = None
    cpu_limit: float | None = None


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup (v1) and cgroup2 mounts listed in a ``mountinfo`` text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(
            root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]),
            fstype=tail[0],
            super_options=frozenset(tail[2].split(",")),
        ))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``{controller: path}`` from ``/proc/<pid>/cgroup``; the v2 entry's key is ``""``.

    >>> parse_proc_cgroup("4:memory:/pod1\\n2:cpu,cpuacct:/pod1\\n0::/user.slice")
    {'memory': '/pod1', 'cpu': '/pod1', 'cpuacct': '/pod1', '': '/user.slice'}
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        for name in controllers.split(","):
            if name:
                paths[name.removeprefix("name=")] = path
    return paths


def parse_memory_limit(text: str) -> int | None:
    """A ``memory.max`` / ``memory.limit_in_bytes`` value in bytes; ``None`` if unlimited."""
    value = text.strip()
    if value in ("", "max", "-1"):
        return None
    limit = int(value)
    return None if limit >= UNLIMITED_THRESHOLD else limit


def parse_cpu_max(text: str) -> float | None:
    """Cores allowed by a v2 ``cpu.max`` line (``"<quota> <period>"``); ``None`` if unlimited."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000
    return _cores(int(parts[0]), period)


def _cores(quota: int, period: int) -> float | None:
    if quota <= 0 or period <= 0:  # v1 writes -1 for "no quota"
        return None
    return quota / period


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:  # missing file, EACCES, or a cgroup removed under us
        return None


def _stat_value(text: str | None, *keys: str) -> int | None:
    """The first of ``keys`` found in a ``memory.stat``/``cpu.stat`` text."""
    if not text:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    for key in keys:
        if key in values:
            try:
                return int(values[key])
            except ValueError:
                return None
    return None


class Cgroup:
    """The cgroup of one process, found once; limits and usage are read on demand.

    Build it with :meth:`detect`. Each ``*_dirs`` list runs from the process's
    own cgroup folder up to the mount point; a limit is looked for in each.
    """

    def __init__(
        self, *, version: int | None = None, memory_dirs: list[Path] | None = None,
        cpu_dirs: list[Path] | None = None, cpuacct_dirs: list[Path] | None = None,
    ) -> None:
        self.version = version
        self.memory_dirs = memory_dirs or []
        self.cpu_dirs = cpu_dirs or []
        # v1 accounts CPU time in a separate controller (often co-mounted with cpu).
        self.cpuacct_dirs = cpuacct_dirs or self.cpu_dirs

    @classmethod
    def detect(cls, root: str | Path = "/", pid: int | str = "self") -> Cgroup:
        """Find the cgroup folders of process ``pid`` under filesystem ``root``.

        Never raises: on a system without cgroups the result simply has no
        folders and reports no limits.
        """
        root = Path(root)
        mounts = parse_mountinfo(_read(root / f"proc/{pid}/mountinfo") or "")
        paths = parse_proc_cgroup(_read(root / f"proc/{pid}/cgroup") or "")

        def v1_dirs(controller: str) -> list[Path]:
            for mount in mounts:
                if mount.fstype == "cgroup" and controller in mount.super_options:
                    if controller in paths:
                        return _chain(root, mount, paths[controller])
            return []

        memory, cpu, cpuacct = v1_dirs("memory"), v1_dirs("cpu"), v1_dirs("cpuacct")
        version: int | None = 1 if (memory or cpu) else None
        unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
        if unified is not None and "" in paths:
            v2 = _chain(root, unified, paths[""])
            # On a hybrid host the v2 tree exists but has no controllers; only use
            # it for what v1 does not provide.
            if not memory and _has_controller(root, unified, "memory"):
                memory, version = v2, 2
            if not cpu and _has_controller(root, unified, "cpu"):
                cpu = cpuacct = v2
                version = version or 2
        return cls(version=version, memory_dirs=memory, cpu_dirs=cpu, cpuacct_dirs=cpuacct)

    # -- limits ------------------------------------------------------------------

    def limits(self) -> CgroupLimits:
        """The smallest memory and CPU limits on the path to the mount point."""
        return CgroupLimits(
            version=self.version,
            memory_limit=self._memory_limit()[0],
            cpu_limit=self._cpu_limit()[0],
        )

    def _memory_limit(self) -> tuple[int | None, Path | None]:
        best: tuple[int | None, Path | None] = (None, None)
        for folder in self.memory_dirs:
            text = _read(folder / "memory.max")
            if text is None:
                text = _read(folder / "memory.limit_in_bytes")
            if text is None:
                continue
            try:
                limit = parse_memory_limit(text)
            except ValueError:
                log.debug("unreadable memory limit in %s: %r", folder, text)
                continue
            if limit is not None and (best[0] is None or limit < best[0]):
                best = (limit, folder)
        return best

    def _cpu_limit(self) -> tuple[float | None, Path | None]:
        best: tuple[float | None, Path | None] = (None, None)
        for folder in self.cpu_dirs:
            cores = _folder_cpu_limit(folder)
            if cores is not None and (best[0] is None or cores < best[0]):
                best = (cores, folder)
        return best

    # -- usage -------------------------------------------------------------------

    def memory_usage(self) -> int | None:
        """Bytes in use by the cgroup whose limit applies (its *working set*).

        Like ``docker stats`` and the kubelet, inactive page cache is left out:
        the kernel reclaims it before it would OOM-kill anyone, so counting it
        would show a pod "full" that is merely caching files.
        """
        _, folder = self._memory_limit()
        if folder is None:
            folder = self.memory_dirs[0] if self.memory_dirs else None
        if folder is None:
            return None
        text = _read(folder / "memory.current")
        if text is None:
            text = _read(folder / "memory.usage_in_bytes")
        if text is None:
            return None
        try:
            usage = int(text.strip())
        except ValueError:
            return None
        # v1's total_inactive_file covers child cgroups, as usage_in_bytes does.
        stat = _read(folder / "memory.stat")
        inactive = _stat_value(stat, "total_inactive_file", "inactive_file")
        return max(0, usage - (inactive or 0))

    def cpu_usage(self) -> float | None:
        """Seconds of CPU consumed by the cgroup whose CPU limit applies."""
        _, limited = self._cpu_limit()
        folders = self.cpuacct_dirs
        folder = folders[0] if folders else None
        if limited is not None and limited in self.cpu_dirs:
            # The same level of the hierarchy in the accounting controller.
            index = self.cpu_dirs.index(limited)
            folder = folders[index] if index < len(folders) else folder
        if folder is None:
            return None
        usec = _stat_value(_read(folder / "cpu.stat"), "usage_usec")
        if usec is not None:
            return usec / 1e6
        text = _read(folder / "cpuacct.usage")
        try:
            return int(text) / 1e9 if text else None
        except ValueError:
            return None

    def __repr__(self) -> str:
        where = self.memory_dirs[0] if self.memory_dirs else None
        return f"Cgroup(version={self.version}, memory={str(where) if where else None!r})"


def _folder_cpu_limit(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    try:
        if text is not None:
            return parse_cpu_max(text)
        quota = _read(folder / "cpu.cfs_quota_us")
        period = _read(folder / "cpu.cfs_period_us")
        if quota is None or period is None:
            return None
        return _cores(int(quota), int(period))
    except (ValueError, IndexError):
        log.debug("unreadable CPU limit in %s", folder)
        return None


def _chain(root: Path, mount: Mount, cgroup_path: str) -> list[Path]:
    """Folders from the process's cgroup up to the mount point, leaf first."""
    mount_point = root / mount.mount_point.lstrip("/")
    path = cgroup_path if cgroup_path.startswith("/") else "/" + cgroup_path
    prefix = mount.root.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        # The mount shows a sub-tree (Docker on v1): strip the part above it.
        relative = path[len(prefix):]
    else:
        # Mounted from the root, or a cgroup namespace already made the path
        # relative to what is mounted.
        relative = path
    leaf = mount_point / relative.lstrip("/")
    if ".." in Path(relative).parts or not leaf.is_dir():
        leaf = mount_point
    chain = [leaf]
    while chain[-1] != mount_point and mount_point in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _has_controller(root: Path, mount: Mount, controller: str) -> bool:
    text = _read(root / mount.mount_point.lstrip("/") / "cgroup.controllers")
    return text is not None and controller in text.split()


def cpu_affinity_count() -> int | None:
    """CPUs this process may run on (cpusets, ``taskset``); ``None`` if unknown."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return len(getter(0)) or None
    except OSError:
        return None
