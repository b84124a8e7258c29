"""Scratch databases for one benchmark run, and the rows PostgreSQL says were written.

Every database is created for the run and dropped at its end: SQLite files in a temporary
directory, PostgreSQL databases ``bench_<hex>_<role>`` made from the admin URL (never the
databases the tests use).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psycopg

__all__ = ["PG_ADMIN_URL", "Databases", "pg_available", "pg_writes"]

PG_ADMIN_URL = os.environ.get("INVENTORY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_available() -> bool:
    try:
        psycopg.connect(_conninfo(PG_ADMIN_URL), connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


class Databases:
    """Creates migrated, empty databases on demand; drops all of them on close."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
        self._tag = uuid.uuid4().hex[:8]
        self._pg_names: list[str] = []
        self._sqlite_template: Path | None = None

    def fresh(self, kind: str, role: str, *, migrated: bool = True) -> str:
        """URL of a new, empty database of ``kind`` ('sqlite' or 'postgresql').

        ``migrated``: with the product's schema (otherwise with no tables at all, for dlt).
        """
        from inventory.db.engine import make_engine
        from inventory.db.migrate import upgrade

        if kind == "sqlite" and not migrated:
            return f"sqlite:///{self.tmp / f'{role}.db'}"
        if kind == "sqlite":
            if self._sqlite_template is None:
                self._sqlite_template = self.tmp / "template.db"
                engine = make_engine(f"sqlite:///{self._sqlite_template}")
                upgrade(engine)
                engine.dispose()
            path = self.tmp / f"{role}.db"
            shutil.copyfile(self._sqlite_template, path)
            return f"sqlite:///{path}"
        name = f"bench_{self._tag}_{role}"
        with psycopg.connect(_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        self._pg_names.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        if migrated:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        return url

    def drop(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
            return
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._pg_names:
            self._pg_names.remove(name)

    def close(self) -> None:
        for name in list(self._pg_names):
            try:
                with psycopg.connect(_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"warning: could not drop {name}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Databases:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def pg_writes(url: str, *, timeout: float = 30.0) -> dict[str, int]:
    """Rows inserted + updated + deleted so far, per user table, as PostgreSQL counts them.

    A backend flushes its table counters when it exits at the latest, so wait until no other
    client backend is connected to the database, then read a fresh statistics snapshot.
    """
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}
