"""The write path every change goes through, and the lease rules it enforces.

One change = one short transaction that

1. locks the rows it will change (``SELECT ... FOR UPDATE`` on PostgreSQL,
   in id order so two writers never deadlock; SQLite's ``BEGIN IMMEDIATE``
   already serializes writers),
2. checks the resource locks (:func:`check_writable`): a resource leased to
   someone else refuses the write, and a write that carries the token of an
   expired or replaced lease is refused too (fencing),
3. saves the new row with ``version + 1`` and appends a history row.

Read-modify-write inside one locked transaction is what makes concurrent
``decrease_quantity`` calls from many processes lose nothing; no optimistic
retry loop is needed (on one hot row those cost PostgreSQL ~2 retries per
success).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from ulid import ULID

from ..errors import (
    LockError,
    RegistryValueError,
    ResourceNotFoundError,
    StaleLockError,
    VersionConflictError,
)
from .engine import RegistryDB
from .resources import Resource, new_id
from .rows import from_row, to_columns
from .schema import history as history_table
from .schema import locks as locks_table
from .schema import resources as resources_table
from .schema import select_resources

__all__ = [
    "NOW",
    "ChangeType",
    "RegistryCore",
    "check_writable",
    "lease_is_live",
    "live_clause",
    "rid",
]

T = TypeVar("T")

#: The longest lease ``acquire_lock`` grants; a record claiming more is garbage.
MAX_LEASE = 86400.0
#: How far in the future an acquisition time may lie before the record counts as garbage.
CLOCK_SKEW = 60.0
#: Most rows a walk down the hierarchy reads; more means a giant tree, or damaged parent
#: links forming a cycle, which must end in an error rather than an endless query.
SUBTREE_CAP = 1_000_000


class ChangeType(str, enum.Enum):
    """What happened to a resource."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"
    RESTORED = "restored"

    def __str__(self) -> str:
        return self.value


def rid(resource: Resource | str) -> str:
    """The id of a resource object, or the id string itself."""
    if isinstance(resource, Resource):
        if resource.id is None:
            raise RegistryValueError(
                f"{resource.name!r} has no id yet: add it first (registry.add(resource))"
            )
        return resource.id
    if isinstance(resource, str) and resource:
        return resource
    raise RegistryValueError(f"{resource!r} is neither a resource nor a resource id")


