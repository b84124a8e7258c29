"""Readers never wait for a writer, and never make one wait.

Another process holds SQLite's write lock (BEGIN IMMEDIATE and an uncommitted write) while
``inventory status``, a report, ``/readyz`` and ``/metrics`` answer; a reader's open transaction
does not stop a sync from writing. Before, every transaction began IMMEDIATE: each of these
waited out busy_timeout (30 s) and failed "database is locked".
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from inventory.cli import app
from inventory.daemon.service import run_sync
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.simulator import SimulatedCloudflare
from tests.support.daemon import daemon_env, running, runs, wait_until
from tests.support.settings import settings_for

T = TypeVar("T")
PROMPT = 5.0  # seconds: generous on a busy machine, far below the 30 s busy_timeout

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE accounts SET name = name")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """SQLite's write lock, held by another process until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"  # it says so once it holds the lock
        probe = sqlite3.connect(path, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")  # a writer really is shut out
        probe.close()
        yield
    finally:
        holder.stdin.write("done\n")
        holder.stdin.close()
        holder.wait(timeout=20)
        holder.stdout.close()


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "inventory.db"
    path.write_bytes(sqlite_template.read_bytes())
    path.chmod(0o600)
    return path


@pytest.mark.slow  # a writer process and `inventory status` processes beside it
def test_status_reports_readyz_and_metrics_answer_while_another_process_writes(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_db: Path
) -> None:
    url = f"sqlite:///{sqlite_db}"
    env = daemon_env(sim, api_url, url, tmp_path, sync_interval=3600)
    engine = make_engine(url, read_only=True)
    with running(env, tmp_path) as daemon:
        daemon.wait_serving()
        wait_until(lambda: len([r for r in runs(engine) if r.status == "succeeded"]) == 3)
        with write_lock_held(sqlite_db):
            (status, body), elapsed = timed(lambda: daemon.get("/readyz"))
            assert status == 200, body
            assert json.loads(body)["database"] == "ok"
            assert elapsed < PROMPT

            (status, body), elapsed = timed(lambda: daemon.get("/metrics"))
            assert status == 200
            assert "inventory_database_up 1.0" in body
            assert elapsed < PROMPT

            cli_env = {**env, "INVENTORY_LOG_LEVEL": "warning"}
            command = [sys.executable, "-m", "inventory", "status", "--json"]
            done, elapsed = timed(
                lambda: subprocess.run(
                    command,
                    env=cli_env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            )
            assert done.returncode == 0, done.stderr
            assert {row["account_id"] for row in json.loads(done.stdout)} == set(sim.account_ids)
            assert elapsed < 2 * PROMPT  # a new Python process, its imports included

            runner = CliRunner()
            result, elapsed = timed(
                lambda: runner.invoke(
                    app, ["--database-url", url, "report", "inventory", "--json"], env=cli_env
                )
            )
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)
            assert elapsed < PROMPT
        assert daemon.stop() == 0, daemon.output()
    engine.dispose()


def test_a_readers_open_transaction_does_not_hold_up_a_sync(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_db: Path
) -> None:
    url = f"sqlite:///{sqlite_db}"
    settings = settings_for(sim, api_url, url, cwd=tmp_path)
    reader = make_engine(url, read_only=True)
    with reader.connect() as conn:  # a long report: its transaction stays open throughout
        before = conn.execute(text("SELECT count(*) FROM servers")).scalar_one()
        results, elapsed = timed(lambda: run_sync(settings, settings.accounts))
        assert [r.status for r in results] == ["succeeded"] * 3
        assert elapsed < 3 * PROMPT
        # The reader still sees its snapshot: what was committed when it began.
        assert conn.execute(text("SELECT count(*) FROM servers")).scalar_one() == before == 0
    with reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM servers")).scalar_one() > 0
    reader.dispose()


def test_a_read_only_engine_refuses_to_write(db_url: str) -> None:
    reader = make_engine(db_url, read_only=True)
    accounts = models.table_of(models.Account)
    try:
        with pytest.raises(DBAPIError, match=r"read.only|readonly|query_only"), reader.begin() as c:
            c.execute(insert(accounts).values(id="0" * 32, configured=True))
        with reader.connect() as conn:
            assert conn.execute(select(accounts.c.id)).all() == []
    finally:
        reader.dispose()


def test_the_database_file_stays_in_wal_mode(sqlite_db: Path) -> None:
    engine: Engine = make_engine(f"sqlite:///{sqlite_db}", read_only=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    engine.dispose()
    assert sqlite_db.stat().st_mode & 0o077 == 0
