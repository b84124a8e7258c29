"""The product's promises, end to end: simulator over HTTP → sync → real SQLite/PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text, update

from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.tables import TABLES
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.db import count, fresh_pg_database
from tests.support.faultkit import ENTITY_TABLES, Clock, snapshot
from tests.support.settings import settings_for
from tests.support.writes import count_writes


@pytest.fixture
def syncer(engine: Engine, settings: Settings) -> Iterator[Syncer]:
    with open_client(settings) as client:
        yield Syncer(engine=engine, client=client, per_page=settings.page_size, clock=Clock())


def sync(syncer: Syncer, settings: Settings) -> list[AccountResult]:
    return syncer.sync_all(settings.accounts, max_concurrency=2)


def test_first_sync_mirrors_the_api(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    results = sync(syncer, settings)
    assert [r.status for r in results] == ["succeeded"] * 3
    for account_id in sim.account_ids:
        portals = sim.portals(account_id)
        servers = sim.servers(account_id)
        links = {(p["id"], s["server_id"]) for p in portals for s in p["servers"]}
        tools = {(s["id"], t["name"]) for s in servers for t in s["tools"]}
        prompts = {(s["id"], t["name"]) for s in servers for t in s["prompts"]}
        where = "account_id = :a"
        assert count(engine, "portals", where, a=account_id) == len(portals)
        assert count(engine, "servers", where, a=account_id) == len(servers)
        assert count(engine, "portal_servers", where, a=account_id) == len(links)
        assert count(engine, "tools", where, a=account_id) == len(tools)
        assert count(engine, "prompts", where, a=account_id) == len(prompts)
        # unattached servers are there too
        attached = {s for _, s in links}
        assert {s["id"] for s in servers} - attached
    # every current row has exactly one open version
    for spec in TABLES.values():
        assert count(engine, spec.history.name, "valid_to IS NULL") == count(
            engine, spec.current.name
        )
    with engine.connect() as conn:
        runs = conn.execute(select(models.table_of(models.SyncRun))).mappings().all()
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(r["requests"] >= 2 and r["finished_at"] is not None for r in runs)
    assert all(r["started_at"].tzinfo is not None for r in runs)


def test_unchanged_resync_writes_no_entity_or_history_row(
    syncer: Syncer, settings: Settings, engine: Engine
) -> None:
    """The content-hash comparison alone: the page memo is cleared, so every page is decoded,
    transformed and diffed, and equal hashes must still write nothing (tests/test_unchanged.py
    covers the memo's own fast path)."""
    sync(syncer, settings)
    before = snapshot(engine)
    with engine.begin() as conn:
        conn.execute(update(models.table_of(models.Account)).values(listing_memo=None))
    with count_writes(engine) as writes:
        results = sync(syncer, settings)
    assert [r.status for r in results] == ["succeeded"] * 3
    assert [r.unchanged for r in results] == [False] * 3  # the comparison ran, not the memo
    assert all(not any(c.values()) for r in results for c in r.counts.values())
    assert {t: n for t, n in writes.items() if t in ENTITY_TABLES and n} == {}
    # only bookkeeping: one run row inserted and updated, one account row, per account
    assert sum(writes.values()) <= 4 * len(results)
    assert snapshot(engine) == before


def test_changes_yield_exactly_the_expected_history(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[0]
    portal = sim.portal_ids(account)[0]
    server, tooled = sim.server_ids(account)[:2]
    gone_tool = sim.tool_names(account, tooled)[0]
    sim.rename_portal(account, portal, "Renamed portal")
    sim.set_server_status(account, server, "error", error="upstream returned 502")
    new_tool = sim.add_tool(account, tooled)
    sim.remove_tool(account, tooled, gone_tool)

    with count_writes(engine) as writes:
        results = sync(syncer, settings)
    assert results[0].counts["portal"] == {"added": 0, "changed": 1, "removed": 0}
    assert results[0].counts["server"]["changed"] >= 1
    assert results[0].counts["tool"] == {"added": 1, "changed": 0, "removed": 1}
    assert [r.counts for r in results[1:]] == [
        {k: {"added": 0, "changed": 0, "removed": 0} for k in TABLES}
    ] * 2
    # at most three rows per changed entity, nothing for the unchanged ones
    changed = sum(n for r in results for c in r.counts.values() for n in c.values())
    entity_writes = sum(n for t, n in writes.items() if t in ENTITY_TABLES)
    assert entity_writes <= 3 * changed

    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT name, change, ended_by, valid_to IS NULL AS open FROM portals_history "
                "WHERE account_id = :a AND id = :p ORDER BY valid_from"
            ),
            {"a": account, "p": portal},
        ).all()
        assert [(n.change, n.ended_by, bool(n.open)) for n in names] == [
            ("created", "updated", False),
            ("updated", None, True),
        ]
        assert names[1].name == "Renamed portal"
        status = conn.execute(
            text(
                "SELECT status, error FROM servers_history WHERE account_id = :a AND id = :s "
                "ORDER BY valid_from"
            ),
            {"a": account, "s": server},
        ).all()
        assert status[-1].status == "error"
        assert status[-1].error == "upstream returned 502"
        tools = conn.execute(
            text(
                "SELECT name, change, ended_by FROM tools_history WHERE account_id = :a "
                "AND server_id = :s AND (name = :new OR name = :gone) ORDER BY name"
            ),
            {"a": account, "s": tooled, "new": new_tool, "gone": gone_tool},
        ).all()
        assert sorted((t.name, t.change, t.ended_by) for t in tools) == sorted(
            [(new_tool, "created", None), (gone_tool, "created", "deleted")]
        )
    assert count(engine, "tools", "name = :n AND server_id = :s", n=gone_tool, s=tooled) == 0


