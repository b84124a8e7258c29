"""The unchanged-resync fast path (inventory.db.memo): skipped only when it is safe to skip.

A resync whose every page comes back byte for byte as the last clean run read it decodes,
diffs and writes nothing but its run. Whatever else happened since that run (a partial run, a
run by other code, another transform revision, a change in either listing) makes the sync do
the full work, and the mirror always ends up equal to the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select, update

from inventory.daemon.service import open_client
from inventory.db import models
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.db import count
from tests.support.faultkit import ENTITY_TABLES, snapshot
from tests.support.writes import count_writes


@pytest.fixture
def syncer(engine: Engine, settings: Settings) -> Iterator[Syncer]:
    with open_client(settings) as client:
        yield Syncer(engine=engine, client=client, per_page=settings.page_size)


def sync(syncer: Syncer, settings: Settings) -> list[AccountResult]:
    return syncer.sync_all(settings.accounts, max_concurrency=2)


def memo_of(engine: Engine, account_id: str) -> object:
    accounts = models.table_of(models.Account)
    with engine.connect() as conn:
        query = select(accounts.c.listing_memo).where(accounts.c.id == account_id)
        return conn.execute(query).scalar_one()


def test_unchanged_resync_decodes_and_writes_nothing_but_its_run(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    first = sync(syncer, settings)
    assert [r.unchanged for r in first] == [False] * 3
    before = snapshot(engine)
    sim.clear_requests()
    with count_writes(engine) as writes:
        again = sync(syncer, settings)
    assert [(r.status, r.unchanged) for r in again] == [("succeeded", True)] * 3
    assert [r.requests for r in again] == [r.requests for r in first]  # same pages, no extra
    assert all(not any(c.values()) for r in again for c in r.counts.values())
    assert {t: n for t, n in writes.items() if t in ENTITY_TABLES and n} == {}
    # run insert (SQLite reports no rowcount for INSERT … RETURNING) + the account's latest
    # run marked running + run update + account
    assert {t for t, n in writes.items() if n} == {"sync_runs", "accounts"}
    assert sum(writes.values()) <= 4 * len(again)
    assert snapshot(engine) == before
    # and the memo carried forward keeps the next resync on the fast path
    assert [r.unchanged for r in sync(syncer, settings)] == [True] * 3


def test_a_change_in_one_listing_decodes_the_other_one_held(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[0]
    server = sim.server_ids(account)[0]
    links = count(engine, "portal_servers", "account_id = :a", a=account)
    sim.add_tool(account, server)  # the servers listing changes; the portals pages too when
    # the server is attached (they embed its tools), so detach nothing and check both cases
    results = sync(syncer, settings)
    assert results[0].unchanged is False
    assert results[0].counts["tool"]["added"] >= 1
    assert [r.unchanged for r in results[1:]] == [True, True]
    assert count(engine, "portal_servers", "account_id = :a", a=account) == links
    assert sum(c["removed"] for c in results[0].counts.values()) == 0
    assert count(engine, "tools", "account_id = :a", a=account) == sum(
        len(s["tools"]) for s in sim.servers(account)
    )


def test_only_the_servers_listing_changing_keeps_every_portal_row(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[1]
    unattached = sim.unattached_server_ids(account)[0]
    before = {t: count(engine, t, "account_id = :a", a=account) for t in ENTITY_TABLES}
    sim.add_tool(account, unattached)  # in no portal: only /servers changes
    results = sync(syncer, settings)
    assert results[1].unchanged is False
    assert results[1].counts["tool"] == {"added": 1, "changed": 0, "removed": 0}
    assert results[1].counts["portal"] == {"added": 0, "changed": 0, "removed": 0}
    assert results[1].counts["portal_server"] == {"added": 0, "changed": 0, "removed": 0}
    after = {t: count(engine, t, "account_id = :a", a=account) for t in ENTITY_TABLES}
    assert after["portals"] == before["portals"]
    assert after["portal_servers"] == before["portal_servers"]
    assert after["tools"] == before["tools"] + 1


def test_a_partial_run_leaves_no_memo_to_trust(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[2]
    assert memo_of(engine, account) is not None
    sim.faults.add(
        Fault(kind="invalid_record", violation="wrong_type", account_id=account, endpoint="servers")
    )
    assert sync(syncer, settings)[2].status == "partial"
    assert memo_of(engine, account) is None
    sim.faults.clear()
    results = sync(syncer, settings)
    assert (results[2].status, results[2].unchanged) == ("succeeded", False)
    assert sync(syncer, settings)[2].unchanged is True


def tamper(engine: Engine, account_id: str) -> str:
    """What a partial run may leave: a stored portal that no longer says what the API says."""
    portals = models.table_of(models.Portal)
    with engine.begin() as conn:
        portal_id = conn.execute(
            select(portals.c.id).where(portals.c.account_id == account_id).limit(1)
        ).scalar_one()
        conn.execute(
            update(portals)
            .where(portals.c.account_id == account_id, portals.c.id == portal_id)
            .values(name="tampered", content_hash="0" * 32)
        )
    return str(portal_id)


def test_a_later_run_that_wrote_without_a_memo_disables_it(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[0]
    portal_id = tamper(engine, account)
    runs = models.table_of(models.SyncRun)
    with engine.begin() as conn:  # a run by code that keeps no memo (an older replica, say)
        conn.execute(
            insert(runs).values(
                account_id=account, status="partial", started_at=datetime.now(UTC), requests=0
            )
        )
    results = sync(syncer, settings)
    assert results[0].unchanged is False
    assert results[0].counts["portal"]["changed"] == 1
    assert count(engine, "portals", "id = :p AND name = 'tampered'", p=portal_id) == 0


def test_a_memo_of_another_transform_revision_is_ignored(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[1]
    portal_id = tamper(engine, account)
    stored = memo_of(engine, account)
    assert isinstance(stored, dict)
    memo = {**stored, "revision": -1}
    with engine.begin() as conn:
        conn.execute(
            update(models.table_of(models.Account))
            .where(models.table_of(models.Account).c.id == account)
            .values(listing_memo=memo)
        )
    results = sync(syncer, settings)
    assert results[1].unchanged is False
    assert results[1].counts["portal"]["changed"] == 1
    assert count(engine, "portals", "id = :p AND name = 'tampered'", p=portal_id) == 0
    assert sync(syncer, settings)[1].unchanged is True


def test_a_listing_that_grew_by_a_page_is_read_in_full(
    sim: SimulatedCloudflare, engine: Engine, settings: Settings
) -> None:
    small_pages = settings.model_copy(update={"page_size": 2})
    with open_client(small_pages) as client:
        syncer = Syncer(engine=engine, client=client, per_page=2)
        sync(syncer, small_pages)
        account = sim.account_ids[0]
        for server in sim.unattached_server_ids(account)[:1]:
            sim.add_tool(account, server)
        for _ in range(3):
            sim.add_portal(account)
        results = sync(syncer, small_pages)
        assert results[0].unchanged is False
        assert results[0].counts["portal"]["added"] == 3
        assert count(engine, "portals", "account_id = :a", a=account) == len(sim.portals(account))
        assert [r.unchanged for r in sync(syncer, small_pages)] == [True] * 3


def test_a_run_that_writes_while_this_one_fetches_disables_the_memo(
    engine: Engine, settings: Settings, sim: SimulatedCloudflare
) -> None:
    # On SQLite a one-shot `inventory sync` may run beside the daemon (no per-account lock):
    # the memo read before fetching is checked again inside the writing transaction.
    account = sim.account_ids[0]
    armed: list[bool] = []
    tampered: list[str] = []

    def meanwhile(account_id: str, endpoint: str, page: int, items: int) -> None:
        if armed and not tampered and account_id == account:
            tampered.append(tamper(engine, account))
            with engine.begin() as conn:
                conn.execute(
                    insert(models.table_of(models.SyncRun)).values(
                        account_id=account, status="succeeded", started_at=datetime.now(UTC)
                    )
                )

    with open_client(settings) as client:
        syncer = Syncer(
            engine=engine, client=client, per_page=settings.page_size, on_page=meanwhile
        )
        sync(syncer, settings)
        armed.append(True)
        results = sync(syncer, settings)
    assert tampered
    assert results[0].unchanged is False
    assert results[0].counts["portal"]["changed"] == 1
    assert count(engine, "portals", "id = :p AND name = 'tampered'", p=tampered[0]) == 0
    assert [r.unchanged for r in results[1:]] == [True, True]
