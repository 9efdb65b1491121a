"""A working folder as a resource: safe paths under one base folder, and temp files
that disappear when the resource is given back.

>>> import tempfile
>>> provider = FileSystemProvider(tempfile.mkdtemp())
>>> ws = provider.acquire()
>>> _ = ws.write_text("out/result.txt", "42")
>>> ws.read_text("out/result.txt")
'42'
>>> scratch = ws.temp_file(suffix=".npy")
>>> provider.reset(ws)          # what the pool does on release
>>> scratch.exists()
False
>>> ws.path("../etc/passwd")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
jupyter_resman.core.errors.ProviderError: '../etc/passwd' leads outside the folder ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import psutil

from ...errors import ProviderError
from ...settings import format_size, parse_size
from ..protocol import BaseProvider, HealthReport, HealthStatus

__all__ = ["FileSystemProvider", "Workspace"]

#: Temp files of every handle live under this sub-folder of the base folder.
TEMP_FOLDER = ".resman-tmp"


class Workspace:
    """A handle on the base folder: paths that cannot escape it, atomic writes, temp files.

    Temp files made with :meth:`temp_file` / :meth:`temp_dir` belong to this
    handle and are removed when it goes back to the pool.
    """

    def __init__(self, root: Path, temp_root: Path) -> None:
        self.root = root
        self._temp_root = temp_root
        self._temp: Path | None = None
        self._lock = threading.Lock()
        self.closed = False
        self.temp_made = 0

    def path(self, relative: str | os.PathLike[str] = "") -> Path:
        """``root / relative``, refusing absolute paths, ``..`` and symlinks out of the root."""
        self._check_open()
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or "\x00" in str(relative):
            raise ProviderError(f"{str(relative)!r} leads outside the folder {self.root}; use a "
                                "path relative to it, without '..'")
        full = self.root / rel
        # A symlink inside the folder may still point out of it: check where it lands.
        resolved = full.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ProviderError(f"{str(relative)!r} resolves to {resolved}, outside the folder "
                                f"{self.root} (through a symlink); refusing to follow it")
        return full

    def exists(self, relative: str | os.PathLike[str]) -> bool:
        return self.path(relative).exists()

    def open(self, relative: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> IO[Any]:
        """Open a file under the root (parents are created when writing)."""
        full = self.path(relative)
        if any(flag in mode for flag in "wax+"):
            full.parent.mkdir(parents=True, exist_ok=True)
        return open(full, mode, **kwargs)  # the caller closes it

    def read_bytes(self, relative: str | os.PathLike[str]) -> bytes:
        return self.path(relative).read_bytes()

    def read_text(self, relative: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        return self.path(relative).read_text(encoding=encoding)

    def write_bytes(self, relative: str | os.PathLike[str], data: bytes) -> Path:
        """Write atomically: a temp file in the same folder, then ``os.replace``.

        A reader never sees half a file, and a crash leaves the old one.
        """
        full = self.path(relative)
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{full.name}.", suffix=".part", dir=full.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return full

    def write_text(self, relative: str | os.PathLike[str], text: str,
                   encoding: str = "utf-8") -> Path:
        return self.write_bytes(relative, text.encode(encoding))

    def listdir(self, relative: str | os.PathLike[str] = "") -> list[str]:
        """Names in a folder under the root (the temp folder is hidden)."""
        names = sorted(os.listdir(self.path(relative)))
        return [n for n in names if not (str(relative) in ("", ".") and n == TEMP_FOLDER)]

    def delete(self, relative: str | os.PathLike[str]) -> bool:
        """Remove a file or folder; ``False`` when there was nothing to remove."""
        full = self.path(relative)
        if full == self.root:
            raise ProviderError(f"refusing to delete the base folder {self.root} itself")
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
            return True
        try:
            full.unlink()
        except FileNotFoundError:
            return False
        return True

    def temp_file(self, suffix: str = "", prefix: str = "tmp") -> Path:
        """A new empty file, removed when this handle is released."""
        fd, name = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=self._temp_dir())
        os.close(fd)
        self.temp_made += 1
        return Path(name)

    def temp_dir(self, suffix: str = "", prefix: str = "tmp") -> Path:
        """A new empty folder, removed (with its content) when this handle is released."""
        made = Path(tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=self._temp_dir()))
        self.temp_made += 1
        return made

    def _temp_dir(self) -> Path:
        self._check_open()
        with self._lock:
            if self._temp is None:
                # The pid in the name lets a later process sweep what a crashed one left.
                folder = self._temp_root / f"{os.getpid()}-{secrets.token_hex(6)}"
                folder.mkdir(mode=0o700, parents=True)
                self._temp = folder
            return self._temp

    def clear_temp(self) -> int:
        """Remove this handle's temp files now; returns how many top-level entries went."""
        with self._lock:
            folder, self._temp = self._temp, None
        if folder is None:
            return 0
        try:
            count = len(os.listdir(folder))
        except FileNotFoundError:
            return 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def _check_open(self) -> None:
        if self.closed:
            raise ProviderError(f"this workspace of {self.root} was released; acquire a new one")

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


