"""Metrics and the health endpoint: what Prometheus and a load balancer would see."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from inventory.cloudflare.client import RequestStats
from inventory.daemon.health import HealthServer, Probes, Readiness, check_readiness, probe
from inventory.daemon.metrics import CONTENT_TYPE_LATEST, Metrics
from inventory.daemon.service import open_client
from inventory.db.engine import make_engine
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.daemon import free_port

Labels = tuple[tuple[str, str], ...]


def scrape(metrics: Metrics) -> dict[tuple[str, Labels], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def test_each_daemon_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    result = AccountResult(account_id="a", name=None, status="failed", duration=0.5)
    one.observe(result, RequestStats(requests=3, by_status={500: 2}), {})
    assert scrape(one)["inventory_sync_runs_total", (("account", "a"), ("status", "failed"))] == 1
    assert (
        scrape(one)["inventory_http_requests_total", (("account", "a"), ("status", "error"))] == 1
    )
    assert not [k for k in scrape(two) if k[0] == "inventory_sync_runs_total"]


@pytest.fixture
def metered(engine: Engine, settings: Settings) -> Iterator[tuple[Syncer, Metrics]]:
    metrics = Metrics()
    with open_client(settings) as client:
        yield Syncer(engine=engine, client=client, on_result=metrics.observe), metrics


def test_a_sync_is_measured(
    metered: tuple[Syncer, Metrics], settings: Settings, engine: Engine, sim: SimulatedCloudflare
) -> None:
    syncer, metrics = metered
    account = settings.accounts[0].id
    sim.faults.add(Fault(kind="status", status=429, retry_after=1, account_id=account, times=1))
    syncer.sync_all(settings.accounts)
    found = scrape(metrics)

    def value(name: str, **labels: str) -> float:
        return found[name, tuple(sorted({"account": account, **labels}.items()))]

    with engine.connect() as conn:
        for kind, table in (("portal", "portals"), ("tool", "tools"), ("override", "overrides")):
            stored = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE account_id = :a"), {"a": account}
            ).scalar_one()
            assert value("inventory_entities", kind=kind) == stored
    assert value("inventory_changes_total", kind="portal", change="added") == len(
        sim.portals(account)
    )
    assert value("inventory_http_requests_total", status="429") == 1
    assert value("inventory_http_requests_total", status="200") == 2
    assert value("inventory_http_retries_total") == 1
    assert value("inventory_rate_limit_waits_total") == 1
    assert value("inventory_rate_limit_wait_seconds_total") == 1
    assert value("inventory_sync_duration_seconds_count", status="succeeded") == 1


def test_readiness_needs_the_database_and_a_recent_success(
    metered: tuple[Syncer, Metrics], settings: Settings, engine: Engine
) -> None:
    syncer, _ = metered
    ids = [a.id for a in settings.accounts]
    now = datetime.now(UTC)
    before = check_readiness(engine, ids, max_age=60, now=now)
    assert before.database == "ok"
    assert not before.ready
    syncer.sync_all(settings.accounts)
    assert check_readiness(engine, ids, max_age=60, now=datetime.now(UTC)).ready
    stale = check_readiness(engine, ids, max_age=60, now=datetime(2100, 1, 1, tzinfo=UTC))
    assert not stale.ready
    assert stale.accounts[ids[0]]["last_status"] == "succeeded"
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")
    down = check_readiness(dead, ids, max_age=60, now=now)
    dead.dispose()
    assert not down.ready
    assert down.database.startswith("unreachable: ")


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our http:// URLs
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.mark.slow
def test_the_endpoint_and_its_probe() -> None:
    state = {"healthy": True}
    metrics = Metrics()
    probes = Probes(
        healthy=lambda: state["healthy"],
        readiness=lambda: Readiness(ready=False, database="unreachable: refused"),
        metrics=lambda: (metrics.render(), CONTENT_TYPE_LATEST),
    )
    server = HealthServer("127.0.0.1:0", probes)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(f"{base}/healthz")[0] == 200
        status, kind, body = get(f"{base}/readyz")
        assert (status, kind) == (503, "application/json")
        assert json.loads(body)["database"] == "unreachable: refused"
        status, kind, body = get(f"{base}/metrics")
        assert status == 200
        assert kind.startswith("text/plain")
        assert "inventory_database_up" in body
        assert get(f"{base}/nope")[0] == 404
        assert probe(f"0.0.0.0:{server.port}")
        command = [sys.executable, "-m", "inventory.daemon.health"]
        env = {"INVENTORY_METRICS_ADDRESS": f"0.0.0.0:{server.port}", "PATH": ""}
        assert subprocess.run(command, env=env, check=False).returncode == 0
        state["healthy"] = False
        assert not probe(f"127.0.0.1:{server.port}")
        assert subprocess.run(command, env=env, check=False).returncode == 1
    finally:
        server.stop()
