"""The Session: one home, and the core objects that live in it.

Front ends never build their own cache, psutil loop or SQLite connection;
they ask a session. Objects are created on first use, so a session that only
reads the cache never starts a monitor thread.

>>> import tempfile
>>> with Session(home=tempfile.mkdtemp()) as s:
...     s.cache["answer"] = 42
...     s.cache["answer"]
42
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .home import Home
from .settings import Settings

if TYPE_CHECKING:  # imported lazily at run time: a session only pays for what it uses
    from .cache import Cache
    from .checkpoint import Checkpoints
    from .live import LiveStore
    from .monitor import Monitor
    from .registry import Registry

__all__ = ["Session", "get_session", "set_session"]


class Session:
    """Everything jupyter_resman manages for one home directory.

    ``Session()`` reads the ``RESMAN_*`` environment; ``Session(home=path)``
    roots an isolated session at ``path`` (its cache under ``path/cache``
    unless ``cache_dir`` is given too); other keyword arguments override
    single settings, e.g. ``Session(home=p, memory_cache_bytes="64MB")``.
    """

    def __init__(
        self, home: str | Path | None = None, *, settings: Settings | None = None, **overrides: Any
    ) -> None:
        if settings is None:
            if home is not None:
                overrides["home"] = Path(home)
                overrides.setdefault("cache_dir", None)
            settings = Settings.from_env(**overrides)
        elif home is not None or overrides:
            raise TypeError("pass either settings= or home=/overrides, not both")
        self.settings = settings
        self.home = Home(settings)
        self._lock = threading.RLock()
        self._parts: dict[str, Any] = {}
        self._closed = False

    def _part(self, name: str, build: Any) -> Any:
        part = self._parts.get(name)
        if part is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"{self!r} is closed; create a new Session")
                part = self._parts.get(name)
                if part is None:
                    part = self._parts[name] = build()
        return part

    @property
    def cache(self) -> Cache:
        """The two-tier cache (memory in front of disk)."""
        from .cache import Cache

        return self._part("cache", lambda: Cache.from_settings(self.settings, self.home))

    @property
    def live(self) -> LiveStore:
        """The live feed other processes read (monitor samples, progress)."""
        from .live import LiveStore

        return self._part("live", lambda: LiveStore(self.home.live_db))

    @property
    def monitor(self) -> Monitor:
        """The resource monitor (psutil sampling, limits, published samples)."""
        from .monitor import Monitor

        return self._part("monitor", lambda: Monitor(self))

    @property
    def checkpoints(self) -> Checkpoints:
        """Atomic, checksummed, versioned checkpoints."""
        from .checkpoint import Checkpoints

        return self._part("checkpoints", lambda: Checkpoints(self))

    @property
    def registry(self) -> Registry:
        """The registry of datasets and resources (SQLite or PostgreSQL)."""
        from .registry import Registry

        return self._part("registry", lambda: Registry(self))

    def existing_registry(self) -> Registry | None:
        """The registry if this home has one (or one is configured), else ``None``.

        :attr:`registry` creates ``registry.sqlite`` on first use; front ends that
        only *show* or *look into* the registry (panels, REST, a dry run) call this
        instead, so looking never leaves an empty database behind.
        """
        if self.settings.registry_url or self.home.registry_db.exists():
            return self.registry
        return None

    def workspace(self, dataset_id: str) -> Path:
        """The managed folder of a registered dataset (metadata.json, embeddings/, cache/)."""
        return self.registry.workspace(dataset_id)

    @property
    def resources(self) -> Any:
        """The resource-provider manager (pools, owners, health)."""
        from .resources import ResourceManager

        return self._part("resources", lambda: ResourceManager(self))

    @property
    def log(self) -> Any:
        """Structured logging and timing for this session."""
        from .logs import LogManager

        return self._part("log", lambda: LogManager(self))

    def flush(self) -> None:
        """Write counters other processes read (cache hits and misses) now.

        Cheap when nothing changed; the magics call it after every cell so the
        Jupyter server's view of a running kernel is never a cell behind.
        """
        cache = self._parts.get("cache")
        if cache is not None:
            cache.flush()

    def close(self) -> None:
        """Stop threads, flush counters and close every database; idempotent.

        Parts close in reverse order of creation, so a monitor publishing to
        the live feed stops before the feed closes.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            parts = list(self._parts.values())
        errors: list[BaseException] = []
        for part in reversed(parts):
            try:
                part.close()
            except Exception as exc:  # close everything, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Session(home={str(self.home.root)!r}, {state})"


_default: Session | None = None
_default_lock = threading.Lock()


def get_session() -> Session:
    """The process-wide default session, created from the environment on first use."""
    global _default
    session = _default
    if session is None or session.closed:
        with _default_lock:
            if _default is None or _default.closed:
                _default = Session()
            session = _default
    return session


def set_session(session: Session | None) -> Session | None:
    """Make ``session`` the default (``None`` forgets it); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, session
    return previous


@atexit.register
def _close_default() -> None:
    # Flush stats and stop threads of the default session at interpreter exit.
    session = _default
    if session is not None and not session.closed:
        session.close()
