"""fetch_listing against the simulator's handler: stop rules, drift, the page cap, de-duplication.

Listings are the simulator's own entities or, with ``set_listing``, any records a test needs,
served through the simulator's paging; the bodies it never sends are played at the transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.listing import Endpoint, Listing, fetch_listing, listing_path
from inventory.errors import AuthError, BadResponseError, PagingError
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.api import SimulatorTransport, json_reply

BASE = "https://api.cloudflare.test/client/v4"
TOKEN = "cfut_fetch_9d1c7e4b2a6f0e83"


def simulator(portals: int = 0) -> SimulatedCloudflare:
    return SimulatedCloudflare(
        seed=5,
        accounts=1,
        portals_per_account=portals,
        servers_per_account=portals,
        unattached_per_account=0,
        api_token=TOKEN,
    )


ACCOUNT = simulator().account_ids[0]


@pytest.fixture
def api() -> SimulatorTransport:
    return SimulatorTransport(simulator())


@pytest.fixture
def client(api: SimulatorTransport) -> Iterator[CloudflareClient]:
    with CloudflareClient(base_url=BASE, transport=api) as client:
        yield client


def items(n: int, prefix: str = "p") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i:04d}", "name": f"Portal {i}"} for i in range(n)]


def serve(api: SimulatorTransport, listing: list[Any], endpoint: Endpoint = "portals") -> None:
    api.sim.set_listing(ACCOUNT, endpoint, listing)


def fetch(client: CloudflareClient, endpoint: Endpoint = "portals", **kwargs: Any) -> Listing:
    return fetch_listing(
        client,
        account_id=ACCOUNT,
        endpoint=endpoint,
        headers={"Authorization": f"Bearer {TOKEN}"},
        credential_key="token-1",
        **kwargs,
    )


def pages_requested(api: SimulatorTransport) -> list[int]:
    return [int(r.url.params["page"]) for r in api.requests]


def ids(listing: Listing) -> list[object]:
    return [item.get("id") for item in listing.items]


@pytest.mark.parametrize("result_info", [True, False])
def test_a_short_first_page_is_the_whole_listing(
    api: SimulatorTransport, client: CloudflareClient, result_info: bool
) -> None:
    api.sim.result_info = result_info
    serve(api, items(3))
    listing = fetch(client)
    # Without result_info a short page is not the end (an API may cap pages without a word):
    # the empty page after it is.
    pages = 1 if result_info else 2
    assert listing == Listing("portals", items(3), pages=pages, consistent=True, problems=())
    assert pages_requested(api) == list(range(1, pages + 1))
    assert api.requests[0].url.params["per_page"] == "100"


def test_an_empty_listing_is_one_empty_page(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    listing = fetch(client, "servers")
    assert listing == Listing("servers", [], pages=1, consistent=True, problems=())
    assert api.requests[0].url.path.endswith(f"/accounts/{ACCOUNT}/access/ai-controls/mcp/servers")


def test_without_result_info_a_full_last_page_is_followed_by_an_empty_one(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.result_info = False
    serve(api, items(20))
    listing = fetch(client, per_page=10)
    assert ids(listing) == ids(Listing("portals", items(20), 0, True, ()))
    assert listing.pages == 3
    assert pages_requested(api) == [1, 2, 3]
    assert listing.consistent


def test_total_pages_ends_the_listing_without_an_extra_request(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    serve(api, items(20))
    listing = fetch(client, per_page=10)
    assert (len(listing.items), listing.pages, listing.consistent) == (20, 2, True)
    assert pages_requested(api) == [1, 2]


def test_a_short_page_without_result_info_is_not_the_end(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.result_info = False
    serve(api, items(25))
    listing = fetch(client, per_page=10)
    assert (len(listing.items), listing.pages) == (25, 4)
    assert pages_requested(api) == [1, 2, 3, 4]  # page 4 is empty: the end


def test_a_repeated_last_page_is_the_end_not_more_data(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.result_info = False
    # page 3 of 20 items by 10 answers page 2 again
    api.sim.faults.add(Fault(kind="repeat_last_page"))
    serve(api, items(20))
    listing = fetch(client, per_page=10)
    assert ids(listing) == [f"p{i:04d}" for i in range(20)]
    assert listing.pages == 3
    assert listing.consistent, listing.problems


def test_a_server_that_caps_page_size_is_still_paged_to_the_end(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.faults.add(Fault(kind="page_cap", cap=50))  # asked for 100, sends 50, silently
    serve(api, items(120))
    listing = fetch(client)
    assert (len(listing.items), listing.pages, listing.consistent) == (120, 3, True)


def test_an_item_inserted_while_paging_is_flagged_and_not_duplicated() -> None:
    api = SimulatorTransport(simulator(portals=25))
    api.sim.result_info = False
    before = api.sim.portal_ids(ACCOUNT)
    api.sim.faults.add(Fault(kind="drift_insert", endpoint="portals", page=2, times=1))
    with CloudflareClient(base_url=BASE, transport=api) as client:
        listing = fetch(client, per_page=10)
    assert not listing.consistent
    assert listing.problems == (
        f"id {before[9]} appeared on pages 1 and 2: the listing changed while it was paged",
    )
    assert ids(listing) == before  # the new portal was missed; the one pushed on kept once


def test_an_item_removed_while_paging_is_flagged_by_total_count() -> None:
    api = SimulatorTransport(simulator(portals=35))
    before = api.sim.portal_ids(ACCOUNT)
    api.sim.faults.add(Fault(kind="drift_remove", endpoint="portals", page=3, times=1))
    with CloudflareClient(base_url=BASE, transport=api) as client:
        listing = fetch(client, per_page=10)
    assert not listing.consistent
    assert "total_count changed from 35 to 34 before page 3" in listing.problems[0]
    assert before[20] not in ids(listing)  # the item that slid onto page 2 was never seen
    assert len(listing.items) == 34


def test_total_count_that_disagrees_with_what_was_listed_is_flagged(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    def lying(_request: httpx.Request) -> httpx.Response:
        info = {"page": 1, "per_page": 100, "count": 2, "total_count": 3, "total_pages": 1}
        body = {"success": True, "result": items(2), "result_info": info}
        return json_reply(200, body)(_request)

    api.ahead.append(lying)
    listing = fetch(client)
    assert listing.problems == (
        "Cloudflare reported total_count 3 but 2 distinct items were listed",
    )


def test_an_empty_page_that_claims_items_is_flagged(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    info = {"page": 1, "per_page": 100, "count": 0, "total_count": 5, "total_pages": 1}
    api.ahead.append(json_reply(200, {"success": True, "result": [], "result_info": info}))
    listing = fetch(client)
    assert (listing.items, listing.consistent) == ([], False)
    assert listing.problems == (
        "Cloudflare reported total_count 5 but 0 distinct items were listed",
    )


def test_duplicates_on_one_page_are_dropped_keeping_the_first(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.result_info = False
    serve(api, [{"id": "a", "v": 1}, {"id": "b"}, {"id": "a", "v": 2}])
    listing = fetch(client)
    assert listing.items == [{"id": "a", "v": 1}, {"id": "b"}]
    assert listing.problems == (
        "id a appeared twice on page 1: the listing changed while it was paged",
    )


def test_many_repeats_are_summarised(api: SimulatorTransport, client: CloudflareClient) -> None:
    api.sim.result_info = False
    serve(api, items(10) + items(9))
    listing = fetch(client)
    assert len(listing.items) == 10
    assert "(and 4 more): the listing changed" in listing.problems[0]


def test_items_without_a_string_id_are_kept_for_the_caller_to_reject(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    odd: list[dict[str, Any]] = [{"name": "no id"}, {"id": 7}, {"id": None}, {"name": "no id"}]
    api.sim.result_info = False
    serve(api, [*odd, {"id": "ok"}])
    listing = fetch(client)
    assert listing.items == [*odd, {"id": "ok"}]
    assert listing.consistent


def test_an_item_that_is_not_an_object_is_a_bad_response(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    serve(api, [{"id": "a"}, 5])
    with pytest.raises(BadResponseError, match=r"item 2 on page 1 .* is not an object but int"):
        fetch(client)


def test_the_page_cap_raises_instead_of_looping(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    api.sim.result_info = False
    serve(api, items(1000))
    with pytest.raises(PagingError) as caught:
        fetch(client, per_page=10, max_pages=4)
    assert pages_requested(api) == [1, 2, 3, 4]
    assert "did not end within 4 pages of 10" in str(caught.value)


def test_an_endless_api_is_stopped_by_the_page_cap(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    # Every page full of new ids and total_pages growing with it: only the cap can end this.
    def endless(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        info = {"page": page, "per_page": 2, "total_pages": page + 1, "total_count": 2 * page + 2}
        result = [{"id": f"x{page}a"}, {"id": f"x{page}b"}]
        return json_reply(200, {"success": True, "result": result, "result_info": info})(request)

    api.ahead.extend([endless] * 100)
    with pytest.raises(PagingError):
        fetch(client, per_page=2, max_pages=50)
    assert len(api.requests) == 50


def test_any_error_on_a_later_page_raises_rather_than_returning_part(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    serve(api, items(30))
    api.sim.faults.add(Fault(kind="status", status=403, page=2))
    with pytest.raises(AuthError):
        fetch(client, per_page=10)
    assert pages_requested(api) == [1, 2]


def test_progress_is_reported_after_every_page(
    api: SimulatorTransport, client: CloudflareClient
) -> None:
    serve(api, items(25, "s"), "servers")
    seen: list[tuple[Endpoint, int, int]] = []
    stats = RequestStats()
    fetch(client, "servers", per_page=10, stats=stats, on_page=lambda *a: seen.append(a))
    assert seen == [("servers", 1, 10), ("servers", 2, 20), ("servers", 3, 25)]
    assert stats.requests == 3


def test_the_account_id_cannot_change_the_path() -> None:
    assert (
        listing_path("../../x?y", "portals")
        == "/accounts/..%2F..%2Fx%3Fy/access/ai-controls/mcp/portals"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"per_page": 0}, {"per_page": 101}, {"max_pages": 0}, {"endpoint": "tools"}],
)
def test_impossible_arguments_are_refused(client: CloudflareClient, kwargs: Any) -> None:
    endpoint = kwargs.pop("endpoint", "portals")
    with pytest.raises(ValueError, match=r"endpoint|per_page"):
        fetch(client, endpoint, **kwargs)
