"""`inventory run` as a real process: the simulator over HTTP, real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from inventory.db.engine import make_engine
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.daemon import (
    TcpForwarder,
    daemon_env,
    running,
    runs,
    wait_until,
)
from tests.support.db import fresh_pg_database, require_pg

pytestmark = pytest.mark.slow


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def succeeded(engine: Engine, *, since: datetime | None = None) -> Counter[str]:
    return Counter(
        r.account_id
        for r in runs(engine)
        if r.status == "succeeded" and (since is None or r.started_at >= since)
    )


def running_run(engine: Engine, account_id: str) -> bool:
    return any(r.account_id == account_id and r.status == "running" for r in runs(engine))


def test_scheduled_cycles_metrics_and_readiness(
    sim: SimulatedCloudflare, api_url: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    flaky = sim.account_ids[1]
    sim.faults.add(Fault(kind="status", status=503, account_id=flaky, times=1))
    env = daemon_env(sim, api_url, db_url, tmp_path)
    with running(env, tmp_path) as daemon:
        daemon.wait_serving()
        wait_until(
            lambda: (counts := succeeded(engine)) and all(counts[a] >= 3 for a in sim.account_ids)
        )
        status, body = daemon.get("/readyz")
        assert status == 200, body
        assert json.loads(body)["database"] == "ok"
        assert daemon.get("/healthz") == (200, "ok\n")
        status, text = daemon.get("/metrics")
        assert status == 200
        assert daemon.stop() == 0, daemon.output()
    found = samples(text)
    first = sim.account_ids[0]

    def value(name: str, **labels: str) -> float:
        return found[name, tuple(sorted(labels.items()))]

    assert value("inventory_sync_runs_total", account=flaky, status="failed") == 1
    assert value("inventory_sync_runs_total", account=first, status="succeeded") >= 3
    assert value("inventory_http_requests_total", account=flaky, status="503") == 1
    assert value("inventory_entities", account=first, kind="portal") == len(sim.portals(first))
    assert value("inventory_changes_total", account=first, kind="server", change="added") == len(
        sim.servers(first)
    )
    assert value("inventory_sync_duration_seconds_count", account=first, status="succeeded") >= 3
    assert value("inventory_database_up") == 1
    assert value("inventory_last_success_timestamp_seconds", account=flaky) > time.time() - 60

    rows = runs(engine)
    assert not [r for r in rows if r.status == "running"]
    flaky_runs = [r for r in rows if r.account_id == flaky]
    assert flaky_runs[0].status == "failed"
    assert "503" in flaky_runs[0].error_message
    assert {r.status for r in flaky_runs[1:]} == {"succeeded"}  # the next cycle tried again
    # never two runs of an account in one cycle (1-second cycles aligned to the epoch)
    cycles = Counter((r.account_id, math.floor(r.started_at.timestamp())) for r in rows)
    assert max(cycles.values()) == 1


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    db = tmp_path / "inventory.db"
    db.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{db}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def test_sigterm_aborts_a_slow_sync_after_the_grace_period(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_url: str, sqlite_engine: Engine
) -> None:
    slow = sim.account_ids[0]
    sim.faults.add(Fault(kind="delay", seconds=3, account_id=slow, endpoint="servers"))
    env = daemon_env(sim, api_url, sqlite_url, tmp_path, sync_interval=60)
    with running(env, tmp_path, "--grace", "0.5") as daemon:
        wait_until(lambda: running_run(sqlite_engine, slow))
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()
        elapsed = time.monotonic() - started
    assert elapsed < 5
    rows = {r.account_id: r for r in runs(sqlite_engine)}
    assert rows[slow].status == "failed"
    assert rows[slow].error_class == "Aborted"
    assert rows[slow].added == 0
    assert all(rows[a].status == "succeeded" for a in sim.account_ids[1:])
    with sqlite_engine.connect() as conn:
        kept = conn.execute(
            text("SELECT count(*) FROM servers WHERE account_id = :a"), {"a": slow}
        ).scalar_one()
    assert kept == 0  # the aborted sync wrote nothing


def test_sigterm_lets_a_running_sync_finish_within_the_grace_period(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_url: str, sqlite_engine: Engine
) -> None:
    slow = sim.account_ids[0]
    sim.faults.add(Fault(kind="delay", seconds=1.5, account_id=slow, endpoint="servers"))
    env = daemon_env(sim, api_url, sqlite_url, tmp_path, sync_interval=60)
    with running(env, tmp_path, "--grace", "20") as daemon:
        wait_until(lambda: running_run(sqlite_engine, slow))
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()
    assert {r.account_id: r.status for r in runs(sqlite_engine)}[slow] == "succeeded"


def test_a_second_signal_exits_at_once(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_url: str, sqlite_engine: Engine
) -> None:
    slow = sim.account_ids[0]
    sim.faults.add(Fault(kind="delay", seconds=5, account_id=slow, endpoint="servers"))
    env = daemon_env(sim, api_url, sqlite_url, tmp_path, sync_interval=60)
    with running(env, tmp_path, "--grace", "20") as daemon:
        wait_until(lambda: running_run(sqlite_engine, slow))
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: daemon.events("stopping: no new syncs"))
        daemon.signal(signal.SIGINT)
        assert daemon.wait(timeout=3) == 130


def test_schema_behind_refuses_to_run_unless_upgrade(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    env = daemon_env(sim, api_url, url, tmp_path)
    with running(env, tmp_path) as daemon:
        assert daemon.wait() == 2
        assert "inventory db upgrade" in daemon.output()
    with running(env, tmp_path, "--upgrade") as daemon:
        daemon.wait_serving()
        engine = make_engine(url)
        wait_until(lambda: daemon.events("daemon started"))
        wait_until(lambda: len(succeeded(engine)) == len(sim.account_ids))
        assert daemon.stop() == 0
        engine.dispose()


def test_a_second_daemon_on_one_sqlite_file_is_refused(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    db = tmp_path / "inventory.db"
    db.write_bytes(sqlite_template.read_bytes())
    env = daemon_env(sim, api_url, f"sqlite:///{db}", tmp_path)
    with running(env, tmp_path) as first:
        first.wait_serving()
        second_env = {**env, "INVENTORY_METRICS_ADDRESS": "127.0.0.1:0"}
        with running(second_env, tmp_path, name="second") as second:
            assert second.wait() == 2
            assert f"(pid {first.pid}) already uses {db}" in " ".join(second.output().split())
        assert first.stop() == 0


def test_the_daemon_survives_a_database_outage(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    require_pg()
    with fresh_pg_database() as url:
        direct = make_url(url)
        forwarder = TcpForwarder((direct.host or "127.0.0.1", direct.port or 5432))
        forwarder.start()
        proxied = direct.set(port=forwarder.port).render_as_string(hide_password=False)
        engine = make_engine(url)
        env = daemon_env(sim, api_url, proxied, tmp_path)
        try:
            with running(env, tmp_path) as daemon:
                daemon.wait_serving()
                wait_until(lambda: len(succeeded(engine)) == len(sim.account_ids))
                forwarder.stop()
                wait_until(lambda: daemon.get("/readyz")[0] == 503)
                assert "unreachable" in json.loads(daemon.get("/readyz")[1])["database"]
                wait_until(lambda: len(failed_lines(daemon.events("account synced"))) >= 3)
                assert daemon.proc.poll() is None
                back = datetime.now(UTC)
                forwarder.start()
                wait_until(lambda: len(succeeded(engine, since=back)) == len(sim.account_ids))
                wait_until(lambda: daemon.get("/readyz")[0] == 200)
                assert daemon.stop() == 0, daemon.output()
            line = failed_lines(daemon.events("account synced"))[0]
            assert str(line["error"]).startswith("database error:")
            assert not [r for r in runs(engine) if r.status == "running"]
        finally:
            forwarder.stop()
            engine.dispose()


def failed_lines(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if line["status"] == "failed"]
