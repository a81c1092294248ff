"""Alembic environment of the metadata database.

slipstream drives Alembic from :mod:`slipstream.store.schema` (no ``alembic.ini``): the caller
opens the connection, takes any lock it needs and passes the connection in
``config.attributes["connection"]``; this file only configures the migration context on it.
"""

from __future__ import annotations

from alembic import context

from slipstream.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    # Offline (SQL script) mode and the plain `alembic` command are not supported: the schema
    # is always applied through `slipstream db migrate`, which brings its own connection.
    raise RuntimeError("run migrations through slipstream.store.schema, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
