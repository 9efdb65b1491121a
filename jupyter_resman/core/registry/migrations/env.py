"""Alembic environment of the registry: runs on the connection the registry hands it.

The registry calls Alembic programmatically on open (no ``alembic.ini``),
passing its own connection, already inside a write transaction that holds
the database's migration lock, in ``config.attributes["connection"]``.
For a manual run, ``sqlalchemy.url`` may be set on the Config instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from jupyter_resman.core.registry.schema import VERSION_TABLE, metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (e.g. alembic -x) or pass a connection")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
