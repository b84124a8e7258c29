"""History fidelity: observations are not versions, JSON is exact, order never matters, new
enum values are kept. Against the simulator over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, select, text, update

from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.load import apply_changes, read_observed, read_stored
from inventory.db.merge import merge_observation_versions
from inventory.db.migrate import migrations_dir, upgrade
from inventory.reports.queries import changes, show_server
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.sync.diff import diff_snapshot
from inventory.sync.digest import content_hash
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from inventory.sync.transform import transform_account
from tests.support.cli import run

DAY = timedelta(days=1)
CADENCE = timedelta(minutes=15)


@pytest.fixture
def sim() -> SimulatedCloudflare:
    # 3 accounts, 10 servers each; Cloudflare re-syncs every server every 2 hours
    return SimulatedCloudflare(
        seed=3, accounts=3, portals_per_account=4, resync_every=timedelta(hours=2)
    )


@pytest.fixture
def syncer(engine: Engine, settings: Settings, sim: SimulatedCloudflare) -> Iterator[Syncer]:
    with open_client(settings) as client:
        clock = lambda: sim.now  # noqa: E731 - the simulated day's clock
        yield Syncer(engine=engine, client=client, per_page=settings.page_size, clock=clock)


def sync(syncer: Syncer, settings: Settings) -> list[AccountResult]:
    results = syncer.sync_all(settings.accounts, max_concurrency=1)
    assert {r.status for r in results} == {"succeeded"}, [r.error for r in results]
    return results


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


SERVERS = models.table_of(models.Server)
VERSIONS = models.table_of(models.ServerVersion)


def servers_of(engine: Engine, table: Any, *where: Any) -> dict[tuple[str, str], Any]:
    query = select(table.c.account_id, table.c.id, table.c.last_synced, table.c.raw)
    with engine.connect() as conn:
        rows = conn.execute(query.where(*where)).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def assert_current_equals_open_version(engine: Engine) -> None:
    current = servers_of(engine, SERVERS)
    versions = servers_of(engine, VERSIONS, VERSIONS.c.valid_to.is_(None))
    assert versions == current


@pytest.mark.slow  # the same as the six hours below, four times over
@pytest.mark.parallel
def test_a_day_of_cloudflare_resyncs_writes_no_version(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    resync_for(DAY, syncer, settings, engine, sim)


def test_six_hours_of_cloudflare_resyncs_write_no_version(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    # every 30 minutes: each re-sync still falls between two syncs, in half the syncs of the day's
    resync_for(DAY / 4, syncer, settings, engine, sim, cadence=2 * CADENCE)


def resync_for(
    period: timedelta,
    syncer: Syncer,
    settings: Settings,
    engine: Engine,
    sim: SimulatedCloudflare,
    cadence: timedelta = CADENCE,
) -> None:
    """Cloudflare re-syncs each server every 2 hours; we sync every ``cadence`` for ``period``."""
    sync(syncer, settings)
    versions = scalar(engine, "SELECT count(*) FROM servers_history")
    start = sim.now + timedelta(seconds=1)  # after the first sync's changes
    observed = 0
    for _ in range(int(period / cadence)):
        sim.pass_time(cadence)
        for result in sync(syncer, settings):
            assert result.counts
            assert not any(any(c.values()) for c in result.counts.values())
            observed += result.observed
    servers = scalar(engine, "SELECT count(*) FROM servers")
    assert observed == period / timedelta(hours=2) * servers  # each re-sync seen once
    assert scalar(engine, "SELECT count(*) FROM servers_history") == versions
    with engine.connect() as conn:
        lines = changes(conn, since=start, until=sim.now + period)
    assert lines == []
    # the rows say what Cloudflare says now, and each current row equals its open version
    for account_id in sim.account_ids:
        stored = servers_of(engine, SERVERS, SERVERS.c.account_id == account_id)
        for server in sim.servers(account_id):
            last_synced, raw = stored[(account_id, server["id"])]
            assert raw["last_synced"] == server["last_synced"]
            assert last_synced.strftime("%Y-%m-%dT%H:%M:%SZ") == server["last_synced"]
    assert_current_equals_open_version(engine)


def test_a_real_change_is_still_a_version_and_closed_versions_keep_their_observations(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[0]
    server_id = sim.server_ids(account)[0]
    sim.resync_servers(account)
    sync(syncer, settings)
    seen_before = servers_of(engine, SERVERS)[(account, server_id)]
    sim.set_server_status(account, server_id, "error", error="upstream returned 502")
    results = sync(syncer, settings)
    assert results[0].counts["server"] == {"added": 0, "changed": 1, "removed": 0}
    with engine.connect() as conn:
        query = select(
            VERSIONS.c.status, VERSIONS.c.last_synced, VERSIONS.c.raw, VERSIONS.c.valid_to
        )
        mine = (VERSIONS.c.account_id == account, VERSIONS.c.id == server_id)
        rows = conn.execute(query.where(*mine).order_by(VERSIONS.c.version_id)).all()
    assert [r.status for r in rows] == ["ready", "error"]
    closed, open_ = rows
    assert closed.valid_to is not None
    assert open_.valid_to is None
    assert (closed.last_synced, closed.raw) == seen_before  # as last observed before it closed
    assert open_.raw["last_synced"] != closed.raw["last_synced"]
    assert_current_equals_open_version(engine)


def test_error_details_numbers_are_stored_exactly(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    account = sim.account_ids[0]
    server_id = sim.server_ids(account)[0]
    sim.set_server_status(account, server_id, "error")
    sync(syncer, settings)
    for table in (SERVERS, VERSIONS):
        mine = (table.c.account_id == account, table.c.id == server_id)
        with engine.connect() as conn:
            details = conn.execute(select(table.c.error_details).where(*mine)).scalar_one()
        assert details["status_code"] == 502
        assert type(details["status_code"]) is int
        assert type(details["mcp_code"]) is int


BIG = 2**63 + 5  # past 2**53 (doubles) and past 64-bit signed integers
HUGE = 2**70


def _server(server_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": server_id,
        "name": server_id,
        "hostname": f"{server_id}.example.com",
        "auth_type": "bearer",
        "status": "ready",
        **fields,
    }


def test_json_columns_round_trip_numbers_exactly(engine: Engine) -> None:
    details = {"status_code": 502, "mcp_code": -32000, "big": BIG, "huge": HUGE, "ratio": 0.5}
    summary = {"max": HUGE, "min": -BIG, "n": 1, "f": 1.0}
    server = _server(
        "s1", status="error", error="boom", error_details=details, auth_config_summary=summary
    )
    server["tools"] = [{"name": "t", "inputSchema": {"maximum": HUGE, "minimum": 0}}]
    result = transform_account([], [server])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, configured, first_seen_at) "
                "VALUES ('acct', true, CURRENT_TIMESTAMP)"
            )
        )
        changeset = diff_snapshot(read_stored(conn, "acct"), result.snapshot, result.coverage)
        apply_changes(conn, "acct", changeset, run_id=1, observed_at=_now())
    with engine.connect() as conn:
        for table in (SERVERS, VERSIONS):
            row = conn.execute(select(table.c.error_details, table.c.auth_config_summary))
            stored_details, stored_summary = row.one()
            assert json.dumps(stored_details, sort_keys=True) == json.dumps(details, sort_keys=True)
            assert json.dumps(stored_summary, sort_keys=True) == json.dumps(summary, sort_keys=True)
        tools = models.table_of(models.Tool)
        definition = conn.execute(select(tools.c.definition)).scalar_one()
        assert definition["inputSchema"]["maximum"] == HUGE
        # read back, the same record is no change at all
        again = diff_snapshot(read_stored(conn, "acct"), result.snapshot, result.coverage)
        assert not again.writes


def _now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_unknown_enum_values_are_stored_with_a_warning_not_rejected(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[1]
    server_id = sim.servers(account)[0]["id"]
    sim.faults.add(
        Fault(kind="invalid_record", violation="bad_enum", account_id=account, endpoint="servers")
    )
    results = sync(syncer, settings)  # succeeded, not partial
    victim = results[1]
    assert victim.rejected == 0
    assert victim.counts["server"]["changed"] == 1
    assert len(victim.warnings) == 2  # the unknown status, and the embedded copies disagreeing
    assert "status 'exploded' is not in the published schema" in victim.warnings[0]
    assert server_id in victim.warnings[0]
    runs = models.table_of(models.SyncRun)
    with engine.connect() as conn:
        stored = conn.execute(select(runs.c.warnings).where(runs.c.id == victim.run_id)).scalar()
        assert stored == victim.warnings
        shown = show_server(conn, server_id, as_of=sim.now + DAY, account_id=account)
    assert shown["server"]["status"] == "exploded"  # reports show it as it is
    # the same bytes again: the fast path, and the run still carries the warning
    again = sync(syncer, settings)[1]
    assert again.unchanged is True
    assert again.warnings == victim.warnings
    with engine.connect() as conn:
        stored = conn.execute(select(runs.c.warnings).where(runs.c.id == again.run_id)).scalar()
    assert stored == victim.warnings


def test_unknown_auth_type_and_a_too_long_status() -> None:
    result = transform_account(
        [], [_server("s1", auth_type="mtls"), _server("s2", status="x" * 17)]
    )
    assert result.snapshot["server"][("s1",)].values["auth_type"] == "mtls"
    assert result.warnings == [
        "auth_type 'mtls' is not in the published schema; stored as text for 1 server (s1)"
    ]
    # wider than the column: a clear rejection, and what was stored stays
    assert [(r.entity_id, "status" in r.reason) for r in result.rejections] == [("s2", True)]


def test_an_embedded_copy_never_overrides_the_listing_and_is_reported() -> None:
    listed = _server("s1", status="ready")
    embedded = {**_server("s1", status="error", error="stale copy"), "server_id": "s1"}
    portal = {"id": "p1", "name": "P", "hostname": "p.example.com", "servers": [embedded]}
    result = transform_account([portal], [listed])
    row = result.snapshot["server"][("s1",)]
    assert (row.values["status"], row.values["source"]) == ("ready", "servers")
    assert result.warnings == [
        "embedded copies disagree with /servers, whose copy is stored: "
        "1 server (s1 in portal p1: status)"
    ]


def test_a_portal_only_server_comes_from_the_portal_with_the_smallest_id() -> None:
    def portal(portal_id: str, status: str) -> dict[str, Any]:
        copy_ = {**_server("s9", status=status), "server_id": "s9"}
        return {"id": portal_id, "name": portal_id, "hostname": "h", "servers": [copy_]}

    for order in (["pb", "pa"], ["pa", "pb"]):
        listing = [portal(p, {"pa": "ready", "pb": "error"}[p]) for p in order]
        result = transform_account(listing, [])
        assert result.snapshot["server"][("s9",)].values["status"] == "ready"


def test_a_shuffled_listing_writes_nothing(engine: Engine, sim: SimulatedCloudflare) -> None:
    account = sim.account_ids[0]
    portals, servers = sim.portals(account), sim.servers(account)
    # a server only portals show, embedded differently in two of them
    for n, portal in enumerate(portals[:2]):
        only = {**_server("portal-only", status=("ready", "error")[n]), "server_id": "portal-only"}
        portal["servers"].append(only)
    first = transform_account(portals, servers)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, configured, first_seen_at) "
                "VALUES (:a, true, CURRENT_TIMESTAMP)"
            ),
            {"a": account},
        )
        stored = read_stored(conn, account)
        apply_changes(
            conn, account, diff_snapshot(stored, first.snapshot, first.coverage), run_id=1,
            observed_at=_now(),
        )  # fmt: skip
    shuffled_portals = [
        {**p, "servers": list(reversed(p["servers"]))} for p in reversed(copy.deepcopy(portals))
    ]
    again = transform_account(shuffled_portals, list(reversed(servers)))
    with engine.connect() as conn:
        changeset = diff_snapshot(
            read_stored(conn, account), again.snapshot, again.coverage, read_observed(conn, account)
        )
    assert not changeset.writes


def _floats(value: Any) -> Any:
    """What the code before 0007 made of error_details numbers."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


