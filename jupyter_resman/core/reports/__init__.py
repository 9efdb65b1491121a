"""Plain-data reports of a session: what the REST API (and any other front end) shows.

Each function takes a :class:`~.session.Session` and returns JSON-able dicts
and lists (``str``, ``int``, ``float``, ``bool``, ``None``), so the Jupyter
server's handlers only translate HTTP, and the sidebar, the widgets and the
CLI agree on every figure. The shapes are documented in ``docs/rest-api.md``.

What the core cannot know — which kernels the Jupyter server runs, their pids
and notebook paths — comes in as plain :class:`KernelInfo` records.

>>> import tempfile
>>> from jupyter_resman.core import Session
>>> with Session(home=tempfile.mkdtemp()) as s:
...     s.cache.set("k", 1, namespace="emb")
...     clear_cache(s, {"namespace": "emb"})
{'removed': 1}
>>> with Session(home=tempfile.mkdtemp()) as s:
...     clear_cache(s, {"colour": "red"})
Traceback (most recent call last):
...
jupyter_resman.core.errors.RequestError: unknown field(s) colour in the clear request; use all, keys, namespace, older_than, tags
>>> KernelInfo.coerce({"id": "k1", "pid": 42}).pid
42
"""

from __future__ import annotations

from ._common import (
    HISTORY_S,
    MAX_POINTS,
    PRUNE_EVERY_S,
    SAMPLE_FIELDS,
    SAMPLE_WINDOW_S,
    KernelInfo,
)
from .activity import checkpoints_report, delete_checkpoint, progress_report
from .cache import cache_report, clear_cache
from .metrics import MetricsSampler, metrics_report, thin
from .registry import (
    REGISTRY_PARAMS,
    existing_registry,
    registry_item_report,
    registry_report,
    resource_id_of,
)
from .resources import resources_report

__all__ = [
    "HISTORY_S",
    "MAX_POINTS",
    "PRUNE_EVERY_S",
    "REGISTRY_PARAMS",
    "SAMPLE_FIELDS",
    "SAMPLE_WINDOW_S",
    "KernelInfo",
    "MetricsSampler",
    "cache_report",
    "checkpoints_report",
    "clear_cache",
    "delete_checkpoint",
    "existing_registry",
    "metrics_report",
    "progress_report",
    "registry_item_report",
    "registry_report",
    "resource_id_of",
    "resources_report",
    "thin",
]
