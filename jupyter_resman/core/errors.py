"""Every exception and warning jupyter_resman raises, in one place.

Each error subclasses :class:`ResmanError` *and* the builtin it behaves like,
so callers can catch either ``ResmanError`` or, say, ``KeyError``:

>>> issubclass(CacheKeyError, KeyError) and issubclass(CacheKeyError, ResmanError)
True

Messages say what was wrong and how to fix it; front ends (magics, CLI, REST)
turn a ``ResmanError`` into a clean notebook message, an exit code or an HTTP
status without a traceback.

Warnings subclass :class:`ResmanWarning` and a builtin category, so users can
filter them either way (``warnings.filterwarnings("ignore", category=...)``).
None of them derives from ``ResourceWarning``: Python hides that category by
default, and a limit or leak warning nobody sees is worthless.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CacheFullError",
    "CacheIntegrityWarning",
    "CacheKeyError",
    "CapacityError",
    "CheckpointError",
    "CheckpointNameError",
    "CheckpointNotFoundError",
    "CheckpointWarning",
    "ConfigError",
    "FingerprintError",
    "HomeError",
    "InsecureHomeError",
    "IntegrityError",
    "LeakWarning",
    "LimitWarning",
    "LockError",
    "LockTimeout",
    "MigrationError",
    "ProgressError",
    "ProviderError",
    "QuantityError",
    "RegistryCorruptError",
    "RegistryError",
    "RegistryValueError",
    "RequestError",
    "ResmanError",
    "ResmanWarning",
    "ResourceAcquisitionError",
    "ResourceKindError",
    "ResourceLimitExceeded",
    "ResourceNotFoundError",
    "SecurityWarning",
    "SerializationError",
    "StaleLockError",
    "StoreCorruptError",
    "StoreError",
    "TemplateError",
    "ValueTooLargeError",
    "VersionConflictError",
]


class ResmanError(Exception):
    """Base class of every error raised by jupyter_resman."""


class _PlainMessageMixin:
    """``KeyError`` shows its argument's repr; keep our messages readable."""

    def __str__(self) -> str:  # pragma: no cover - trivial
        return str(self.args[0]) if self.args else ""


# -- configuration and home ---------------------------------------------------


class ConfigError(ResmanError, ValueError):
    """A setting or environment variable has a value we cannot use."""


class HomeError(ResmanError, OSError):
    """The home directory cannot be created or used."""


class InsecureHomeError(HomeError, PermissionError):
    """A folder or key file in the home is owned by someone else or too open."""


class StoreError(ResmanError, RuntimeError):
    """The shared SQLite store failed in a way that is not the caller's fault."""


class StoreCorruptError(StoreError):
    """A database file is damaged (a disposable one is rebuilt on next use)."""


# -- cache ---------------------------------------------------------------------


class CacheError(ResmanError):
    """Base class of cache errors."""


class CacheKeyError(_PlainMessageMixin, CacheError, KeyError):
    """A key is missing (``cache[key]``) or cannot be used as a key."""


class CacheFullError(CacheError, OSError):
    """The disk (or a file-size limit) is full; the write was rolled back."""


class ValueTooLargeError(CacheError, ValueError):
    """A single value is larger than the cache's byte limit."""


class IntegrityError(CacheError, ValueError):
    """Stored bytes failed a check; ``security`` is True for a bad signature.

    The cache turns it into a miss plus a warning and checkpoints skip the
    version, so users see it only when they ask for one specific value.
    """

    def __init__(self, message: str, *, security: bool = False, stale: bool = False) -> None:
        super().__init__(message)
        self.security = security
        self.stale = stale


class SerializationError(ResmanError, TypeError):
    """A value cannot be serialized (pickled); nothing was written."""


class FingerprintError(ResmanError, TypeError):
    """An object cannot be fingerprinted (it is neither hashable by buffer nor picklable)."""


# -- monitor and progress ------------------------------------------------------


class ResourceLimitExceeded(ResmanError, RuntimeError):
    """Usage went past a limit set with ``monitor.set_limits``."""


class ProgressError(ResmanError, ValueError):
    """A progress bar was used wrongly (negative update, closed bar...)."""


# -- checkpoints ---------------------------------------------------------------


class CheckpointError(ResmanError, RuntimeError):
    """A checkpoint could not be saved or loaded."""


class CheckpointNotFoundError(_PlainMessageMixin, CheckpointError, KeyError):
    """No valid checkpoint exists under that name (or version)."""


class CheckpointNameError(CheckpointError, ValueError):
    """A checkpoint name cannot be used (empty, too long, control characters)."""


# -- registry ------------------------------------------------------------------


class RegistryError(ResmanError):
    """Base class of registry errors."""


class RegistryCorruptError(RegistryError, RuntimeError):
    """The registry database cannot be opened; it is never rebuilt automatically."""


class ResourceNotFoundError(_PlainMessageMixin, RegistryError, KeyError):
    """No resource, template or dataset with that id or name."""


class QuantityError(RegistryError, ValueError):
    """A consumable's quantity would go negative or beyond its capacity."""


class CapacityError(RegistryError, ValueError):
    """A container is full, or a slot/position is occupied or out of range."""


class TemplateError(RegistryError, ValueError):
    """A template is missing required overrides or is otherwise unusable."""


class ResourceKindError(RegistryError, TypeError):
    """The operation does not apply to this kind of resource (``pop`` on a Grid...)."""


class RegistryValueError(RegistryError, ValueError):
    """A name, id, key, placement or duration the registry cannot accept."""


class VersionConflictError(RegistryError, RuntimeError):
    """The resource changed since it was read; read it again and reapply the change."""


class LockError(ResmanError, RuntimeError):
    """A lock operation failed."""


class LockTimeout(LockError, TimeoutError):
    """A bounded wait for a lock (or a busy database) ran out."""


class StaleLockError(LockError):
    """A write or release came from a holder whose lock expired or was replaced."""


# -- resource providers and migration -------------------------------------------


class ProviderError(ResmanError, RuntimeError):
    """A resource provider is unknown, misconfigured or failed."""


class ResourceAcquisitionError(ProviderError, TimeoutError):
    """A resource could not be acquired in time."""


class MigrationError(ResmanError, RuntimeError):
    """A legacy cache could not be imported."""


# -- front ends ------------------------------------------------------------------


class RequestError(ResmanError, ValueError):
    """A front end's request is malformed (a REST body or query parameter); HTTP 400."""


# -- warnings --------------------------------------------------------------------


class ResmanWarning(UserWarning):
    """Base class of jupyter_resman warnings."""


class CacheIntegrityWarning(ResmanWarning, RuntimeWarning):
    """A stored value was missing, truncated or corrupted; it was treated as a miss."""


class CheckpointWarning(ResmanWarning, RuntimeWarning):
    """A checkpoint version was truncated or corrupted and was skipped for an older one."""


class SecurityWarning(ResmanWarning, RuntimeWarning):
    """A stored value failed its signature check and was never unpickled."""


class LimitWarning(ResmanWarning, RuntimeWarning):
    """Usage crossed the warning threshold of a limit."""


class LeakWarning(ResmanWarning, RuntimeWarning):
    """A resource was still held when its owner (e.g. a notebook cell) finished."""
