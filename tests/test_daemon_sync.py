"""What the daemon adds to a sync: per-account locks, cycles, cancellation, a dead database."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, insert, select, text

from inventory.daemon.schedule import AlignedInterval, Schedule, cycle_start, schedule_trigger
from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.db.locks import AdvisoryLocks, AlreadyRunningError, SingleDaemonLock, advisory_key
from inventory.settings import Settings
from inventory.sync.syncer import Syncer
from tests.support.daemon import free_port

# Advisory locks are PostgreSQL's: these tests take only the db_url fixture's PostgreSQL variant.
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def daemon_syncer(engine: Engine, settings: Settings) -> Iterator[Syncer]:
    locks = AdvisoryLocks(engine) if engine.dialect.name == "postgresql" else None
    with open_client(settings) as client:
        yield Syncer(engine=engine, client=client, per_page=2, locks=locks)


def sync_runs(engine: Engine) -> list[models.SyncRun]:
    table = models.table_of(models.SyncRun)
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())  # type: ignore[arg-type]


def test_advisory_key_is_stable_and_a_bigint() -> None:
    assert advisory_key("023e105f4ecef8ad9ca31a8372d0c353") == advisory_key(
        "023e105f4ecef8ad9ca31a8372d0c353"
    )
    assert advisory_key("a") != advisory_key("b")
    assert -(2**63) <= advisory_key("a") < 2**63


@postgresql_only
def test_an_advisory_lock_excludes_other_sessions_and_dies_with_its_connection(
    engine: Engine, db_url: str
) -> None:
    other = make_engine(db_url)
    mine, theirs = AdvisoryLocks(engine), AdvisoryLocks(other)
    try:
        with mine.hold("acct-a") as got:
            assert got
            with theirs.hold("acct-a") as also:
                assert not also
            with theirs.hold("acct-b") as different:
                assert different
        with theirs.hold("acct-a") as after:
            assert after
        # a replica killed with SIGKILL: its session ends without unlocking
        conninfo = db_url.replace("postgresql+psycopg://", "postgresql://")
        dying = psycopg.connect(conninfo, autocommit=True)
        dying.execute("SELECT pg_advisory_lock(%s)", (advisory_key("acct-a"),))
        with theirs.hold("acct-a") as during:
            assert not during
        dying_pid = dying.info.backend_pid
        dying.close()
        # The server ends the backend (and its locks) after the client has gone: wait for that.
        with psycopg.connect(conninfo, autocommit=True) as admin:
            for _ in range(500):
                gone = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (dying_pid,)
                ).fetchone()
                if gone == (0,):
                    break
                time.sleep(0.02)
        with theirs.hold("acct-a") as freed:
            assert freed
    finally:
        other.dispose()


def test_one_daemon_per_sqlite_file(tmp_path: Path) -> None:
    first, second = SingleDaemonLock(tmp_path / "x.db"), SingleDaemonLock(tmp_path / "x.db")
    first.acquire()
    with pytest.raises(AlreadyRunningError, match=r"\(pid \d+\) already uses .*x\.db"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_a_cancelled_sync_writes_nothing_and_is_recorded_as_aborted(
    daemon_syncer: Syncer, settings: Settings, engine: Engine
) -> None:
    account = settings.accounts[0]
    cancel = threading.Event()
    daemon_syncer.cancel = cancel
    daemon_syncer.on_page = lambda *_: cancel.set()
    result = daemon_syncer.sync_account(account)
    assert (result.status, result.error_class) == ("failed", "Aborted")
    [run] = sync_runs(engine)
    assert (run.status, run.error_class, run.added) == ("failed", "Aborted", 0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM portals")).scalar_one() == 0


def test_an_account_synced_in_this_cycle_is_skipped(
    daemon_syncer: Syncer, settings: Settings, engine: Engine
) -> None:
    account = settings.accounts[0]
    cycle = datetime.now(UTC) - timedelta(seconds=1)
    assert daemon_syncer.sync_account(account, cycle_start=cycle).status == "succeeded"
    skipped = daemon_syncer.sync_account(account, cycle_start=cycle)
    assert (skipped.status, skipped.run_id) == ("skipped", None)
    assert len(sync_runs(engine)) == 1
    later = datetime.now(UTC)
    assert daemon_syncer.sync_account(account, cycle_start=later).status == "succeeded"
    assert len(sync_runs(engine)) == 2


@pytest.mark.parametrize("ran_by", ["another replica", "this process"])
def test_a_late_run_that_ended_in_this_cycle_counts_for_it_when_another_process_ran_it(
    daemon_syncer: Syncer, settings: Settings, engine: Engine, ran_by: str
) -> None:
    account = settings.accounts[0]
    daemon_syncer.sync_account(account)  # the account is known, its first run long over
    cycle = datetime.now(UTC)
    host, pid = (
        ("elsewhere", 1) if ran_by == "another replica" else (daemon_syncer.host, os.getpid())
    )
    with engine.begin() as conn:  # last cycle's sync, begun late, ended as this cycle began
        conn.execute(
            insert(models.table_of(models.SyncRun)).values(
                account_id=account.id,
                status="succeeded",
                started_at=cycle - timedelta(seconds=5),
                finished_at=cycle,
                host=host,
                pid=pid,
            )
        )
    result = daemon_syncer.sync_account(account, cycle_start=cycle)
    if ran_by == "another replica":  # its read is this cycle's: no second sync at once
        assert (result.status, result.error) == ("skipped", "already synced in this cycle")
    else:  # an overlap here: a fire found it running and asked for one more sync
        assert result.status == "succeeded"


@postgresql_only
def test_a_locked_account_is_skipped_and_a_dead_replicas_run_is_closed(
    daemon_syncer: Syncer, settings: Settings, engine: Engine, db_url: str
) -> None:
    account = settings.accounts[0]
    daemon_syncer.sync_account(account)
    runs = models.table_of(models.SyncRun)
    with engine.begin() as conn:  # a replica that died mid-sync on another host
        conn.execute(
            insert(runs).values(
                account_id=account.id,
                status="running",
                started_at=datetime.now(UTC),
                host="elsewhere",
                pid=1,
            )
        )
    other = make_engine(db_url)
    try:
        with AdvisoryLocks(other).hold(account.id):
            result = daemon_syncer.sync_account(account)
        assert (result.status, result.run_id) == ("skipped", None)
        assert [r.status for r in sync_runs(engine)] == ["succeeded", "running"]
    finally:
        other.dispose()
    assert daemon_syncer.sync_account(account).status == "succeeded"
    dead = sync_runs(engine)[1]
    assert (dead.status, dead.error_class) == ("abandoned", "Abandoned")


@postgresql_only
@pytest.mark.parametrize("locked", [False, True])
def test_a_dead_database_fails_the_accounts_without_raising(
    settings: Settings, engine: Engine, locked: bool
) -> None:
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")
    with open_client(settings) as client:
        syncer = Syncer(engine=dead, client=client, locks=AdvisoryLocks(dead) if locked else None)
        results = syncer.sync_all(settings.accounts, max_concurrency=2)
    assert {r.status for r in results} == {"failed"}
    assert all(r.error and r.error.startswith("database error:") for r in results)
    dead.dispose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_cycles_are_shared_by_every_replica() -> None:
    every_15m = schedule_trigger(Schedule(sync_cron=None, sync_interval=900))
    assert cycle_start(every_15m, at("2026-03-04 10:29:59")) == at("2026-03-04 10:15:00")
    assert cycle_start(every_15m, at("2026-03-04 10:30:00")) == at("2026-03-04 10:30:00")
    # after a start-up sync at any moment, the next fire is the next shared boundary
    assert isinstance(every_15m, AlignedInterval)
    startup = at("2026-03-04 10:21:07")
    assert every_15m.get_next_fire_time(startup, startup) == at("2026-03-04 10:30:00")
    weekdays = schedule_trigger(Schedule(sync_cron="0 9 * * 1-5", sync_interval=900))
    assert cycle_start(weekdays, at("2026-03-08 12:00:00")) == at("2026-03-06 09:00:00")  # Sunday