class FileSystemProvider(BaseProvider):
    """:class:`Workspace` handles on ``base``; ``create=True`` makes the folder if missing.

    The health check writes and removes a probe file and reports the free
    space: below ``min_free`` (default ``"100MB"``) it is *degraded*.
    """

    kind = "filesystem"

    def __init__(self, base: str | os.PathLike[str], *, create: bool = True,
                 min_free: int | str = "100MB") -> None:
        base_path = Path(base).expanduser()
        if create:
            base_path.mkdir(parents=True, exist_ok=True)
        if not base_path.is_dir():
            raise ProviderError(f"{base_path} is not a folder; create it or pass create=True")
        self.root = base_path.resolve()
        self.target = str(self.root)
        self.min_free = parse_size(min_free, name="min_free")
        self._temp_root = self.root / TEMP_FOLDER
        self._lock = threading.Lock()
        self._temp_removed = 0
        self._handles = 0
        self.swept = self._sweep_dead()

    def acquire(self) -> Workspace:
        with self._lock:
            self._handles += 1
        return Workspace(self.root, self._temp_root)

    def reset(self, resource: Workspace) -> None:
        removed = resource.clear_temp()
        with self._lock:
            self._temp_removed += removed

    def release(self, resource: Workspace) -> None:
        self.reset(resource)
        resource.closed = True

    def validate(self, resource: Workspace) -> bool:
        return not resource.closed and self.root.is_dir()

    def health_check(self) -> HealthReport:
        start = time.perf_counter()
        probe = self.root / f".resman-probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            usage = shutil.disk_usage(self.root)
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink()
            return HealthReport.failed(f"cannot write in {self.root}: {exc.strerror or exc}",
                                       latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        details = {"free_bytes": usage.free, "total_bytes": usage.total}
        if usage.free < self.min_free:
            return HealthReport(HealthStatus.DEGRADED,
                                f"only {format_size(usage.free)} free (below "
                                f"{format_size(self.min_free)})", latency, details=details)
        return HealthReport.ok(f"writable, {format_size(usage.free)} free",
                               latency_s=latency, **details)

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            return {"handles_made": self._handles, "temp_removed": self._temp_removed}

    def _sweep_dead(self) -> int:
        """Remove temp folders of processes that have exited (a crash skips release)."""
        try:
            entries = list(os.scandir(self._temp_root))
        except FileNotFoundError:
            return 0
        removed = 0
        for entry in entries:
            pid_text = entry.name.split("-", 1)[0]
            if not pid_text.isdigit() or psutil.pid_exists(int(pid_text)):
                continue
            try:
                shutil.rmtree(entry.path)
                removed += 1
            except OSError as exc:
                if exc.errno != errno.ENOENT:  # another process swept it first: fine
                    raise
        return removed