_VALUE_COLUMNS = [
    c.name
    for c in SERVERS.columns
    if c.name not in ("account_id", "id", "content_hash", "valid_from", "run_id")
]


def test_0007_repairs_a_database_filled_by_the_previous_release(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    account = sim.account_ids[0]
    failing = sim.server_ids(account)[0]
    sim.set_server_status(account, failing, "error")
    sync(syncer, settings)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    with engine.begin() as conn:  # what the previous release wrote
        for table in (SERVERS, VERSIONS):
            key = table.c.version_id if table is VERSIONS else table.c.id
            for row in conn.execute(select(key, *(table.c[n] for n in _VALUE_COLUMNS))).mappings():
                values = {n: row[n] for n in _VALUE_COLUMNS}
                values["error_details"] = _floats(values["error_details"])
                conn.execute(
                    update(table)
                    .where(key == row[key.name])
                    .values(
                        error_details=values["error_details"], content_hash=content_hash(values)
                    )
                )
        accounts = models.table_of(models.Account)
        conn.execute(update(accounts).values(listing_memo={"revision": 1}))
    before = _history(engine)
    assert any(
        type(r["error_details"]["status_code"]) is float for r in before if r["error_details"]
    )

    upgrade(engine)

    after = _history(engine)
    assert [(r["version_id"], r["valid_from"], r["valid_to"]) for r in after] == [
        (r["version_id"], r["valid_from"], r["valid_to"]) for r in before
    ]  # not a single version written or closed
    details = [r["error_details"] for r in after if r["error_details"]]
    assert details
    assert all(type(d["status_code"]) is int for d in details)
    # the hashes are the ones the code computes now: the next sync finds nothing to write
    results = sync(syncer, settings)
    assert all(not r.unchanged for r in results)  # the old memo is not trusted
    assert all(not any(any(c.values()) for c in r.counts.values()) for r in results)
    assert all(r.observed == 0 for r in results)
    assert _history(engine) == after


def _history(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(VERSIONS).order_by(VERSIONS.c.version_id)).mappings()
        return [dict(r) for r in rows]


def _old_resync_versions(engine: Engine, account: str, server_id: str, times: int) -> None:
    """What the previous release wrote each time Cloudflare re-synced a server: the open version
    closed as updated, and a new one that differs from it only in its sync times."""
    with engine.begin() as conn:
        for n in range(times):
            open_ = conn.execute(
                select(VERSIONS).where(
                    VERSIONS.c.account_id == account,
                    VERSIONS.c.id == server_id,
                    VERSIONS.c.valid_to.is_(None),
                )
            ).mappings().one()  # fmt: skip
            at = open_["valid_from"] + timedelta(minutes=30)
            moved = open_["last_synced"] + timedelta(minutes=30 * (n + 1))
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.version_id == open_["version_id"])
                .values(valid_to=at, ended_run_id=open_["run_id"], ended_by="updated")
            )
            raw = {**open_["raw"], "last_synced": moved.strftime("%Y-%m-%dT%H:%M:%SZ")}
            values = {k: v for k, v in open_.items() if k != "version_id"}
            values.update(valid_from=at, change="updated", last_synced=moved, raw=raw)
            conn.execute(VERSIONS.insert().values(values))
            mine = (SERVERS.c.account_id == account, SERVERS.c.id == server_id)
            conn.execute(
                update(SERVERS).where(*mine).values(valid_from=at, last_synced=moved, raw=raw)
            )


