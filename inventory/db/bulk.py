"""Inserts of many rows in bulk: COPY on PostgreSQL, the driver's executemany on SQLite.

Used inside the caller's transaction, like any statement; the values are bound exactly as
SQLAlchemy's INSERT would bind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError

__all__ = ["BULK_MIN_ROWS", "insert_rows"]


# Inserts of more than one row skip SQLAlchemy's per-row parameter handling: on PostgreSQL
# they stream through COPY (a fraction of the server's per-row work of a pipelined INSERT),
# on SQLite they go to the driver's executemany. The values are the same either way: each
# column's own bind processing. An initial sync is almost nothing but such inserts.
BULK_MIN_ROWS = 2


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if len(rows) < BULK_MIN_ROWS or conn.dialect.name not in ("postgresql", "sqlite"):
        conn.execute(insert(table), rows)
        return
    names, values = _bound(conn, table, rows)
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    if conn.dialect.name == "sqlite":
        # Driver SQL still goes through SQLAlchemy's execution (its events, echo, rowcount).
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})"
        conn.exec_driver_sql(sql, list(values))
        return
    _copy(conn, f"COPY {quote(table.name)} ({columns}) FROM STDIN", values)


def _copy(conn: Connection, sql: str, values: Iterable[tuple[Any, ...]]) -> None:
    """COPY on the connection's driver connection (psycopg 3), in its transaction.

    The driver's errors are raised as SQLAlchemy raises them for any statement (the same
    classes, a lost connection invalidated), so callers see no difference from an INSERT.
    """
    dialect = conn.dialect
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in values:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc


def _bound(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """The first row's column names, and every row's values as the driver is given them.

    Every row must have the first row's keys, as an executemany INSERT requires too.
    """
    dialect = conn.dialect
    names = list(rows[0])
    pairs = [
        (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
    ]

    def values() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            if len(row) != len(names):
                raise ValueError(f"{table.name}: rows with different columns in one insert")
            yield tuple(
                row[name] if process is None else process(row[name]) for name, process in pairs
            )

    return names, values()
