"""The simulator without a socket (``respond`` behind httpx.MockTransport) answers as over HTTP."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from inventory.simulator import Fault, SimulatedCloudflare, serve_in_thread
from tests.support.api import SimulatorTransport


def _sim() -> SimulatedCloudflare:
    return SimulatedCloudflare(seed=9, accounts=2, portals_per_account=3)


def _path(sim: SimulatedCloudflare, endpoint: str = "portals") -> str:
    return f"/accounts/{sim.account_ids[0]}/access/ai-controls/mcp/{endpoint}"


@pytest.mark.parametrize(
    ("headers", "query", "fault"),
    [
        ({"Authorization": "Bearer sim-token"}, {"page": "1", "per_page": "2"}, None),
        ({"Authorization": "Bearer sim-token"}, {"page": "9"}, None),
        ({"Authorization": "Bearer wrong"}, {}, None),
        ({"X-Auth-Email": "sim@example.com", "X-Auth-Key": "sim-key"}, {"per_page": "0"}, None),
        ({"Authorization": "Bearer sim-token"}, {}, Fault(kind="status", status=522)),
        ({"Authorization": "Bearer sim-token"}, {}, Fault(kind="invalid_record")),
        ({"Authorization": "Bearer sim-token"}, {}, Fault(kind="html")),
    ],
)
def test_in_process_and_over_http_answer_the_same(
    headers: dict[str, str], query: dict[str, str], fault: Fault | None
) -> None:
    answers = []
    for over_http in (True, False):
        sim = _sim()
        if fault is not None:
            sim.faults.add(dataclasses.replace(fault))  # a fresh copy: faults count their uses
        if over_http:
            with serve_in_thread(sim) as url, httpx.Client(base_url=url) as client:
                response = client.get(_path(sim), params=query, headers=headers)
        else:
            transport = SimulatorTransport(sim)
            with httpx.Client(base_url="http://x/client/v4", transport=transport) as client:
                response = client.get(_path(sim), params=query, headers=headers)
        answers.append((response.status_code, response.headers["content-type"], response.content))
        assert [r.status for r in sim.requests] == [response.status_code]
    assert answers[0] == answers[1]


def test_a_truncated_transfer_breaks_the_read_in_process_too() -> None:
    sim = _sim()
    sim.faults.add(Fault(kind="truncate"))
    transport = SimulatorTransport(sim)
    with (
        httpx.Client(base_url="http://x/client/v4", transport=transport) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(_path(sim), headers={"Authorization": "Bearer sim-token"})


def test_set_listing_serves_any_records_through_the_paging() -> None:
    sim = _sim()
    account = sim.account_ids[0]
    records = [{"id": f"r{i}"} for i in range(5)] + [7, {"no": "id"}]
    sim.set_listing(account, "servers", records)
    transport = SimulatorTransport(sim)
    bodies = []
    with httpx.Client(base_url="http://x/client/v4", transport=transport) as client:
        for page in (1, 2, 3):
            bodies.append(
                client.get(
                    _path(sim, "servers"),
                    params={"page": page, "per_page": 3},
                    headers={"Authorization": "Bearer sim-token"},
                ).json()
            )
    assert [item for body in bodies for item in body["result"]] == records
    assert bodies[0]["result_info"]["total_count"] == 7
    assert sim.servers(account) == records
    sim.set_listing(account, "servers", None)
    assert sim.servers(account) != records
    assert sim.count(sim.account_ids[1], "servers") == len(sim.servers(sim.account_ids[1]))
