"""Who may sync what: PostgreSQL advisory locks per account, one daemon per SQLite file.

On PostgreSQL every replica tries ``pg_try_advisory_lock`` on a dedicated connection held for a
whole account sync (fetch and apply). The lock belongs to the database session, so a replica that
dies, even by SIGKILL, loses its connection and with it the lock: nothing is left to clean up.

SQLite has no such locks and one writer at a time: the daemon takes an exclusive ``flock`` on
``<database>.lock`` and a second daemon on the same file refuses to start.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from inventory.errors import InventoryError

__all__ = ["AdvisoryLocks", "AlreadyRunningError", "SingleDaemonLock", "advisory_key"]

log = structlog.get_logger("inventory.locks")
_NAMESPACE = b"inventory:account:"  # keeps our keys apart from other users of the database


class AlreadyRunningError(InventoryError):
    """Another daemon already works on this SQLite database."""


def advisory_key(account_id: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for an account id, the same everywhere."""
    digest = hashlib.blake2b(_NAMESPACE + account_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLocks:
    """Session-level advisory locks, one per account, each on its own pooled connection."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("advisory locks need PostgreSQL")
        self.engine = engine

    @contextmanager
    def hold(self, account_id: str) -> Iterator[bool]:
        key = advisory_key(account_id)
        conn = self.engine.connect()
        try:
            taken = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
            )
            conn.commit()  # the lock outlives the transaction; an idle transaction would not
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield taken
        finally:
            if taken:
                _release(conn, key)
            conn.close()


def _release(conn: Connection, key: int) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        conn.commit()
    except SQLAlchemyError as exc:
        # Dropping the connection ends the session, which releases the lock on the server.
        log.warning("could not release an account lock; dropping its connection", error=str(exc))
        conn.invalidate()


class SingleDaemonLock:
    """An exclusive ``flock`` on ``<database>.lock``, held for the daemon's whole life."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            msg = (
                f"another `inventory run`{who} already uses {self.database}: "
                "a SQLite database takes a single daemon; stop the other one, "
                "or use PostgreSQL to run several replicas"
            )
            raise AlreadyRunningError(msg) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        # The file stays: unlinking it would let two newcomers lock two different files.
        if self._file is not None:
            self._file.close()
            self._file = None
