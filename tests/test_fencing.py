"""Fenced writes: an older read never overwrites a newer one, and every run is closed.

Overlaps are staged with events, never sleeps: the slow sync blocks in its page callback once it
has read every page, until the fast one has committed.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import IntegrityError

from inventory.cloudflare.client import CloudflareClient
from inventory.daemon.runner import Daemon, DaemonOptions
from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.db.locks import (
    AdvisoryLocks,
    AlreadyRunningError,
    FileLocks,
    SingleDaemonLock,
    advisory_key,
)
from inventory.db.migrate import current_revision, head_revision, migrations_dir, upgrade
from inventory.db.tables import TABLES
from inventory.reports.queries import sync_status
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import AccountLocks, Syncer

HISTORY_TABLES = [spec.history.name for spec in TABLES.values()]


class Gate:
    """A page callback that holds its sync once the servers listing is read, until released."""

    def __init__(self) -> None:
        self.read = threading.Event()
        self.release = threading.Event()

    def __call__(self, _account_id: str, endpoint: str, _page: int, _items: int) -> None:
        if endpoint == "servers":
            self.read.set()
            assert self.release.wait(60), "the test never released the slow sync"


class Background:
    """A sync running in a thread; ``result()`` joins it."""

    def __init__(self, work: Callable[[], AccountResult]) -> None:
        self._out: list[AccountResult] = []
        self._thread = threading.Thread(target=lambda: self._out.append(work()), daemon=True)
        self._thread.start()

    def result(self) -> AccountResult:
        self._thread.join(60)
        assert self._out, "the background sync did not finish"
        return self._out[0]


@pytest.fixture
def client(settings: Settings) -> Iterator[CloudflareClient]:
    with open_client(settings) as client:
        yield client


def syncer(engine: Engine, client: CloudflareClient, **extra: Any) -> Syncer:
    return Syncer(engine=engine, client=client, per_page=50, **extra)


def one(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def run_status(engine: Engine, run_id: int | None) -> str:
    return str(one(engine, "SELECT status FROM sync_runs WHERE id = :i", i=run_id)[0])


def portal_name(engine: Engine, portal_id: str) -> str:
    return str(one(engine, "SELECT name FROM portals WHERE id = :p", p=portal_id)[0])


def versions_by_run(engine: Engine, run_id: int | None) -> int:
    total = 0
    for table in HISTORY_TABLES:
        where = "run_id = :r OR ended_run_id = :r"
        total += one(engine, f"SELECT count(*) FROM {table} WHERE {where}", r=run_id)[0]
    return int(total)


def backwards_versions(engine: Engine) -> int:
    return sum(
        one(engine, f"SELECT count(*) FROM {t} WHERE valid_to < valid_from")[0]
        for t in HISTORY_TABLES
    )


# --- the fencing token ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["unchanged-fast-path", "full-apply"])
def test_an_older_read_never_overwrites_a_newer_one(
    engine: Engine,
    client: CloudflareClient,
    settings: Settings,
    sim: SimulatedCloudflare,
    path: str,
) -> None:
    account = settings.accounts[0]
    portal = sim.portal_ids(account.id)[0]
    syncer(engine, client).sync_account(account)
    if path == "full-apply":  # the slow sync's read differs from what is stored
        sim.rename_portal(account.id, portal, "older name")
    gate = Gate()
    # No lock: what the fence must stop is exactly an overlap the locks failed to prevent.
    slow = Background(lambda: syncer(engine, client, on_page=gate).sync_account(account))
    assert gate.read.wait(60)
    sim.rename_portal(account.id, portal, "newer name")
    fast = syncer(engine, client).sync_account(account)
    assert fast.status == "succeeded"
    gate.release.set()
    older = slow.result()

    assert older.run_id is not None
    assert fast.run_id is not None
    assert older.run_id < fast.run_id
    assert older.status == "superseded"
    assert f"run {fast.run_id}, which started later, already applied" in (older.error or "")
    assert not older.failed
    assert run_status(engine, older.run_id) == "superseded"
    assert portal_name(engine, portal) == "newer name"
    assert versions_by_run(engine, older.run_id) == 0
    row = one(
        engine,
        "SELECT applied_run_id, last_run_id, last_status FROM accounts WHERE id = :a",
        a=account.id,
    )
    assert tuple(row) == (fast.run_id, fast.run_id, "succeeded")
    # the newer state is the open version, and the next sync finds nothing to change
    again = syncer(engine, client).sync_account(account)
    assert (again.status, again.counts["portal"]["changed"]) == ("succeeded", 0)


def _terminate_lock_connection(engine: Engine, account_id: str) -> None:
    """pg_terminate_backend on the session holding the account's advisory lock."""
    key = advisory_key(account_id) & (2**64 - 1)
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
            ),
            {"high": key >> 32, "low": key & 0xFFFFFFFF},
        ).scalars()
        killed = [conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": p}) for p in pids]
    assert len(killed) == 1


@pytest.mark.parametrize("ending", ["applies", "fails"])
def test_a_run_closed_as_abandoned_stays_abandoned(
    engine: Engine,
    db_url: str,
    client: CloudflareClient,
    settings: Settings,
    sim: SimulatedCloudflare,
    ending: str,
) -> None:
    """The slow sync loses its lock; another process closes its run and syncs a newer state.

    On PostgreSQL the slow sync holds a real advisory lock whose connection is terminated with
    pg_terminate_backend; on SQLite it never took one (a lock lost is a lock not held).
    """
    account = settings.accounts[0]
    portal = sim.portal_ids(account.id)[0]
    syncer(engine, client).sync_account(account)
    sim.rename_portal(account.id, portal, "older name")
    postgres = engine.dialect.name == "postgresql"
    slow_locks: AccountLocks | None = AdvisoryLocks(engine) if postgres else None
    cancel = threading.Event()
    gate = Gate()
    slow_syncer = syncer(engine, client, on_page=gate, locks=slow_locks, cancel=cancel)
    slow = Background(lambda: slow_syncer.sync_account(account))
    assert gate.read.wait(60)
    if postgres:
        _terminate_lock_connection(engine, account.id)
    sim.rename_portal(account.id, portal, "newer name")
    other_engine = make_engine(db_url)
    try:
        other_locks = AdvisoryLocks(other_engine) if postgres else FileLocks(_db_file(db_url))
        fast = syncer(other_engine, client, locks=other_locks).sync_account(account)
    finally:
        other_engine.dispose()
    assert fast.status == "succeeded"
    assert run_status(engine, slow_syncer_run(engine, account.id)) == "abandoned"
    if ending == "fails":
        cancel.set()  # the slow sync now fails: recording that must not re-open its run
    gate.release.set()
    older = slow.result()

    assert run_status(engine, older.run_id) == "abandoned"
    assert older.status == ("superseded" if ending == "applies" else "failed")
    if ending == "applies":
        assert "closed as abandoned by another process" in (older.error or "")
    assert portal_name(engine, portal) == "newer name"
    assert versions_by_run(engine, older.run_id) == 0


def slow_syncer_run(engine: Engine, account_id: str) -> int:
    """The first run of the account after its initial sync."""
    return int(
        one(
            engine,
            "SELECT id FROM sync_runs WHERE account_id = :a ORDER BY id LIMIT 1 OFFSET 1",
            a=account_id,
        )[0]
    )


def _db_file(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


# --- every run is closed -------------------------------------------------------------------------


class WriteBlocker:
    """Another connection that keeps a run's outcome from being written.

    SQLite: it holds the database's write lock (BEGIN IMMEDIATE). PostgreSQL: it holds the lock
    on the open run's row (SELECT … FOR UPDATE).
    """

    def __init__(self, db_url: str) -> None:
        self.sqlite = db_url.startswith("sqlite")
        self.conn: Any = (
            sqlite3.connect(_db_file(db_url), isolation_level=None, check_same_thread=False)
            if self.sqlite
            else psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
        )

    def take(self) -> None:
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn.execute("SELECT 1 FROM sync_runs WHERE status = 'running' FOR UPDATE")

    def release(self) -> None:
        if self.sqlite:
            self.conn.execute("ROLLBACK")
        else:
            self.conn.rollback()

    def close(self) -> None:
        self.conn.close()


def impatient_engine(db_url: str) -> Engine:
    """An engine whose statements give up after a short wait for a lock."""
    engine = make_engine(db_url)

    def short_waits(dbapi: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi.execute("PRAGMA busy_timeout=50")
        else:
            with dbapi.cursor() as cursor:
                cursor.execute("SET lock_timeout = '100ms'")
            dbapi.commit()

    event.listen(engine, "connect", short_waits)
    return engine


@contextmanager
def blocked_outcome(db_url: str) -> Iterator[tuple[Engine, WriteBlocker]]:
    engine, blocker = impatient_engine(db_url), WriteBlocker(db_url)
    try:
        yield engine, blocker
    finally:
        blocker.close()
        engine.dispose()


def failing_while_blocked(
    engine: Engine, client: CloudflareClient, blocker: WriteBlocker, **extra: Any
) -> Syncer:
    """A sync whose run is open when the blocker takes its lock, and then fails (a 401)."""

    def take(_account_id: str, endpoint: str, _page: int, _items: int) -> None:
        if endpoint == "portals":
            blocker.take()

    return syncer(engine, client, on_page=take, **extra)


@pytest.mark.parametrize("released", ["between-attempts", "never"])
def test_a_run_is_closed_even_when_its_write_is_blocked(
    db_url: str,
    client: CloudflareClient,
    settings: Settings,
    sim: SimulatedCloudflare,
    released: str,
) -> None:
    account = settings.accounts[0]
    sim.faults.add(Fault(kind="status", status=401, account_id=account.id, endpoint="servers"))
    waits: list[float] = []
    with blocked_outcome(db_url) as (engine, blocker):

        def wait(seconds: float) -> None:  # the retry's backoff: the other writer lets go here
            waits.append(seconds)
            if released == "between-attempts":
                blocker.release()

        failing = failing_while_blocked(
            engine, client, blocker, wait=wait, close_retry_waits=(0.5, 2.0)
        )
        result = failing.sync_account(account)
        assert result.status == "failed"
        assert result.error_class == "AuthError"
        if released == "between-attempts":
            assert waits == [0.5]
            assert run_status(engine, result.run_id) == "failed"
            return
        assert waits == [0.5, 2.0]
        blocker.release()
        # every attempt failed: the run is still open, and nothing says the account is fine
        assert run_status(engine, result.run_id) == "running"
        assert status_of(engine, account.id)["last_status"] == "running"
        # the daemon's housekeeping (or the end of sync_all) records it once the lock is free
        assert failing.close_unfinished() == 1
        assert failing.close_unfinished() == 0
        assert run_status(engine, result.run_id) == "failed"
        assert status_of(engine, account.id)["last_status"] == "failed"


def status_of(engine: Engine, account_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = sync_status(conn, since=datetime(2000, 1, 1, tzinfo=UTC))
    return next(dict(r) for r in rows if r["account_id"] == account_id)


def test_status_never_shows_a_success_while_a_later_run_is_open(
    engine: Engine, client: CloudflareClient, settings: Settings
) -> None:
    account = settings.accounts[0]
    done = syncer(engine, client).sync_account(account)
    gate = Gate()
    later = Background(lambda: syncer(engine, client, on_page=gate).sync_account(account))
    assert gate.read.wait(60)
    during = status_of(engine, account.id)
    gate.release.set()
    finished = later.result()
    assert during["last_status"] == "running"
    assert during["last_success_at"] is not None  # the previous success, still shown
    assert finished.run_id is not None
    assert done.run_id is not None
    assert finished.run_id > done.run_id
    assert status_of(engine, account.id)["last_status"] == "succeeded"


# --- time only goes forward ---------------------------------------------------------------------


class SettableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_clock_that_goes_backwards_never_makes_a_version_end_before_it_starts(
    engine: Engine, client: CloudflareClient, settings: Settings, sim: SimulatedCloudflare
) -> None:
    account = settings.accounts[0]
    portals = sim.portal_ids(account.id)
    first = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    clock = SettableClock(first)
    syncer(engine, client, clock=clock).sync_account(account)
    sim.rename_portal(account.id, portals[0], "renamed while the clock ran back")
    sim.delete_portal(account.id, portals[1])
    clock.now = first - timedelta(hours=1)
    with structlog.testing.capture_logs() as logs:
        result = syncer(engine, client, clock=clock).sync_account(account)
    assert result.status == "succeeded"
    assert result.counts["portal"]["changed"] == 1
    assert result.counts["portal"]["removed"] == 1
    assert any("clock went backwards" in e["event"] for e in logs)
    assert backwards_versions(engine) == 0
    tick = first + timedelta(microseconds=1)
    with engine.connect() as conn:
        history = models.table_of(models.PortalVersion)
        renamed = conn.execute(
            select(history.c.valid_from, history.c.valid_to)
            .where(history.c.id == portals[0])
            .order_by(history.c.version_id)
        ).all()
        deleted = conn.execute(
            select(history.c.valid_to).where(history.c.id == portals[1])
        ).scalar_one()
        current_table = models.table_of(models.Portal)
        current = conn.execute(
            select(current_table.c.valid_from).where(current_table.c.id == portals[0])
        ).scalar_one()
    assert [tuple(r) for r in renamed] == [(first, tick), (tick, None)]
    assert deleted == tick
    assert current == tick


def test_the_database_refuses_a_version_that_ends_before_it_starts(
    engine: Engine, client: CloudflareClient, settings: Settings
) -> None:
    syncer(engine, client).sync_account(settings.accounts[0])
    tables = [t for t in HISTORY_TABLES if one(engine, f"SELECT count(*) FROM {t}")[0]]
    assert len(tables) >= 5
    for table in tables:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    f"UPDATE {table} SET valid_to = valid_from - INTERVAL '1 hour'"
                    if engine.dialect.name == "postgresql"
                    else f"UPDATE {table} SET valid_to = datetime(valid_from, '-1 hour')"
                )
            )


def test_the_migration_repairs_versions_that_end_before_they_start(
    engine: Engine, client: CloudflareClient, settings: Settings, sim: SimulatedCloudflare
) -> None:
    account = settings.accounts[0]
    portal = sim.portal_ids(account.id)[0]
    first = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    clock = SettableClock(first)
    syncer(engine, client, clock=clock).sync_account(account)
    sim.rename_portal(account.id, portal, "renamed")
    clock.now = first + timedelta(hours=1)
    syncer(engine, client, clock=clock).sync_account(account)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
        views = _views(conn)
    history = models.table_of(models.PortalVersion)
    portals = models.table_of(models.Portal)
    back = first - timedelta(hours=1)
    with engine.begin() as conn:  # what a clock an hour behind wrote before 0006
        conn.execute(
            history.update()
            .where(history.c.id == portal, history.c.valid_to.is_not(None))
            .values(valid_to=back)
        )
        conn.execute(
            history.update()
            .where(history.c.id == portal, history.c.valid_to.is_(None))
            .values(valid_from=back)
        )
        conn.execute(portals.update().where(portals.c.id == portal).values(valid_from=back))
    assert backwards_versions(engine) == 1
    with structlog.testing.capture_logs() as logs:
        upgrade(engine)
    assert current_revision(engine) == head_revision()
    repaired = [e for e in logs if e["event"].startswith("history versions that ended before")]
    assert [e["versions"] for e in repaired] == [2]
    assert backwards_versions(engine) == 0
    tick = first + timedelta(microseconds=1)
    with engine.connect() as conn:
        versions = conn.execute(
            select(history.c.valid_from, history.c.valid_to)
            .where(history.c.id == portal)
            .order_by(history.c.version_id)
        ).all()
        current = conn.execute(select(portals.c.valid_from).where(portals.c.id == portal))
        assert current.scalar_one() == tick
        assert _views(conn) == views  # SQLite rebuilt the tables under them
        conn.execute(text("SELECT count(*) FROM changes")).scalar_one()
    assert [tuple(v) for v in versions] == [(first, tick), (tick, None)]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(history.update().where(history.c.id == portal).values(valid_to=back))


def _views(conn: Any) -> list[str]:
    if conn.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name"
    else:
        query = "SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY viewname"
    return list(conn.execute(text(query)).scalars())


# --- SQLite: per-account locks across processes, found through symlinks -------------------------


def test_sqlite_locks_are_found_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "data" / "inventory.db"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "elsewhere.db"
    link.symlink_to(real)
    with FileLocks(real).hold("acct") as mine:
        assert mine
        with FileLocks(link).hold("acct") as theirs:
            assert not theirs
        with FileLocks(link).hold("other") as other:
            assert other
        assert FileLocks(link).holder("acct") == str(os.getpid())
    with FileLocks(link).hold("acct") as after:
        assert after
    daemon = SingleDaemonLock(real)
    daemon.acquire()
    try:
        with pytest.raises(AlreadyRunningError) as refused:
            SingleDaemonLock(link).acquire()
    finally:
        daemon.release()
    message = " ".join(str(refused.value).split())
    assert f"(pid {os.getpid()}) already uses {link} (that is {real})" in message
    again = SingleDaemonLock(link)
    again.acquire()  # free again once the first one let go
    again.release()


def _cli_env(sim: SimulatedCloudflare, api_url: str, db_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    return {
        **base,
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [{"id": a, "api_token": sim.api_token} for a in sim.account_ids]
        ),
        "INVENTORY_LOG_FORMAT": "json",
    }


def _inventory(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # two processes: the daemon, then `inventory sync` beside it
def test_inventory_sync_beside_the_daemon_skips_only_the_accounts_it_holds(
    engine: Engine, db_url: str, sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    held = sim.account_ids[0]
    url = db_url
    if engine.dialect.name == "sqlite":  # the daemon's path and the user's differ
        link = tmp_path / "link-to.db"
        link.symlink_to(_db_file(db_url))
        url = f"sqlite:///{link}"
        locks: AccountLocks = FileLocks(_db_file(db_url))
    else:
        locks = AdvisoryLocks(engine)
    env = _cli_env(sim, api_url, url)
    with locks.hold(held) as taken:  # as the daemon holds an account while it syncs it
        assert taken
        as_json = _inventory(["sync", "--json"], env, tmp_path)
        table = _inventory(["sync"], env, tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    results = {r["account_id"]: r for r in json.loads(as_json.stdout)}
    assert results[held]["status"] == "skipped"
    who = f" (pid {os.getpid()})" if engine.dialect.name == "sqlite" else ""
    reason = f"another process{who} is syncing this account; skipped, not a failure"
    assert results[held]["error"] == reason
    assert results[held]["run_id"] is None
    assert {r["status"] for a, r in results.items() if a != held} == {"succeeded"}
    assert table.returncode == 0, table.stderr
    # the table folds long errors over several lines: read it without spaces and borders
    compact = re.sub(r"[\s│┃─━┏┓┗┛┡┩└┘┣┫┳┻╇╈┼┬┴├┤╋]", "", table.stdout)
    assert f"{held}skipped" in compact
    assert reason.replace(" ", "") in compact
    count = one(engine, "SELECT count(*) FROM sync_runs WHERE account_id = :a", a=held)[0]
    assert count == 0


@pytest.mark.slow  # a daemon process, then a second one
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_daemon_through_a_symlink_is_refused(
    db_url: str, sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    link = tmp_path / "same-file.db"
    link.symlink_to(_db_file(db_url))
    first = SingleDaemonLock(_db_file(db_url))  # as `inventory run` on the real path holds it
    first.acquire()
    try:
        env = {
            **_cli_env(sim, api_url, f"sqlite:///{link}"),
            "INVENTORY_METRICS_ADDRESS": "127.0.0.1:0",
        }
        second = _inventory(["run"], env, tmp_path)
    finally:
        first.release()
    assert second.returncode == 2
    said = " ".join(second.stderr.split())
    assert f"(pid {os.getpid()}) already uses {link} (that is {_db_file(db_url)})" in said
    assert "Traceback" not in second.stderr


# --- the daemon closes its own runs --------------------------------------------------------------


def test_the_daemon_closes_runs_whose_work_ended_or_whose_process_is_gone(
    db_url: str, client: CloudflareClient, settings: Settings, sim: SimulatedCloudflare
) -> None:
    first, second = settings.accounts[0], settings.accounts[1]
    sim.faults.add(Fault(kind="status", status=401, account_id=second.id, endpoint="servers"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with blocked_outcome(db_url) as (engine, blocker):
        syncer(engine, client).sync_account(first)
        failing = failing_while_blocked(engine, client, blocker, close_retry_waits=())
        unrecorded = failing.sync_account(second)
        blocker.release()
        assert run_status(engine, unrecorded.run_id) == "running"
        with engine.begin() as conn:  # a run of this host whose process is gone
            runs = models.table_of(models.SyncRun)
            dead = conn.execute(
                runs.insert()
                .values(
                    account_id=first.id,
                    status="running",
                    started_at=datetime.now(UTC),
                    host=failing.host,
                    pid=gone.pid,
                )
                .returning(runs.c.id)
            ).scalar_one()
        Daemon(settings, DaemonOptions())._close_runs(failing)  # its job, every minute
        assert run_status(engine, unrecorded.run_id) == "failed"
        assert run_status(engine, dead) == "abandoned"