def test_deleted_portal_closes_its_links_and_restore_reopens(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[1]
    portal = sim.portal_ids(account)[0]
    links = count(
        engine, "portal_servers", "account_id = :a AND portal_id = :p", a=account, p=portal
    )
    assert links > 0
    sim.delete_portal(account, portal)
    results = sync(syncer, settings)
    assert results[1].counts["portal"]["removed"] == 1
    assert results[1].counts["portal_server"]["removed"] == links
    assert count(engine, "portals", "account_id = :a AND id = :p", a=account, p=portal) == 0
    assert (
        count(
            engine,
            "portal_servers_history",
            "account_id = :a AND portal_id = :p AND ended_by = 'deleted'",
            a=account,
            p=portal,
        )
        == links
    )
    sim.restore_portal(account, portal)
    results = sync(syncer, settings)
    assert results[1].counts["portal"]["added"] == 1
    assert count(engine, "portals_history", "account_id = :a AND id = :p", a=account, p=portal) == 2


def test_a_page_failing_forever_changes_nothing_stored(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path, page_size=2)
    with open_client(settings) as client:
        syncer = Syncer(engine=engine, client=client, per_page=2, clock=Clock())
        sync(syncer, settings)
        before = snapshot(engine)
        victim = sim.account_ids[0]
        # a real change that must NOT be recorded, since the listing cannot be completed
        sim.delete_portal(victim, sim.portal_ids(victim)[0])
        sim.faults.add(
            Fault(kind="status", status=500, account_id=victim, endpoint="servers", page=3)
        )
        results = sync(syncer, settings)
    assert results[0].status == "failed"
    assert "500" in (results[0].error or "")
    assert [r.status for r in results[1:]] == ["succeeded", "succeeded"]
    assert snapshot(engine) == before
    with engine.connect() as conn:
        run = (
            conn.execute(
                select(models.table_of(models.SyncRun)).where(
                    models.SyncRun.id == results[0].run_id
                )
            )
            .mappings()
            .one()
        )
    assert run["status"] == "failed"
    assert run["error_class"] == "ApiError" or run["error_class"] == "TransportError"
    assert run["finished_at"] is not None


def test_rejected_record_keeps_what_was_stored(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[2]
    before = snapshot(engine)
    first_server = sim.servers(account)[0]["id"]
    sim.faults.add(
        Fault(kind="invalid_record", violation="wrong_type", account_id=account, endpoint="servers")
    )
    results = sync(syncer, settings)
    assert results[2].status == "partial"
    assert results[2].rejected == 1
    assert snapshot(engine) == before  # nothing else changed, and the rejected server stayed
    assert count(engine, "servers", "account_id = :a AND id = :s", a=account, s=first_server) == 1
    with engine.connect() as conn:
        rejected = conn.execute(select(models.table_of(models.RejectedRecord))).mappings().one()
    assert rejected["kind"] == "server"
    assert rejected["entity_id"] == first_server
    assert "name" in rejected["reason"]


def test_inconsistent_listing_records_no_deletion(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path, page_size=2)
    with open_client(settings) as client:
        syncer = Syncer(engine=engine, client=client, per_page=2, clock=Clock())
        sync(syncer, settings)
        account = sim.account_ids[0]
        portals_before = count(engine, "portals", "account_id = :a", a=account)
        # an item inserted before page 2 is read: page 2 repeats an item from page 1
        sim.faults.add(
            Fault(kind="drift_insert", account_id=account, endpoint="portals", page=2, times=1)
        )
        results = sync(syncer, settings)
    assert results[0].status == "partial"
    assert results[0].consistent is False
    assert results[0].counts["portal"]["removed"] == 0
    assert count(engine, "portals", "account_id = :a", a=account) >= portals_before


def test_one_account_failing_does_not_stop_the_others(
    syncer: Syncer, settings: Settings, sim: SimulatedCloudflare
) -> None:
    sim.revoke(sim.account_ids[1])
    results = sync(syncer, settings)
    assert [r.status for r in results] == ["succeeded", "failed", "succeeded"]
    assert results[1].error_class == "AuthError"
    assert "10000" in (results[1].error or "")
    assert sim.api_token not in (results[1].error or "")


def test_restart_closes_runs_left_running_as_abandoned(
    syncer: Syncer, settings: Settings, engine: Engine
) -> None:
    sync(syncer, settings)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    with engine.begin() as conn:
        conn.execute(
            insert(models.table_of(models.SyncRun)).values(
                account_id=settings.accounts[0].id,
                status="running",
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                host=socket.gethostname(),
                pid=dead_pid,
            )
        )
    sync(syncer, settings)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(models.SyncRun.pid, models.SyncRun.status).where(
                    models.SyncRun.pid.in_([dead_pid, os.getpid()])
                )
            ).all()
        )
    assert statuses[dead_pid] == "abandoned"


