"""The registry's tables, as SQLAlchemy Core objects the queries are built from.

The tables themselves are created and changed only by the Alembic migrations
in ``migrations/versions`` (run on open); this module must describe the same
schema as the newest migration, which ``tests/core/registry/test_storage.py``
checks with Alembic's own comparison.

Times are epoch seconds in double precision: the same type on SQLite and
PostgreSQL, cheap to compare and index, and turned into datetimes only when
someone looks at them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "HEAD",
    "RESOURCE_ROW",
    "VERSION_TABLE",
    "datasets",
    "history",
    "locks",
    "metadata",
    "resources",
    "select_resources",
    "templates",
]

#: The newest migration's revision id; opening a registry at this revision runs no migration.
HEAD = "0001"
#: Alembic's version table (named so it cannot clash with another app's in a shared database).
VERSION_TABLE = "resman_registry_version"

# JSON on SQLite (text + json1 functions), JSONB on PostgreSQL (indexable, compared by value).
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# For nullable JSON columns: Python None is SQL NULL, not the JSON text 'null'.
NullableJSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql")
# A 64-bit key that still becomes SQLite's INTEGER PRIMARY KEY (the rowid alias).
BigIntKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float(precision=53)
Id = sa.String(26)

metadata = sa.MetaData()

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("resource_class", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.Text),
    sa.Column("attributes", JSONType, nullable=False),
    sa.Column("parent_id", Id, sa.ForeignKey("resources.id", name="fk_resources_parent")),
    sa.Column("key", sa.Text),
    sa.Column("quantity", sa.Float(precision=53)),
    sa.Column("capacity", sa.Float(precision=53)),
    sa.Column("unit", sa.Text),
    sa.Column("dims", NullableJSON),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("removed_at", Time),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_resources_class", "resource_class"),
    sa.Index("ix_resources_name", "name"),
    sa.Index("ix_resources_created", "created_at"),
    # One child per position; NULL parents (top level) never collide.
    sa.Index("ux_resources_parent_key", "parent_id", "key", unique=True),
)

history = sa.Table(
    "resource_history",
    metadata,
    sa.Column("id", BigIntKey, primary_key=True, autoincrement=True),
    sa.Column("resource_id", Id, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("change_type", sa.String(16), nullable=False),
    sa.Column("changed_at", Time, nullable=False),
    sa.Column("before", NullableJSON),
    sa.Column("after", NullableJSON),
    sa.Column("detail", sa.Text),
    sa.Index("ix_history_resource", "resource_id", "id"),
    sa.Index("ix_history_changed", "changed_at"),
)

templates = sa.Table(
    "resource_templates",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("required_overrides", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("version", sa.Text, nullable=False, server_default="1.0.0"),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

# No foreign key on purpose: a lock row is only ever trusted after checking
# it is live, and a stray row (a crashed writer, a hand edit) must never stop
# a resource from being locked once it has expired.
locks = sa.Table(
    "resource_locks",
    metadata,
    sa.Column("resource_id", Id, primary_key=True),
    sa.Column("token", sa.String(64)),
    sa.Column("owner", sa.Text),
    sa.Column("acquired_at", Time),
    sa.Column("expires_at", Time),
    # Grows by one on every acquisition of the resource, never reused: a
    # fencing number other systems can compare.
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_locks_token", "token"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column(
        "resource_id", Id, sa.ForeignKey("resources.id", name="fk_datasets_resource"),
        nullable=False, unique=True,
    ),
)


# What every query that builds resource objects selects, in table order. The
# JSON columns come back as their raw text: one json.loads per value in
# ``from_row`` is several times cheaper than SQLAlchemy's JSON result processing,
# and a 1,000-row query spends most of its time there. (PostgreSQL's driver
# decodes JSONB itself; ``from_row`` accepts either.)
RESOURCE_ROW = tuple(
    sa.type_coerce(column, sa.Text).label(column.name) if column.name in ("attributes", "dims")
    else column
    for column in resources.c
)


def select_resources(*extra: sa.ColumnElement) -> sa.Select:
    """``SELECT`` of whole resource rows (plus ``extra`` columns after them)."""
    return sa.select(*RESOURCE_ROW, *extra)
