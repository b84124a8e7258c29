"""The daemon delivers what its syncs queue: a real `inventory run`, a real receiver."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inventory.simulator import SimulatedCloudflare
from tests.support.daemon import daemon_env, running
from tests.support.faultkit import small_sim
from tests.support.receiver import Status, receiving

pytestmark = pytest.mark.slow


def test_the_daemon_delivers_each_syncs_events(
    db_url: str, served: Callable[[SimulatedCloudflare], str], tmp_path: Path
) -> None:
    sim = small_sim(accounts=2)
    api_url = served(sim)
    with receiving() as receiver:
        receiver.answers.append(Status(503))  # one retry on the way
        targets = [{"name": "ops", "url": receiver.url, "batch_window": 0, "format": "json"}]
        env = daemon_env(sim, api_url, db_url, tmp_path, notify=json.dumps(targets))
        with running(env, tmp_path, "--upgrade") as daemon:
            daemon.wait_serving(timeout=60)

            def delivered(kind: str) -> list[dict[str, Any]]:
                return [
                    e
                    for r in receiver.requests
                    if not isinstance(r.answer, Status) or r.answer.code == 200
                    for e in r.document["events"]
                    if e["type"] == kind
                ]

            receiver.wait_for(lambda _: len(delivered("sync.first")) == 2, timeout=60)
            account = sim.account_ids[0]
            portal = sim.portal_ids(account)[0]
            server = sim.portal_server_ids(account, portal)[0]
            sim.set_default_disabled(account, portal, server, disabled=False)
            tool = sim.add_tool(account, server)
            receiver.wait_for(
                lambda _: any(e["entity"]["name"] == tool for e in delivered("exposure.added")),
                timeout=60,
            )
            status, metrics = daemon.get("/metrics")
            assert status == 200
            assert 'inventory_notify_events_retried_total{target="ops"} ' in metrics
            assert 'inventory_notify_events{state="dead",target="ops"} 0.0' in metrics
            assert daemon.stop() == 0, daemon.output()
    assert 'inventory_notify_events_delivered_total{target="ops"} 0.0' not in metrics
    assert [r.answer for r in receiver.requests[:1]] == [Status(503)]
    assert len({r.key for r in receiver.requests[:2]}) == 1  # the retry re-sent that batch