def test_order_of_listing_is_not_a_change(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    sim.shuffle(sim.account_ids[0])
    with count_writes(engine) as writes:
        sync(syncer, settings)
    assert {t: n for t, n in writes.items() if t in ENTITY_TABLES and n} == {}


def test_failed_write_rolls_back_the_whole_account(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    """A reader never sees half an account's sync: a failure mid-write leaves nothing behind."""
    sync(syncer, settings)
    account = sim.account_ids[0]
    before = snapshot(engine)
    sim.rename_portal(account, sim.portal_ids(account)[0], "changed before the failure")
    server = sim.server_ids(account)[0]
    sim.add_tool(account, server, {"name": "boom", "description": "the database refuses this"})
    # a second new tool: the refused row is one of a bulk insert (COPY / driver executemany)
    sim.add_tool(account, server, {"name": "fine", "description": "inserted with it"})
    _refuse_tool_named(engine, "boom")
    results = sync(syncer, settings)
    assert results[0].status == "failed"
    assert "database error" in (results[0].error or "")
    assert [r.status for r in results[1:]] == ["succeeded", "succeeded"]
    assert snapshot(engine) == before


def _refuse_tool_named(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON tools WHEN NEW.name = '{name}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON tools "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def test_account_removed_from_configuration_keeps_its_data(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    from inventory.daemon.service import run_sync

    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    run_sync(settings, settings.accounts)
    gone = settings.accounts[2].id
    run_sync(settings, settings.accounts[:2])
    with engine.connect() as conn:
        configured = dict(conn.execute(select(models.Account.id, models.Account.configured)).all())
    assert configured[gone] is False
    assert count(engine, "portals", "account_id = :a", a=gone) > 0


def test_unknown_fields_are_kept_in_raw(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    with engine.connect() as conn:
        raws = [r for (r,) in conn.execute(select(models.Portal.raw))]
    assert raws
    assert all("servers" not in r for r in raws)
    listed_keys = {k for a in sim.account_ids for p in sim.portals(a) for k in p} - {"servers"}
    stored_keys = {k for r in raws for k in r}
    assert listed_keys == stored_keys


def test_timestamps_are_aware_utc(syncer: Syncer, settings: Settings, engine: Engine) -> None:
    sync(syncer, settings)
    with engine.connect() as conn:
        row = conn.execute(select(models.Server.valid_from, models.Server.modified_at)).first()
        assert row is not None
        assert row.valid_from.tzinfo is not None
        assert row.valid_from.utcoffset() == timedelta(0)
        assert conn.execute(select(func.count()).select_from(models.Server)).scalar_one() > 0


def test_a_sync_runs_with_fewer_young_collections_and_restores_the_gc() -> None:
    import gc

    from inventory.daemon.service import fewer_collections

    before = gc.get_threshold()
    seen: list[int] = []

    def failing_sync() -> None:
        with fewer_collections():
            seen.append(gc.get_threshold()[0])
            raise RuntimeError("a failing sync")

    with pytest.raises(RuntimeError):
        failing_sync()
    assert seen[0] >= 10_000
    assert gc.get_threshold() == before


@contextmanager
def _another_database(engine: Engine, tmp_path: Path, template: Path) -> Iterator[str]:
    """A second migrated, empty database of the same kind as ``engine``'s."""
    if engine.dialect.name == "sqlite":
        path = tmp_path / "other.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    with fresh_pg_database() as url:
        yield url


@pytest.mark.slow
@pytest.mark.parallel
def test_bulk_inserts_store_exactly_what_insert_stores(
    engine: Engine,
    settings: Settings,
    sim: SimulatedCloudflare,
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two databases follow the same API, one written in bulk (COPY on PostgreSQL, the driver's
    executemany on SQLite), the other through SQLAlchemy's INSERT only."""
    from inventory.db import bulk as bulk_inserts
    from inventory.db.engine import make_engine

    assert bulk_inserts.BULK_MIN_ROWS == 2
    with (
        _another_database(engine, tmp_path, sqlite_template) as url,
        open_client(settings) as client,
    ):
        other = make_engine(url)
        try:
            bulk = Syncer(engine=engine, client=client, clock=Clock())
            inserting = Syncer(engine=other, client=client, clock=Clock())
            for _ in range(2):
                for syncer, threshold in ((bulk, 2), (inserting, 10**9)):
                    monkeypatch.setattr(bulk_inserts, "BULK_MIN_ROWS", threshold)
                    # one account at a time: clock ticks and run ids come in the same order
                    results = syncer.sync_all(settings.accounts, max_concurrency=1)
                    assert {r.status for r in results} == {"succeeded"}
                sim.advance(6)  # then updates and deletes: versions closed and inserted
            written, inserted = _as_text(engine), _as_text(other)
        finally:
            other.dispose()
    assert sum(len(rows) for rows in written.values()) > 500
    for name, rows in inserted.items():
        assert written[name] == rows, name


def _as_text(engine: Engine) -> dict[str, list[str]]:
    """Every entity row as the database prints it: SQL NULL and JSON null differ here, and
    so do a timestamp's text and its type on SQLite."""
    rows: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name in ENTITY_TABLES:
            table = models.Base.metadata.tables[name]
            order = ", ".join(f"t.{c.name}" for c in table.primary_key.columns)
            if engine.dialect.name == "postgresql":
                row = "t::text"
            else:
                row = " || '|' || ".join(
                    f"typeof(t.{c.name}) || ':' || quote(t.{c.name})" for c in table.columns
                )
            query = text(f"SELECT {row} FROM {name} t ORDER BY {order}")
            rows[name] = [str(r[0]) for r in conn.execute(query)]
    return rows
