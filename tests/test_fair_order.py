"""Accounts that share a token are served oldest-last-success first (never synced first)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from inventory.daemon.runner import Daemon, DaemonOptions
from inventory.daemon.service import open_client
from inventory.simulator import SimulatedCloudflare
from inventory.sync.syncer import Syncer
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
    for account in settings.accounts:  # the cycle's jobs fired in the configured order
        daemon._due[account.id] = account
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
        daemon._due[account.id] = account
    chosen = [daemon._next_due(engine) for _ in others]
    taken = {a.id for a in chosen if a is not None}
    assert taken == {a.id for a in others}
    assert daemon._next_due(engine) is None  # the busy one waits until its sync ends
