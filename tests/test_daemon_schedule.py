"""Per-account schedules and the retention job of `inventory run`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from inventory.daemon.runner import Daemon, DaemonOptions
from inventory.daemon.schedule import account_schedule
from inventory.daemon.service import open_client
from inventory.simulator import SimulatedCloudflare
from inventory.sync.syncer import Syncer
from tests.support.daemon import daemon_env, running, wait_until
from tests.support.settings import settings_for


@pytest.mark.slow
def test_an_account_with_its_own_interval_syncs_on_it(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    fast, *slow = sim.account_ids
    env = daemon_env(sim, api_url, db_url, tmp_path, sync_interval="1h")
    accounts = json.loads(env["INVENTORY_ACCOUNTS"])
    accounts[0]["sync_interval"] = "1s"
    env["INVENTORY_ACCOUNTS"] = json.dumps(accounts)

    def counts() -> Counter[str]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT account_id FROM sync_runs WHERE status='succeeded'"))
            return Counter(r.account_id for r in rows)

    with running(env, tmp_path) as daemon:
        daemon.wait_serving()
        wait_until(lambda: counts()[fast] >= 3)
        assert daemon.stop() == 0, daemon.output()
    done = counts()
    assert [done[a] for a in slow] == [1] * len(slow)  # only the start-up sync in an hour


def test_account_schedule_prefers_the_account_then_the_global(tmp_path: Path) -> None:
    sim = SimulatedCloudflare(accounts=1)
    settings = settings_for(sim, "http://127.0.0.1:9/client/v4", "sqlite://", cwd=tmp_path)
    account = settings.accounts[0]
    assert account_schedule(settings, account).sync_interval == settings.sync_interval
    own = account.model_copy(update={"sync_cron": "*/5 * * * *"})
    assert account_schedule(settings, own).sync_cron == "*/5 * * * *"


@pytest.mark.slow
def test_the_retention_job_prunes_old_closed_versions(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path, history_retention="30d")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    ticks = iter(long_ago + timedelta(seconds=i) for i in range(1000))
    with open_client(settings) as client:
        syncer = Syncer(engine=engine, client=client, clock=lambda: next(ticks))
        syncer.sync_all(settings.accounts)
        account = sim.account_ids[0]
        sim.rename_portal(account, sim.portal_ids(account)[0], "renamed long ago")
        syncer.sync_all(settings.accounts)
        with engine.connect() as conn:
            closed = conn.execute(
                text("SELECT count(*) FROM portals_history WHERE valid_to IS NOT NULL")
            )
            assert closed.scalar_one() == 1
        Daemon(settings, DaemonOptions())._prune_job(syncer)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM portals_history WHERE valid_to IS NOT NULL")
            ).scalar_one()
            == 0
        )
        current = conn.execute(
            text("SELECT name FROM portals WHERE account_id = :a AND name = 'renamed long ago'"),
            {"a": account},
        )
        assert current.scalar_one() == "renamed long ago"


def test_a_bad_account_schedule_is_a_configuration_error(tmp_path: Path) -> None:
    import pytest

    from inventory.errors import ConfigError
    from inventory.settings import load_settings

    bad = [{"id": "a" * 32, "api_token": "t", "sync_cron": "every tuesday"}]
    with pytest.raises(ConfigError, match="sync_cron"):
        load_settings(environ={"INVENTORY_ACCOUNTS": json.dumps(bad)}, cwd=tmp_path)
    good = [{"id": "a" * 32, "api_token": "t", "sync_interval": "5m"}]
    settings = load_settings(environ={"INVENTORY_ACCOUNTS": json.dumps(good)}, cwd=tmp_path)
    assert settings.accounts[0].sync_interval == 300


def test_a_schedule_that_never_fires_is_a_configuration_error_not_a_crash(tmp_path: Path) -> None:
    """Defence in depth: the settings refuse 30 February, and so does the daemon if it gets one."""
    from apscheduler.triggers.cron import CronTrigger

    from inventory.daemon.schedule import Schedule, cycle_length, cycle_start, schedule_trigger
    from inventory.errors import ConfigError

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    never = CronTrigger(day=30, month=2, hour=0, minute=0, timezone=UTC)  # as APScheduler takes it
    with pytest.raises(ConfigError, match="never fires"):
        cycle_length(never, now)
    with pytest.raises(ConfigError, match="never fires"):
        cycle_start(never, now)
    with pytest.raises(ConfigError, match=r"sync_cron: '0 0 30 2 \*' never fires"):
        schedule_trigger(Schedule(sync_cron="0 0 30 2 *", sync_interval=900))
    sim = SimulatedCloudflare(accounts=1)
    settings = settings_for(sim, "http://127.0.0.1:9/client/v4", "sqlite://", cwd=tmp_path)
    unchecked = settings.model_copy(update={"sync_cron": "0 0 30 2 *"})  # skips the validators
    with pytest.raises(ConfigError, match="never fires"):
        Daemon(unchecked, DaemonOptions())
    account = settings.accounts[0].model_copy(update={"sync_cron": "0 0 31 4 *"})
    with pytest.raises(ConfigError, match="never fires"):
        Daemon(settings.model_copy(update={"accounts": [account]}), DaemonOptions())
