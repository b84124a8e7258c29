"""Who may sync what: one process per account at a time, one daemon per SQLite file.

On PostgreSQL every replica tries ``pg_try_advisory_lock`` on a dedicated connection held for a
whole account sync (fetch and apply). The lock belongs to the database session, so a replica that
dies, even by SIGKILL, loses its connection and with it the lock: nothing is left to clean up.

SQLite has no such locks: each account sync takes an exclusive ``flock`` on
``<database>.locks/<account id>.lock`` (FileLocks), and the daemon one on ``<database>.lock``
for its whole life, so a second daemon on the same file refuses to start. ``<database>`` is the
file's resolved path: a symlink or a relative path to the same file finds the same locks. Like
an advisory lock, a flock dies with its process.

Either lock only avoids wasted work: the fencing token (inventory.db.runs) is what keeps an
older read from being applied over a newer one if a lock is lost.

Within one process, ``WriterLock`` queues the threads that write to a SQLite database (it has
one writer at a time) instead of leaving them to its busy timeout.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from inventory.errors import AlreadyRunningError

__all__ = [
    "AdvisoryLocks",
    "AlreadyRunningError",
    "FileLocks",
    "SingleDaemonLock",
    "WriterLock",
    "account_locks",
    "advisory_key",
    "lock_base",
]

log = structlog.get_logger("inventory.db.locks")
_NAMESPACE = b"inventory:account:"  # keeps our keys apart from other users of the database


def advisory_key(account_id: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for an account id, the same everywhere."""
    digest = hashlib.blake2b(_NAMESPACE + account_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def account_locks(engine: Engine) -> AdvisoryLocks | FileLocks | None:
    """The per-account locks for this engine's database (None for in-memory SQLite)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        return FileLocks(Path(database))
    return None


class WriterLock:
    """``with lock():`` around a write transaction: on SQLite, one thread of the process at a
    time (threads queue here instead of on busy timeouts); elsewhere, nothing."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    def __call__(self) -> AbstractContextManager[object]:
        return self._lock if self._lock is not None else nullcontext()


class AdvisoryLocks:
    """Session-level advisory locks, one per account, each on its own pooled connection."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("advisory locks need PostgreSQL")
        self.engine = engine

    def holder(self, account_id: str) -> str:
        return ""  # another replica's backend pid would mean nothing to an operator

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


def lock_base(database: Path) -> Path:
    """The database file's resolved path: what every lock of that file is named after."""
    return database.resolve()


def _private(path: Path) -> IO[str]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return os.fdopen(fd, "r+", encoding="utf-8")


def _try_flock(path: Path) -> IO[str] | None:
    """The open file with an exclusive flock on it, or None when another holder has it."""
    handle = _private(path)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    # Who holds it, for the next one to say (a flock is tied to the open file, not to this text).
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()} {socket.gethostname()}\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").split()
    except OSError:
        return ""
    return text[0] if text and text[0].isdigit() else ""


class FileLocks:
    """Per-account exclusion across processes on one SQLite file: ``flock`` on lock files.

    Each hold opens its own file, so two threads of one process exclude each other too.
    """

    def __init__(self, database: Path) -> None:
        self.database = lock_base(database)
        self.directory = self.database.with_name(self.database.name + ".locks")

    def path(self, account_id: str) -> Path:
        safe = re.fullmatch(r"[0-9A-Za-z_-]{1,64}", account_id) is not None
        name = account_id if safe else f"{advisory_key(account_id) & (2**64 - 1):016x}"
        return self.directory / f"{name}.lock"

    def holder(self, account_id: str) -> str:
        """The pid that last took the account's lock (who holds it, when it is held)."""
        return _holder(self.path(account_id))

    @contextmanager
    def hold(self, account_id: str) -> Iterator[bool]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = _try_flock(self.path(account_id))
        try:
            yield handle is not None
        finally:
            # The file stays (see SingleDaemonLock.release); closing it releases the flock.
            if handle is not None:
                handle.close()


class SingleDaemonLock:
    """An exclusive ``flock`` on ``<database>.lock``, held for the daemon's whole life."""

    def __init__(self, database: Path) -> None:
        self.database = database
        base = lock_base(database)
        self.path = base.with_name(base.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = _try_flock(self.path)
        if handle is None:
            holder = _holder(self.path)
            who = f" (pid {holder})" if holder else ""
            base = lock_base(self.database)
            same = "" if base == self.database else f" (that is {base})"
            msg = (
                f"another `inventory run`{who} already uses {self.database}{same}: "
                "a SQLite database takes a single daemon; stop the other one, "
                "or use PostgreSQL to run several replicas"
            )
            raise AlreadyRunningError(msg)
        self._file = handle

    def release(self) -> None:
        # The file stays: unlinking it would let two newcomers lock two different files.
        if self._file is not None:
            self._file.close()
            self._file = None
