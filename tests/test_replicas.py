"""Three `inventory run` replicas on one PostgreSQL database, one of them SIGKILLed mid-sync.

Every account must be synced exactly once per cycle (an account whose sync died with the victim
is picked up the next cycle), no two counted runs of an account may share a cycle, and the
mirror must end up exactly like the API: no duplicate and no lost row, one open history version
per current row.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from inventory.db.engine import make_engine
from inventory.db.tables import TABLES
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.daemon import (
    Daemon,
    daemon_env,
    free_port,
    runs,
    wait_until,
)
from tests.support.db import fresh_pg_database, require_pg

pytestmark = pytest.mark.slow

PERIOD = 3.0  # long enough that a loaded CI machine still starts every sync in its cycle
COUNTED = ("succeeded", "partial", "failed")


def sleep_until_into_cycle(offset: float) -> int:
    """Sleep until ``offset`` seconds into the next cycle; returns that cycle's number."""
    cycle = math.floor(time.time() / PERIOD) + 1
    time.sleep(max(0.0, cycle * PERIOD + offset - time.time()))
    return cycle


def count(engine: Engine, table: str, account_id: str, where: str = "1=1") -> int:
    with engine.connect() as conn:
        sql = f"SELECT count(*) FROM {table} WHERE account_id = :a AND {where}"
        return int(conn.execute(text(sql), {"a": account_id}).scalar_one())


def assert_mirrors(engine: Engine, sim: SimulatedCloudflare) -> None:
    for account_id in sim.account_ids:
        portals, servers = sim.portals(account_id), sim.servers(account_id)
        links = {(p["id"], s["server_id"]) for p in portals for s in p["servers"]}
        expected = {
            "portals": len(portals),
            "servers": len(servers),
            "portal_servers": len(links),
            "tools": sum(len(s["tools"]) for s in servers),
            "prompts": sum(len(s["prompts"]) for s in servers),
        }
        for table, n in expected.items():
            assert count(engine, table, account_id) == n, (account_id, table)
        for spec in TABLES.values():
            open_versions = count(engine, spec.history.name, account_id, "valid_to IS NULL")
            assert open_versions == count(engine, spec.current.name, account_id)


def test_three_replicas_share_every_cycle_and_survive_a_sigkill(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    require_pg()
    # A slow listing keeps each sync running long enough to be killed in the middle of it.
    sim.faults.add(Fault(kind="delay", seconds=0.4, endpoint="servers"))
    with fresh_pg_database() as url:
        engine = make_engine(url)
        try:
            run_replicas(sim, api_url, url, tmp_path, engine)
        finally:
            engine.dispose()


def run_replicas(
    sim: SimulatedCloudflare, api_url: str, url: str, tmp_path: Path, engine: Engine
) -> None:
    base = daemon_env(
        sim, api_url, url, tmp_path, sync_interval=PERIOD, max_concurrency=3, log_level="info"
    )
    replicas = [
        Daemon(
            {**base, "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
            tmp_path,
            name=f"replica{i}",
        )
        for i in range(3)
    ]
    victim = replicas[0]
    try:
        for replica in replicas:
            replica.wait_serving()
        # Counting starts with the first cycle after the start-up syncs: one that runs into the
        # next cycle makes that cycle's syncs of its account skip (no overlap), by design.
        wait_until(lambda: start_up_done(engine, sim), timeout=10 * PERIOD, every=0.05)
        first = sleep_until_into_cycle(1.2)
        sim.advance(3)
        sleep_until_into_cycle(0.0)
        # The victim must win an account's lock at least once; with three replicas racing for
        # three accounts every cycle, eight cycles make a miss vanishingly unlikely.
        wait_until(
            lambda: [r for r in runs(engine) if r.pid == victim.pid and r.status == "running"],
            timeout=8 * PERIOD,
            every=0.02,
        )
        victim.proc.send_signal(signal.SIGKILL)
        victim.wait()
        for _ in range(3):
            sleep_until_into_cycle(1.2)
            sim.advance(3)
        last = sleep_until_into_cycle(1.5)  # a quiet cycle: the final state is synced
        for replica in replicas[1:]:
            assert replica.stop() == 0, replica.output()
    finally:
        for replica in replicas:
            replica.close()

    rows = runs(engine)
    table = "\n".join(
        f"{r.id} {r.account_id[:8]} pid={r.pid} cycle={cycle_of(r)} {r.status} {r.error_message}"
        for r in rows
    )
    assert not [r for r in rows if r.status == "running"], table
    abandoned = [r for r in rows if r.status == "abandoned"]
    assert abandoned, table
    assert {r.pid for r in abandoned} == {victim.pid}, table
    # The victim may die holding an account's lock before that sync wrote its run row, so any
    # account may go unsynced in the cycle it died in (and only then: it is picked up the next).
    death_cycles = {cycle_of(r) for r in abandoned}
    assert len(death_cycles) == 1, table
    per_cycle = Counter((r.account_id, cycle_of(r)) for r in rows if r.status in COUNTED)
    assert max(per_cycle.values()) == 1, f"an account was synced twice in one cycle:\n{table}"
    for cycle in range(first, last + 1):
        for account_id in sim.account_ids:
            if per_cycle[account_id, cycle] == 0:
                assert cycle in death_cycles, f"{account_id} not synced in {cycle}:\n{table}"
    assert {r.status for r in rows if r.status in COUNTED} <= {"succeeded", "partial"}, table
    last_runs = [r for r in rows if cycle_of(r) == last]
    assert {r.status for r in last_runs} == {"succeeded"}, table
    assert_mirrors(engine, sim)


def start_up_done(engine: Engine, sim: SimulatedCloudflare) -> bool:
    rows = runs(engine)
    synced = {r.account_id for r in rows if r.status in COUNTED}
    return synced == set(sim.account_ids) and not any(r.status == "running" for r in rows)


def cycle_of(run: Any) -> int:
    started: datetime = run.started_at
    return math.floor(started.timestamp() / PERIOD)
