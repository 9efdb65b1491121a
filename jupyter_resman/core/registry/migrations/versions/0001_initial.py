"""The first registry schema: resources, history, templates, locks, datasets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Migrations are frozen in time: they spell out their tables instead of
importing ``schema.py``, which describes only the newest revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float(precision=53)
Id = sa.String(26)


def upgrade() -> None:
    op.create_table(
        "resources",
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
        sa.Column("dims", JSONType),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("removed_at", Time),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_resources_class", "resources", ["resource_class"])
    op.create_index("ix_resources_name", "resources", ["name"])
    op.create_index("ix_resources_created", "resources", ["created_at"])
    op.create_index("ux_resources_parent_key", "resources", ["parent_id", "key"], unique=True)

    op.create_table(
        "resource_history",
        sa.Column("id", BigIntKey, primary_key=True, autoincrement=True),
        sa.Column("resource_id", Id, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("change_type", sa.String(16), nullable=False),
        sa.Column("changed_at", Time, nullable=False),
        sa.Column("before", JSONType),
        sa.Column("after", JSONType),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_history_resource", "resource_history", ["resource_id", "id"])
    op.create_index("ix_history_changed", "resource_history", ["changed_at"])

    op.create_table(
        "resource_templates",
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

    op.create_table(
        "resource_locks",
        sa.Column("resource_id", Id, primary_key=True),
        sa.Column("token", sa.String(64)),
        sa.Column("owner", sa.Text),
        sa.Column("acquired_at", Time),
        sa.Column("expires_at", Time),
        sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_locks_token", "resource_locks", ["token"])

    op.create_table(
        "datasets",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column(
            "resource_id", Id, sa.ForeignKey("resources.id", name="fk_datasets_resource"),
            nullable=False, unique=True,
        ),
    )


def downgrade() -> None:
    for table in ("datasets", "resource_locks", "resource_templates", "resource_history",
                  "resources"):
        op.drop_table(table)