def test_merge_observations_folds_old_resync_versions(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    sync(syncer, settings)
    account = sim.account_ids[0]
    server_id = sim.server_ids(account)[0]
    first = _history(engine)
    _old_resync_versions(engine, account, server_id, times=3)
    before = _history(engine)
    assert len(before) == len(first) + 3
    with engine.begin() as conn:
        dry = merge_observation_versions(conn)
    assert (dry.merged, dry.entities, dry.applied) == (3, 1, False)
    assert _history(engine) == before  # a dry run writes nothing
    with engine.begin() as conn:
        done = merge_observation_versions(conn, apply=True)
    assert (done.merged, done.entities) == (3, 1)
    after = _history(engine)
    mine = [r for r in after if (r["account_id"], r["id"]) == (account, server_id)]
    assert len(after) == len(first)
    assert len(mine) == 1
    last = [r for r in before if (r["account_id"], r["id"]) == (account, server_id)][-1]
    assert mine[0]["valid_to"] is None
    assert mine[0]["valid_from"] == first[[r["version_id"] for r in first].index(
        mine[0]["version_id"]
    )]["valid_from"]  # fmt: skip
    assert (mine[0]["last_synced"], mine[0]["raw"]) == (last["last_synced"], last["raw"])
    assert_current_equals_open_version(engine)
    with engine.connect() as conn:
        row = conn.execute(
            select(SERVERS.c.valid_from).where(
                SERVERS.c.account_id == account, SERVERS.c.id == server_id
            )
        ).scalar_one()  # fmt: skip
    assert row == mine[0]["valid_from"]
    with engine.begin() as conn:
        assert merge_observation_versions(conn, apply=True).merged == 0
    # and the mirror agrees with the API: the next sync writes nothing
    results = sync(syncer, settings)
    assert all(not any(any(c.values()) for c in r.counts.values()) for r in results)


def test_merge_observations_command_is_a_dry_run_by_default(
    syncer: Syncer, settings: Settings, engine: Engine, sim: SimulatedCloudflare, db_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    sync(syncer, settings)
    account = sim.account_ids[0]
    _old_resync_versions(engine, account, sim.server_ids(account)[0], times=2)
    env = {"INVENTORY_DATABASE_URL": db_url}
    dry = run(["db", "merge-observations"], tmp_path, env)
    assert dry.returncode == 0, dry.stderr
    said = " ".join(dry.stdout.split())  # wrapped to the terminal's width
    assert "would merge 2 into the version before them, for 1 servers" in said
    assert "--apply" in said
    done = run(["db", "merge-observations", "--apply"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "merged 2 into the version before them" in " ".join(done.stdout.split())


def test_the_resync_schedule_is_driven_over_http(sim: SimulatedCloudflare, api_url: str) -> None:
    control = api_url.replace("/client/v4", "") + "/__simulator"
    account = sim.account_ids[0]
    before = {s["id"]: s["last_synced"] for s in sim.servers(account)}
    with httpx.Client() as client:
        moved = client.post(f"{control}/pass-time", params={"minutes": 120, "resync_every": 60})
        assert moved.status_code == 200
        assert moved.json()["resynced"] == sum(sim.count(a, "servers") for a in sim.account_ids)
        assert client.post(f"{control}/pass-time", params={"minutes": -1}).status_code == 400
        assert client.post(f"{control}/resync").json()["servers"] > 0
    after = {s["id"]: s["last_synced"] for s in sim.servers(account)}
    assert all(after[k] > before[k] for k in before)