def _when(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# -- leases --------------------------------------------------------------------------


def lease_is_live(row: Any, now: float) -> bool:
    """Whether a lock record holds its resource at ``now``.

    Anything malformed (no token, times that are not numbers, a lease longer
    than :data:`MAX_LEASE`, an acquisition in the future) is not live: a
    garbage record must never lock a resource forever.
    """
    if not row.token:
        return False
    try:
        acquired = float(row.acquired_at)
        expires = float(row.expires_at)
    except (TypeError, ValueError):
        return False
    return acquired <= now + CLOCK_SKEW and now < expires <= acquired + MAX_LEASE


# Hot statements are built once with bind parameters: building and hashing a
# statement costs SQLAlchemy more than SQLite needs to run it.
TimeParam = sa.Float(precision=53)
NOW = sa.bindparam("now", type_=TimeParam)


def live_clause() -> sa.ColumnElement[bool]:
    """SQL twin of :func:`lease_is_live`, at bind parameter ``now``.

    Text or NULL times compare false on both databases, so garbage is never live.
    """
    t = locks_table.c
    return sa.and_(
        t.token.is_not(None),
        t.acquired_at <= NOW + CLOCK_SKEW,
        t.expires_at > NOW,
        t.expires_at <= t.acquired_at + MAX_LEASE,
    )


_l = locks_table.c
_r = resources_table.c
_LOCKS_OF = (sa.select(_l.resource_id, _l.token, _l.owner, _l.acquired_at, _l.expires_at)
             .where(_l.resource_id.in_(sa.bindparam("ids", expanding=True))))
_LEASE_ROWS = (sa.select(_l.token, _l.acquired_at, _l.expires_at)
               .where(_l.token == sa.bindparam("p_token")))
_FETCH = select_resources().where(_r.id == sa.bindparam("rid"))
_FETCH_LOCKED = _FETCH.with_for_update()
_FETCH_MANY = (select_resources().where(_r.id.in_(sa.bindparam("ids", expanding=True)))
               .order_by(_r.id))
_FETCH_MANY_LOCKED = _FETCH_MANY.with_for_update()
# Compare-and-set: the row must still be at the version the change was computed from.
_UPDATE = resources_table.update().where(
    _r.id == sa.bindparam("b_id"), _r.version == sa.bindparam("b_version"))
_INSERT = resources_table.insert()
_RECORD = history_table.insert()


def check_writable(
    conn: sa.Connection, resources: Sequence[Resource], token: str | None, now: float
) -> None:
    """Refuse a write to resources leased to someone else, or one made with a dead lease.

    * leased to ``token``: allowed;
    * leased to another holder: :class:`LockError` (or :class:`StaleLockError`
      when ``token`` is a lease that has expired or been released);
    * not leased: allowed, unless ``token`` is given and no longer live
      anywhere: a late write from a holder whose lease ran out is refused
      even if nobody took the lock since (fencing).
    """
    rows = conn.execute(_LOCKS_OF, {"ids": [r.id for r in resources]}).all()
    held = {row.resource_id: row for row in rows if lease_is_live(row, now)}
    if not held and token is None:
        return
    token_live: bool | None = None
    for resource in resources:
        row = held.get(resource.id)
        if row is not None and token is not None and row.token == token:
            continue
        if row is None and token is None:
            continue
        if token is not None and token_live is None:
            token_live = any(
                lease_is_live(r, now) for r in conn.execute(_LEASE_ROWS, {"p_token": token}))
        label = f"{resource.name!r} ({resource.id})"
        if row is None:
            if token_live:
                continue  # this lease does not cover the resource, and nobody else holds it
            raise StaleLockError(
                f"refused a write to {label}: the lease {(token or '')[:10]}... has expired or was "
                "released, so this late write might undo someone else's. Acquire the lock again "
                "(registry.lock(..., auto_refresh=True) keeps a long block's lease alive)."
            )
        if token is not None and not token_live:
            raise StaleLockError(
                f"refused a write to {label}: your lease has expired and {row.owner!r} holds the "
                f"lock now (until {_when(row.expires_at)}); acquire it again before writing"
            )
        raise LockError(
            f"{label} is locked by {row.owner!r} until {_when(row.expires_at)} "
            f"({row.expires_at - now:.0f}s left); pass token= of that lease, wait for it "
            "(acquire_lock(..., wait=seconds)) or let it expire"
        )


# -- the shared base of the registry's parts ------------------------------------------


def _check_json(resource: Resource) -> None:
    try:
        json.dumps(resource.attributes, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryValueError(
            f"{resource.name!r}: attributes must be JSON values (str, int, float, bool, None, "
            f"lists and dicts of them; no NaN): {exc}. Convert e.g. numpy values with .tolist()."
        ) from None


class RegistryCore:
    """State and write helpers shared by the parts mixed into :class:`Registry`."""

    _db: RegistryDB
    _clock: Callable[[], float]

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        return self._db.run(fn, write=False)

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        return self._db.run(fn, write=True)

    def _now(self) -> float:
        # Whole microseconds: what a datetime / ISO string holds, so to_dict() round-trips.
        return round(self._clock(), 6)

    # -- loading -----------------------------------------------------------------

    def _fetch(
        self, conn: sa.Connection, resource: Resource | str, *,
        for_update: bool = False, include_removed: bool = False,
    ) -> Resource:
        resource_id = rid(resource)
        row = conn.execute(_FETCH_LOCKED if for_update else _FETCH, {"rid": resource_id}).first()
        if row is None:
            raise ResourceNotFoundError(
                f"no resource with id {resource_id!r}; find ids with registry.query(...)"
            )
        found = from_row(row)
        if found.removed is not None and not include_removed:
            raise ResourceNotFoundError(
                f"{found.name!r} ({resource_id}) was removed on {_when(found.removed)}; "
                f"registry.restore_deleted({resource_id!r}) brings it back"
            )
        return found

    def _fetch_many(
        self, conn: sa.Connection, items: Iterable[Resource | str], *, for_update: bool = False
    ) -> dict[str, Resource]:
        # Sorted ids: every writer locks rows in the same order, so none deadlocks.
        ids = sorted({rid(item) for item in items})
        rows = conn.execute(_FETCH_MANY_LOCKED if for_update else _FETCH_MANY, {"ids": ids})
        found = {row.id: from_row(row) for row in rows}
        for resource_id in ids:
            resource = found.get(resource_id)
            if resource is None or resource.removed is not None:
                self._fetch(conn, resource_id)  # raises the right "not found"/"removed" error
        return found

    def _guard(self, conn: sa.Connection, resources: Sequence[Resource], token: str | None) -> None:
        check_writable(conn, resources, token, self._now())

    # Container rules live in ContainerOps, which overrides these three; CRUD
    # calls them to place a new resource, re-place a restored one and check updates.
    def _check_update(self, conn: sa.Connection, before: Resource, after: Resource) -> None:
        """Kind-specific checks of a change; raises to refuse it."""

    def _place(self, conn: sa.Connection, container: Resource | str, child: Resource | str,
               key: Any, *, token: str | None, move: bool) -> Resource:
        raise NotImplementedError

    def _fits(self, conn: sa.Connection, parent_id: str, key: str | None, child: Resource) -> bool:
        raise NotImplementedError

    @staticmethod
    def _advisory_lock(conn: sa.Connection, name: str) -> None:
        """Serialize transactions about ``name`` on PostgreSQL (SQLite's writers already are).

        Two READ COMMITTED transactions that each look for a row and insert it
        when missing would both insert; the second now waits for the first.
        """
        if conn.dialect.name == "postgresql":
            digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                         {"k": int.from_bytes(digest, "big", signed=True)})

    # -- saving --------------------------------------------------------------------

    def _insert(
        self, conn: sa.Connection, resource: Resource, *, parent_id: str | None = None,
        key: str | None = None, detail: str | None = None,
    ) -> Resource:
        resource.validate()
        _check_json(resource)
        resource_id = resource.id
        if resource_id is None:
            resource_id = new_id()
        else:
            try:
                ULID.from_str(resource_id)
            except ValueError:
                raise RegistryValueError(
                    f"id={resource_id!r} is not a ULID; leave id unset and the registry makes one"
                ) from None
        now = self._now()
        new = resource.copy(id=resource_id, parent_id=parent_id, key=key, version=1,
                            created=now, updated=now, removed=None)
        values = to_columns(new)
        values.update(id=resource_id, parent_id=parent_id, key=key, version=1,
                      created_at=now, updated_at=now, removed_at=None)
        try:
            conn.execute(_INSERT, values)
        except sa.exc.IntegrityError as exc:
            if "parent" in str(exc.orig).lower() or "key" in str(exc.orig).lower():
                raise RegistryValueError(f"cannot add {new.name!r}: {exc.orig}") from None
            raise RegistryValueError(f"a resource with id {resource_id} already exists") from None
        snap = new.snapshot()
        self._record(conn, new, ChangeType.ADDED, before=None, after=snap, now=now, detail=detail)
        return new

    def _save(
        self, conn: sa.Connection, before: Resource, after: Resource, change: ChangeType, *,
        detail: str | None = None,
    ) -> Resource:
        """Write ``after`` over the row ``before`` was read from (locked by the caller)."""
        _check_json(after)
        now = self._now()
        saved = after.copy(id=before.id, version=before.version + 1, created=before.created,
                           updated=now)
        values = to_columns(saved)
        values.update(parent_id=saved.parent_id, key=saved.key, updated_at=now,
                      removed_at=saved.removed, version=saved.version, b_id=before.id,
                      b_version=before.version)
        result = conn.execute(_UPDATE, values)
        if result.rowcount != 1:
            # Cannot happen while the caller holds the row lock; guards a caller that did not.
            raise VersionConflictError(
                f"{before.name!r} ({before.id}) changed since version {before.version}; "
                "read it again and reapply the change"
            )
        self._record(conn, saved, change, before=before.snapshot(), after=saved.snapshot(),
                     now=now, detail=detail)
        return saved

    @staticmethod
    def _record(
        conn: sa.Connection, resource: Resource, change: ChangeType, *,
        before: dict[str, Any] | None, after: dict[str, Any] | None, now: float,
        detail: str | None,
    ) -> None:
        conn.execute(
            _RECORD,
            {
                "resource_id": resource.id,
                "version": resource.version,
                "change_type": change.value,
                "changed_at": now,
                "before": before,
                "after": after,
                "detail": detail,
            },
        )
