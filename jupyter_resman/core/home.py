"""The home directory: one folder holding everything more than one process needs.

Layout (created on first use, every folder mode ``0700``)::

    <home>/                     RESMAN_HOME, default: platformdirs user data dir
      cache/                    RESMAN_CACHE_DIR (may live elsewhere)
        cache.sqlite            cache index (SQLite, WAL); disposable
        generation              8 bytes that change on every cache write (cheap staleness check)
        values/00 … values/ff   value files too big to keep inline in the index
      checkpoints/              checkpoint files, one folder per name
      datasets/                 dataset workspaces (metadata.json, embeddings/, cache/)
      configs/                  managed configuration files
      logs/                     rotating log files
      live.sqlite               monitor samples and progress bars published by kernels; disposable
      registry.sqlite           dataset and resource registry; never deleted automatically
      secret.key                MAC key signing cached values, mode 0600, outside cache/

The Jupyter server and every kernel open the same home; nothing in it is
private to one process.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

from .errors import ConfigError, HomeError, InsecureHomeError
from .settings import Settings

__all__ = ["Home"]

SUBFOLDERS = ("checkpoints", "datasets", "configs", "logs")
KEY_BYTES = 32


class Home:
    """Paths of the home layout, created and checked on construction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root: Path = settings.home
        self.cache_dir: Path = settings.cache_dir  # type: ignore[assignment]
        if self.cache_dir == self.root or self.cache_dir in self.root.parents:
            raise ConfigError(
                f"RESMAN_CACHE_DIR={self.cache_dir} contains the home {self.root}; clearing the "
                "cache must never touch the home. Use a separate folder, e.g. <home>/cache."
            )
        # The roots may be symlinks the user made on purpose; folders inside may not.
        ensure_private_dir(self.root, allow_symlink=True)
        for name in SUBFOLDERS:
            ensure_private_dir(self.root / name)
        ensure_private_dir(self.cache_dir, allow_symlink=True)

    # Paths are properties rather than stored fields so the layout is in one place.
    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def configs_dir(self) -> Path:
        return self.root / "configs"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def live_db(self) -> Path:
        return self.root / "live.sqlite"

    @property
    def registry_db(self) -> Path:
        return self.root / "registry.sqlite"

    @property
    def key_file(self) -> Path:
        return self.root / "secret.key"

    def secret_key(self) -> bytes:
        """The secret MAC key, created on first use (0600); checked for owner and mode."""
        return load_or_create_key(self.key_file)

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"


#: File systems kept in memory: preallocating a file there zero-fills pages the write then
#: fills again, so writers skip it.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path: Path) -> str | None:
    """The type of the file system holding ``path`` (``"ext4"``, ``"tmpfs"``...), from
    ``/proc/self/mountinfo``; ``None`` where that is not available (not Linux).

    >>> filesystem_type(Path("/proc")) in ("proc", None)
    True
    """
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        # Mount points escape spaces and such as octal (\040).
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):  # the deepest mount wins (later ones shadow)
            best, kind = mount, right.split()[0]
    return kind


def ensure_private_dir(path: Path, *, allow_symlink: bool = False) -> None:
    """Create ``path`` (and parents) as ``0700``; refuse one owned by another user.

    An existing folder of ours that is open to group or others is tightened:
    the home holds pickles, and a writable pickle folder is code execution.
    A symlink is refused: nothing may be created outside the home through it.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(
            exc.errno or errno.EIO,
            f"cannot create {path}: {exc.strerror or exc}. Set RESMAN_HOME to a writable folder.",
        ) from exc
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        if not allow_symlink:
            reject_symlink(path)
        info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise HomeError(errno.ENOTDIR, f"{path} exists and is not a folder; move it away or set RESMAN_HOME")
    check_owner(path, info)
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)


def check_owner(path: Path, info: os.stat_result | None = None) -> None:
    """Raise :class:`InsecureHomeError` when ``path`` belongs to another user."""
    info = info or os.lstat(path)
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise InsecureHomeError(
            errno.EPERM,
            f"{path} is owned by uid {info.st_uid}, not by you (uid {os.getuid()}); another user "
            "could plant values there. Use a home of your own (RESMAN_HOME) or chown it.",
        )


def reject_symlink(path: Path) -> None:
    """Refuse a managed sub-folder that has been replaced by a symlink."""
    if path.is_symlink():
        raise InsecureHomeError(
            errno.ELOOP,
            f"{path} is a symlink; jupyter_resman never follows links out of its home. "
            "Remove the link and let it be recreated.",
        )


def load_or_create_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it atomically if it does not exist.

    Creation writes a temp file then ``os.link``s it into place, so two
    processes racing to create the key agree on one key and neither ever reads
    a half-written file.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        check_owner(path, info)
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise InsecureHomeError(
                errno.EPERM,
                f"{path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); anyone "
                "who reads it can forge cache values. Run: chmod 600 " + str(path),
            )
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise InsecureHomeError(
            errno.EINVAL,
            f"{path} does not hold a {KEY_BYTES}-byte key; delete it (cached values will be "
            "recomputed) and it will be recreated.",
        )
    return key
