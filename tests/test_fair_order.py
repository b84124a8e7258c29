"""Accounts that share a token are served oldest-last-success first (never synced first);
every firing marks its account due, and a firing during the account's own sync syncs it once
more when that sync ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from sqlalchemy import Engine

from inventory.daemon.runner import Daemon, DaemonOptions
from inventory.daemon.schedule import cycle_length, cycle_start
from inventory.daemon.service import open_client
from inventory.settings import AccountConfig
from inventory.simulator import SimulatedCloudflare
from inventory.sync.syncer import Syncer, utc_now
from tests.support.settings import settings_for


def test_due_accounts_are_taken_oldest_last_success_first(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    first, second, never = settings.accounts
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with open_client(settings, engine) as client:
        # `second` succeeded long ago, `first` recently, `never` not at all.
        for account, at in ((second, now - timedelta(hours=2)), (first, now)):
            syncer = Syncer(engine=engine, client=client, clock=fixed(at))
            assert syncer.sync_account(account).status == "succeeded"
    daemon = Daemon(settings, DaemonOptions())
    for account in settings.accounts:  # the cycle's schedules fired in the configured order
        daemon._due.add(account.id)
    taken = [daemon._next_due(engine) for _ in range(4)]
    assert [a.id if a is not None else None for a in taken] == [
        never.id,
        second.id,
        first.id,
        None,
    ]


def fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def test_an_account_being_synced_is_not_taken_twice(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    daemon = Daemon(settings, DaemonOptions())
    busy, *others = settings.accounts
    daemon._running.add(busy.id)
    for account in settings.accounts:
        daemon._due.add(account.id)
    chosen = [daemon._next_due(engine) for _ in others]
    taken = {a.id for a in chosen if a is not None}
    assert taken == {a.id for a in others}
    assert daemon._next_due(engine) is None  # the busy one waits until its sync ends


def test_a_firing_while_the_accounts_sync_runs_syncs_it_once_more_when_that_ends(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    daemon = Daemon(settings, DaemonOptions())
    first, *_ = settings.accounts
    synced: list[str] = []

    def sync_account(account: AccountConfig, *, cycle_start: datetime) -> SimpleNamespace:
        synced.append(account.id)
        if len(synced) == 1:  # two cycles fire while the first sync runs: one more sync
            for _ in range(2):
                daemon._on_fire(SimpleNamespace(job_id=account.id))
        return SimpleNamespace(status="succeeded")

    syncer = cast(Syncer, SimpleNamespace(engine=engine, sync_account=sync_account))
    daemon._sync_job(syncer, first)
    assert synced == [first.id, first.id]
    overlaps = daemon.metrics.registry.get_sample_value(
        "inventory_sync_overlaps_total", {"account": first.id}
    )
    assert overlaps == 2
    skipped = daemon.metrics.registry.get_sample_value(
        "inventory_sync_runs_total", {"account": first.id, "status": "skipped"}
    )
    assert not skipped  # an overlap is not a run: the run it waits for counts once


def test_a_firing_marks_its_account_due_though_its_job_is_busy_elsewhere(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    daemon = Daemon(settings, DaemonOptions())
    first, second, third = settings.accounts
    synced: list[str] = []

    def sync_account(account: AccountConfig, *, cycle_start: datetime) -> SimpleNamespace:
        synced.append(account.id)
        if account.id == first.id:  # `third` fires while `second`'s job syncs `first`
            daemon._on_fire(SimpleNamespace(job_id=third.id))
        return SimpleNamespace(status="succeeded")

    daemon._on_fire(SimpleNamespace(job_id="prune"))  # housekeeping is never due
    daemon._mark_due(first.id)
    syncer = cast(Syncer, SimpleNamespace(engine=engine, sync_account=sync_account))
    daemon._sync_job(syncer, second)  # one job serves every due account, none waits a cycle
    assert synced == [first.id, second.id, third.id]
    assert daemon._due == set()
    overlaps = daemon.metrics.registry.get_sample_value(
        "inventory_sync_overlaps_total", {"account": third.id}
    )
    assert not overlaps  # its job was busy, not its sync: not an overlap


def test_an_account_is_overdue_once_the_cycle_it_became_due_in_is_over(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Overdue: the budget did not cover the cycle it became due in, so its requests ask for
    an even pace from then on, whether it was synced before or not."""
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    daemon = Daemon(settings, DaemonOptions())
    never, late, current = settings.accounts
    now = utc_now()
    with open_client(settings, engine) as client:
        for account, at in ((late, now - timedelta(days=2)), (current, now - timedelta(days=1))):
            syncer = Syncer(engine=engine, client=client, clock=fixed(at))
            assert syncer.sync_account(account).status == "succeeded"
    this_cycle = cycle_start(daemon.schedule, now)
    next_cycle = this_cycle + timedelta(seconds=cycle_length(daemon.schedule, now))
    for account in settings.accounts:
        daemon._mark_due(account.id)
    # `never` and `late` became due in the cycle before this one, `current` in this one.
    daemon._due_since[never.id] = this_cycle - timedelta(seconds=1)
    daemon._due_since[late.id] = this_cycle - timedelta(seconds=1)
    daemon._due_since[current.id] = this_cycle
    overdue = []
    for _ in settings.accounts:
        chosen = daemon._next_due(engine)
        assert chosen is not None
        overdue.append((chosen.id, daemon._chosen_overdue))
    assert overdue == [(never.id, this_cycle), (late.id, this_cycle), (current.id, next_cycle)]
    assert daemon._due_since == {}
