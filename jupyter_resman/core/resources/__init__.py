"""Resource providers behind ``session.resources``: pools, owners, health, metrics.

>>> from jupyter_resman.core.resources import PoolConfig, ResourceManager, FactoryProvider
>>> manager = ResourceManager()
>>> _ = manager.register_provider("numbers", FactoryProvider(list), PoolConfig(max_size=2))
>>> with manager.use("numbers", owner="demo") as numbers:
...     numbers.append(1)
...     manager.owners("numbers")
{'demo': 1}
>>> manager.metrics()["numbers"].acquisitions
1
>>> manager.close()

Modules: :mod:`.protocol` (what a provider is), :mod:`.pool` (bounded pools,
:class:`PoolConfig`), :mod:`.leases` (owners), :mod:`.manager`
(:class:`ResourceManager`), :mod:`.metrics`, and :mod:`.providers` (SQL,
filesystem, HTTP, factory).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .leases import Lease, current_owner, owner_scope, set_default_owner
from .manager import ResourceManager, published
from .metrics import ResourceMetrics
from .pool import PoolConfig
from .protocol import BaseProvider, HealthReport, HealthStatus, ResourceProvider

# Providers load their library (SQLAlchemy, httpx) only when first named.
_PROVIDERS = {"FactoryProvider", "FileSystemProvider", "HTTPProvider", "SQLProvider", "Workspace"}

__all__ = [
    "BaseProvider", "FactoryProvider", "FileSystemProvider", "HTTPProvider", "HealthReport",
    "HealthStatus", "Lease", "PoolConfig", "ResourceManager", "ResourceMetrics",
    "ResourceProvider", "SQLProvider", "Workspace", "current_owner", "owner_scope", "published",
    "set_default_owner",
]


def __getattr__(name: str) -> Any:
    if name not in _PROVIDERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(".providers", __name__), name)
    globals()[name] = value
    return value
