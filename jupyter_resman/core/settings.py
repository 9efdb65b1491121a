"""Settings: where jupyter_resman keeps its state and how big the cache may grow.

Every field has a default and an environment variable:

==========================  ======================  ==========================
variable                    field                   default
==========================  ======================  ==========================
``RESMAN_HOME``             ``home``                platformdirs user data dir
``RESMAN_CACHE_DIR``        ``cache_dir``           ``<home>/cache``
``RESMAN_MAX_CACHE``        ``max_cache_bytes``     ``20GB``
``RESMAN_MEMORY_CACHE``     ``memory_cache_bytes``  ``512MB``
``RESMAN_CACHE_POLICY``     ``cache_policy``        ``lru`` (``lfu``, ``fifo``)
``RESMAN_ENABLE_CACHING``   ``enable_caching``      ``true``
``RESMAN_REGISTRY_URL``     ``registry_url``        SQLite file in the home
==========================  ======================  ==========================

Sizes are integers (bytes) or strings with a unit. ``KB``/``MB``/``GB``/``TB``
are decimal (powers of 1000) and ``KiB``/``MiB``/``GiB``/``TiB`` binary
(powers of 1024), as on a disk label:

>>> parse_size("512MB"), parse_size("1.5 GiB"), parse_size(4096)
(512000000, 1610612736, 4096)
>>> parse_duration("1h"), parse_duration("7d"), parse_duration(90)
(3600.0, 604800.0, 90.0)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from .errors import ConfigError

__all__ = ["Settings", "parse_bool", "parse_duration", "parse_size", "format_size"]

APP_NAME = "jupyter_resman"
CACHE_POLICIES = ("lru", "lfu", "fifo")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
    "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")

_DURATION_UNITS = {
    "": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
    "h": 3600.0, "d": 86400.0, "w": 604800.0,
}
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str, *, name: str = "size") -> int:
    """Turn ``4096``, ``"512MB"`` or ``"1.5 GiB"`` into a number of bytes.

    ``name`` is the setting or variable being parsed; it appears in the error.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not a size; use bytes or a string like '512MB'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{name}={value!r} is negative; use e.g. 512MB or 0 to disable")
        return int(value)
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigError(
            f"{name}={value!r} is not a size; use a number of bytes or a number with a unit, "
            "e.g. 512MB, 1.5 GiB or 20GB (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(n: float) -> str:
    """Bytes as a short human string: ``format_size(1536000) == '1.5 MB'``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def parse_duration(value: int | float | str, *, name: str = "duration") -> float:
    """Turn ``90``, ``"90s"``, ``"15min"``, ``"1h"`` or ``"7d"`` into seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not a duration; use seconds or e.g. '1h'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{name}={value!r} is negative; use a positive duration like 1h")
        return float(value)
    match = _DURATION_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ConfigError(
            f"{name}={value!r} is not a duration; use seconds or a number with a unit "
            "(s, min, h, d, w), e.g. 90s, 15min, 1h or 7d"
        )
    return float(match.group(1)) * _DURATION_UNITS[unit]


def parse_bool(value: bool | str, *, name: str = "flag") -> bool:
    """``"true"``/``"1"``/``"yes"``/``"on"`` and their opposites, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")


def default_home() -> Path:
    """The per-user data directory (``~/.local/share/jupyter_resman`` on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where state lives and how the cache behaves; immutable once built.

    Build one from the environment with :meth:`from_env`, or directly for
    tests and scripts (``Settings(home=tmp_path)``); anything left out takes
    its default.
    """

    home: Path = dataclasses.field(default_factory=default_home)
    cache_dir: Path | None = None
    max_cache_bytes: int = parse_size("20GB")
    memory_cache_bytes: int = parse_size("512MB")
    cache_policy: str = "lru"
    enable_caching: bool = True
    registry_url: str | None = None

    def __post_init__(self) -> None:
        # Normalise here so a Settings built by hand is as valid as one from env.
        set_ = object.__setattr__
        set_(self, "home", Path(self.home).expanduser().absolute())
        cache_dir = self.home / "cache" if self.cache_dir is None else self.cache_dir
        set_(self, "cache_dir", Path(cache_dir).expanduser().absolute())
        set_(self, "max_cache_bytes", parse_size(self.max_cache_bytes, name="max_cache_bytes"))
        set_(
            self, "memory_cache_bytes",
            parse_size(self.memory_cache_bytes, name="memory_cache_bytes"),
        )
        policy = str(self.cache_policy).strip().lower()
        if policy not in CACHE_POLICIES:
            raise ConfigError(
                f"cache_policy={self.cache_policy!r} is not a policy; use one of "
                f"{', '.join(CACHE_POLICIES)} (e.g. RESMAN_CACHE_POLICY=lru)"
            )
        set_(self, "cache_policy", policy)
        set_(self, "enable_caching", parse_bool(self.enable_caching, name="enable_caching"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``RESMAN_*`` variables; keyword ``overrides`` win over them.

        A bad value raises :class:`ConfigError` naming the variable and showing
        an example of a good one.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        readers = {
            "RESMAN_HOME": ("home", Path),
            "RESMAN_CACHE_DIR": ("cache_dir", Path),
            "RESMAN_MAX_CACHE": ("max_cache_bytes", parse_size),
            "RESMAN_MEMORY_CACHE": ("memory_cache_bytes", parse_size),
            "RESMAN_CACHE_POLICY": ("cache_policy", _parse_policy),
            "RESMAN_ENABLE_CACHING": ("enable_caching", parse_bool),
            "RESMAN_REGISTRY_URL": ("registry_url", str),
        }
        for var, (field, parse) in readers.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            if parse in (Path, str):
                values[field] = parse(raw)
            else:
                values[field] = parse(raw, name=var)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        """The settings as plain values, for ``%resman config`` and the CLI."""
        return {
            "home": str(self.home),
            "cache_dir": str(self.cache_dir),
            "max_cache": format_size(self.max_cache_bytes),
            "memory_cache": format_size(self.memory_cache_bytes),
            "cache_policy": self.cache_policy,
            "enable_caching": self.enable_caching,
            "registry_url": self.registry_url or f"sqlite:///{self.home / 'registry.sqlite'}",
        }


def _parse_policy(value: str, *, name: str) -> str:
    policy = value.strip().lower()
    if policy not in CACHE_POLICIES:
        raise ConfigError(f"{name}={value!r} is not a cache policy; use lru, lfu or fifo, e.g. {name}=lru")
    return policy
