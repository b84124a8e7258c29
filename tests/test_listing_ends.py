"""Where a listing ends, and what a detail request says: fetch and client against the simulator
(socket-free, ``inventory.simulator.transport``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inventory.cloudflare.client import NOT_FOUND_CODES, CloudflareClient
from inventory.cloudflare.listing import Endpoint, Listing, detail_path, fetch_listing
from inventory.errors import ApiError, BadResponseError
from inventory.simulator import Fault, SimulatedCloudflare
from inventory.simulator.transport import BASE_URL, mock_transport


@pytest.fixture
def sim() -> SimulatedCloudflare:
    # 4 portals and 4 listed servers: two full pages of 2 each
    return SimulatedCloudflare(
        seed=5,
        accounts=1,
        portals_per_account=4,
        servers_per_account=3,
        servers_per_portal=1,
        tools_per_server=1,
        prompts_per_server=0,
        unattached_per_account=1,
        result_info=False,
    )


@pytest.fixture
def client(sim: SimulatedCloudflare) -> Iterator[CloudflareClient]:
    with CloudflareClient(base_url=BASE_URL, transport=mock_transport(sim), max_retries=1) as c:
        yield c


def fetch(
    client: CloudflareClient, sim: SimulatedCloudflare, endpoint: Endpoint = "portals"
) -> Listing:
    return fetch_listing(
        client,
        account_id=sim.account_ids[0],
        endpoint=endpoint,
        headers={"Authorization": f"Bearer {sim.api_token}"},
        credential_key="t",
        per_page=2,
    )


def pages(sim: SimulatedCloudflare) -> list[int | None]:
    return [r.page for r in sim.requests]


@pytest.mark.parametrize("status", [400, 404])
@pytest.mark.parametrize("endpoint", ["portals", "servers"])
def test_an_error_envelope_past_a_full_last_page_ends_the_listing(
    sim: SimulatedCloudflare, client: CloudflareClient, status: int, endpoint: Endpoint
) -> None:
    sim.faults.add(Fault(kind="past_end_error", status=status))
    listing = fetch(client, sim, endpoint)
    assert len(listing.items) == 4
    assert listing.consistent
    assert listing.end_error is not None
    assert str(status) in listing.end_error
    assert pages(sim) == [1, 2, 3]


def test_an_error_envelope_on_the_first_page_still_fails(
    sim: SimulatedCloudflare, client: CloudflareClient
) -> None:
    sim.faults.add(Fault(kind="status", status=404, page=1))
    with pytest.raises(ApiError, match="404"):
        fetch(client, sim)


def test_an_error_envelope_after_a_short_last_page_ends_the_listing_too(
    sim: SimulatedCloudflare, client: CloudflareClient
) -> None:
    # A short page is not the end (pages may be capped without a word), so the API's refusal
    # to serve the next one is.
    sim.delete_portal(sim.account_ids[0], sim.portal_ids(sim.account_ids[0])[0])  # 2 + 1
    sim.faults.add(Fault(kind="past_end_error", status=404))
    listing = fetch(client, sim)
    assert len(listing.items) == 3
    assert listing.end_error is not None
    assert pages(sim) == [1, 2, 3]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=403, page=3),  # not 400/404: the credential, not the end
        Fault(kind="html", page=3),  # no JSON envelope
    ],
    ids=["403", "html"],
)
def test_other_errors_past_a_full_page_still_fail(
    sim: SimulatedCloudflare, client: CloudflareClient, fault: Fault
) -> None:
    sim.faults.add(fault)
    with pytest.raises((ApiError, BadResponseError)):
        fetch(client, sim)


@pytest.mark.parametrize("result_info", [True, False])
def test_a_silent_page_cap_is_paged_to_the_end(
    sim: SimulatedCloudflare, client: CloudflareClient, result_info: bool
) -> None:
    sim.result_info = result_info
    sim.faults.add(Fault(kind="page_cap", cap=1))
    listing = fetch(client, sim)
    assert [i["id"] for i in listing.items] == sim.portal_ids(sim.account_ids[0])
    assert listing.consistent
    assert pages(sim) == ([1, 2, 3, 4] if result_info else [1, 2, 3, 4, 5])


def test_a_short_page_ends_when_total_count_is_reached(
    sim: SimulatedCloudflare, client: CloudflareClient
) -> None:
    sim.result_info = True
    account = sim.account_ids[0]
    sim.delete_portal(account, sim.portal_ids(account)[0])  # 3 portals: 2 + 1
    listing = fetch(client, sim)
    assert len(listing.items) == 3
    assert pages(sim) == [1, 2]


def test_the_detail_routes_say_found_gone_or_unknown(
    sim: SimulatedCloudflare, client: CloudflareClient
) -> None:
    account = sim.account_ids[0]
    headers = {"Authorization": f"Bearer {sim.api_token}"}
    portal = sim.portal_ids(account)[0]
    server = sim.listed_server_ids(account)[0]

    def ask(endpoint: Endpoint, entity_id: str, account_id: str = account) -> tuple[str, str]:
        path = detail_path(account_id, endpoint, entity_id)
        detail = client.get_detail(path, headers=headers, credential_key="t")
        return detail.state, detail.reason

    assert {7002} == NOT_FOUND_CODES
    assert ask("portals", portal)[0] == "found"
    assert ask("servers", server)[0] == "found"
    assert ask("portals", "no-such-portal")[0] == "gone"
    assert ask("servers", "no-such-server")[0] == "gone"
    state, reason = ask("portals", portal, account_id="0" * 32)
    assert state == "unknown"
    assert "7003" in reason
    sim.hide_server(account, server)  # only portals show it now: /servers/{id} says 404 7002
    assert ask("servers", server)[0] == "gone"
    sim.faults.add(Fault(kind="html", detail=True))
    state, reason = ask("portals", portal)
    assert state == "unknown"
    assert "text/html" in reason
