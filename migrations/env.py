"""Alembic environment: one history for SQLite and PostgreSQL.

The URL comes from the caller (``inventory db upgrade`` passes a Connection), else from
``-x url=...``, else from ``INVENTORY_DATABASE_URL``, else the default SQLite file.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, text

from inventory.db.engine import make_engine
from inventory.db.models import Base

config = context.config
target_metadata = Base.metadata
# Any 64-bit constant will do; it only has to be the same for every replica.
MIGRATION_LOCK = 0x1A7E_2024_0001


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two replicas starting together must not both migrate.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("INVENTORY_DATABASE_URL")
        or "sqlite:///inventory.db"
    )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    msg = "offline (--sql) migrations are not supported; run `inventory db upgrade`"
    raise SystemExit(msg)
run_migrations_online()
