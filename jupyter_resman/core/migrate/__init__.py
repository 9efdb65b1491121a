"""Migrating scattered legacy caches and datasets into the home.

Projects that predate jupyter_resman keep results in ``joblib.Memory``
folders, ``diskcache`` folders, ``.npy``/``.npz`` embedding caches and loose
CSV files. A migration finds them, shows what it would import (a dry run),
then imports them with a progress bar:

=====================  ===========================  ==============================================
legacy store           goes to                      key / tags
=====================  ===========================  ==============================================
joblib.Memory call     cache namespace ``joblib``   ``("joblib", "<module>.<func>", "<arg hash>")``;
                                                    tags ``joblib``, ``joblib:<func>``,
                                                    ``key:<arg hash>``
diskcache entry        cache namespace              the original key when it is a valid cache key,
                       ``diskcache``                else ``("diskcache", repr(key))``; tag
                                                    ``key:<repr>``; TTL and diskcache tag kept
``.npy`` / ``.npz``    cache namespace              the file's path relative to its source folder;
                       ``embeddings``               an array / a dict of arrays
CSV file               a registered dataset         id from the file name; ``file_path`` the file
=====================  ===========================  ==============================================

Every imported cache entry is also tagged ``migrated`` (``resman cache
clear --tag migrated`` undoes a migration's cache side).

Guarantees:

* **Nothing changes in a dry run** — no cache entry, registry row or ledger,
  no source touched (a diskcache index is read ``immutable``).
* **Idempotent and resumable** — each entry's import is committed to the
  ledger ``<home>/migrations.sqlite``; a second run imports nothing, a run
  killed half-way loses at most the entry in flight, and a source changed
  since it was imported is imported again.
* **Sources are deleted only with** ``move=True``, one entry at a time, after
  the copy was read back from disk and its fingerprint matched the source's
  (CSV files: copied into the dataset's workspace and checksums compared).

Trust: migration loads the user's *own* legacy files — joblib and diskcache
values are pickles, loaded with ``joblib.load`` and diskcache's ``Disk`` —
as the legacy code did. Point it only at folders you wrote yourself. (The
cache itself never unpickles a value whose signature does not check.)

>>> import tempfile, pathlib, numpy as np, jupyter_resman as rm
>>> legacy = pathlib.Path(tempfile.mkdtemp())
>>> np.save(legacy / "emb.npy", np.arange(3))
>>> with rm.Session(home=tempfile.mkdtemp()) as s:
...     plan = plan_migration(s, [legacy])
...     report = migrate(s, plan, renderer="silent")
...     s.cache.get("emb.npy", namespace="embeddings")
array([0, 1, 2])
>>> report.imported
1
"""

from __future__ import annotations

from .discover import LEGACY_ENV_VARS, legacy_sources
from .ledger import Ledger, LedgerRow
from .plan import MigrationPlan, PlannedStore, plan_migration
from .run import MigrationReport, StoreResult, migrate
from .stores import ArrayStore, CsvStore, DiskcacheStore, Entry, JoblibStore, LegacyStore

__all__ = [
    "LEGACY_ENV_VARS",
    "ArrayStore",
    "CsvStore",
    "DiskcacheStore",
    "Entry",
    "JoblibStore",
    "Ledger",
    "LedgerRow",
    "LegacyStore",
    "MigrationPlan",
    "MigrationReport",
    "PlannedStore",
    "StoreResult",
    "legacy_sources",
    "migrate",
    "plan_migration",
]
