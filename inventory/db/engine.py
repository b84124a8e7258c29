"""Engines for SQLite and PostgreSQL, configured the same way wherever they are made.

Two kinds: the default engine writes; ``read_only=True`` makes one for commands and endpoints
that only read (``inventory status``, reports, ``/readyz``, ``/metrics``). On SQLite (WAL mode)
the writer's transactions begin IMMEDIATE, taking the file's single write lock up front, while
a reader's begin DEFERRED and stay reads (``query_only``): they read the last committed state,
never wait for a writer and never make one wait. On PostgreSQL a reader's transactions are
READ ONLY.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from inventory.errors import SchemaOutOfDateError

__all__ = ["make_engine", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _create_private_file(path: Path) -> None:
    # Created readable by its owner only: the inventory is an audit record, not public data.
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _configure_sqlite(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if read_only:
            # WAL is a property of the file, set by the first writer (the migrations); asking
            # for it again is a no-op, but on a file not yet in WAL it would need the lock.
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # A writer's IMMEDIATE takes the write lock up front, so a sync's transaction never fails
    # halfway on a lock upgrade; it queues behind another writer (busy_timeout), never behind
    # a reader. A reader's DEFERRED transaction takes no lock: under WAL it reads the last
    # committed snapshot while a writer works.
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def make_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, read_only: bool = False
) -> Engine:
    """An engine with our settings: SQLite pragmas and private file, PostgreSQL in UTC.

    ``read_only``: for commands and endpoints that only read (see the module docstring).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and read_only and not path.exists():
            # A reader never creates the file: a mistyped path would leave an empty database
            # behind, and `db upgrade` would then be run on the wrong file.
            msg = (
                f"no SQLite database at {path}: check database_url, or run "
                "`inventory db upgrade` to create one there"
            )
            raise SchemaOutOfDateError(msg)
        if path is not None:
            _create_private_file(path)
        engine = create_engine(parsed, echo=echo)
        _configure_sqlite(engine, read_only=read_only)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # The driver we ship: plain "postgresql://" would otherwise ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    options = "-c timezone=UTC" + (" -c default_transaction_read_only=on" if read_only else "")
    return create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"options": options} if parsed.get_backend_name() == "postgresql" else {},
    )
