"""fetch_listing against the stateful fake API: stop rules, drift, the page cap, de-duplication."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stamina

from inventory.client import CloudflareClient, RequestStats
from inventory.errors import AuthError, BadResponseError, PagingError
from inventory.fetch import Endpoint, Listing, fetch_listing, listing_path
from tests.test_client import (
    ACCOUNT,
    FakeCloudflare,
    bearer,
    error_envelope,
    json_response,
    make_client,
)


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare()


@pytest.fixture
def client(fake: FakeCloudflare) -> Iterator[CloudflareClient]:
    with make_client(fake) as client:
        yield client


def items(n: int, prefix: str = "p") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i:04d}", "name": f"Portal {i}"} for i in range(n)]


def fetch(client: CloudflareClient, endpoint: Endpoint = "portals", **kwargs: Any) -> Listing:
    return fetch_listing(
        client,
        account_id=ACCOUNT,
        endpoint=endpoint,
        headers=bearer(),
        credential_key="token-1",
        **kwargs,
    )


def pages_requested(fake: FakeCloudflare) -> list[int]:
    return [int(r.url.params["page"]) for r in fake.requests]


def ids(listing: Listing) -> list[object]:
    return [item.get("id") for item in listing.items]


@pytest.mark.parametrize("result_info", [True, False])
def test_a_short_first_page_is_the_whole_listing(
    fake: FakeCloudflare, client: CloudflareClient, result_info: bool
) -> None:
    fake.result_info = result_info
    fake.listings[ACCOUNT]["portals"] = items(3)
    listing = fetch(client)
    # Without result_info a short page is not the end (an API may cap pages without a word):
    # the empty page after it is.
    pages = 1 if result_info else 2
    assert listing == Listing("portals", items(3), pages=pages, consistent=True, problems=())
    assert pages_requested(fake) == list(range(1, pages + 1))
    assert fake.requests[0].url.params["per_page"] == "100"


def test_an_empty_listing_is_one_empty_page(fake: FakeCloudflare, client: CloudflareClient) -> None:
    listing = fetch(client, "servers")
    assert listing == Listing("servers", [], pages=1, consistent=True, problems=())
    assert fake.requests[0].url.path.endswith(f"/accounts/{ACCOUNT}/access/ai-controls/mcp/servers")


def test_without_result_info_a_full_last_page_is_followed_by_an_empty_one(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = items(20)
    listing = fetch(client, per_page=10)
    assert ids(listing) == ids(Listing("portals", items(20), 0, True, ()))
    assert listing.pages == 3
    assert pages_requested(fake) == [1, 2, 3]
    assert listing.consistent


def test_total_pages_ends_the_listing_without_an_extra_request(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.listings[ACCOUNT]["portals"] = items(20)
    listing = fetch(client, per_page=10)
    assert (len(listing.items), listing.pages, listing.consistent) == (20, 2, True)
    assert pages_requested(fake) == [1, 2]


def test_a_short_page_without_result_info_is_not_the_end(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = items(25)
    listing = fetch(client, per_page=10)
    assert (len(listing.items), listing.pages) == (25, 4)
    assert pages_requested(fake) == [1, 2, 3, 4]  # page 4 is empty: the end


def test_a_repeated_last_page_is_the_end_not_more_data(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    fake.repeat_last_page = True  # page 3 of 20 items by 10 answers page 2 again
    fake.listings[ACCOUNT]["portals"] = items(20)
    listing = fetch(client, per_page=10)
    assert ids(listing) == [f"p{i:04d}" for i in range(20)]
    assert listing.pages == 3
    assert listing.consistent, listing.problems


def test_a_server_that_caps_page_size_is_still_paged_to_the_end(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.max_per_page = 50  # asked for 100, sends 50, says so in result_info.per_page
    fake.listings[ACCOUNT]["portals"] = items(120)
    listing = fetch(client)
    assert (len(listing.items), listing.pages, listing.consistent) == (120, 3, True)


def test_an_item_inserted_while_paging_is_flagged_and_not_duplicated(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    listing_ = fake.listings[ACCOUNT]["portals"] = items(25)

    def insert_before_page_2(_endpoint: str, page: int) -> None:
        if page == 2:
            listing_.insert(0, {"id": "new", "name": "created meanwhile"})

    fake.before_page = insert_before_page_2
    listing = fetch(client, per_page=10)
    assert not listing.consistent
    assert listing.problems == (
        "id p0009 appeared on pages 1 and 2: the listing changed while it was paged",
    )
    assert ids(listing) == [f"p{i:04d}" for i in range(25)]  # "new" was missed; p0009 kept once


def test_an_item_removed_while_paging_is_flagged_by_total_count(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    listing_ = fake.listings[ACCOUNT]["portals"] = items(35)

    def remove_before_page_3(_endpoint: str, page: int) -> None:
        if page == 3:
            del listing_[0]

    fake.before_page = remove_before_page_3
    listing = fetch(client, per_page=10)
    assert not listing.consistent
    assert "total_count changed from 35 to 34 before page 3" in listing.problems[0]
    assert "p0020" not in ids(listing)  # the item that slid onto page 2 was never seen
    assert len(listing.items) == 34


def test_total_count_that_disagrees_with_what_was_listed_is_flagged(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    def lying(_request: httpx.Request) -> httpx.Response:
        info = {"page": 1, "per_page": 100, "count": 2, "total_count": 3, "total_pages": 1}
        body = {"success": True, "result": items(2), "result_info": info}
        return json_response(200, body)

    fake.faults.append(lying)
    listing = fetch(client)
    assert listing.problems == (
        "Cloudflare reported total_count 3 but 2 distinct items were listed",
    )


def test_an_empty_page_that_claims_items_is_flagged(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    info = {"page": 1, "per_page": 100, "count": 0, "total_count": 5, "total_pages": 1}
    fake.faults.append(
        lambda _r: json_response(200, {"success": True, "result": [], "result_info": info})
    )
    listing = fetch(client)
    assert (listing.items, listing.consistent) == ([], False)
    assert listing.problems == (
        "Cloudflare reported total_count 5 but 0 distinct items were listed",
    )


def test_duplicates_on_one_page_are_dropped_keeping_the_first(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = [{"id": "a", "v": 1}, {"id": "b"}, {"id": "a", "v": 2}]
    listing = fetch(client)
    assert listing.items == [{"id": "a", "v": 1}, {"id": "b"}]
    assert listing.problems == (
        "id a appeared twice on page 1: the listing changed while it was paged",
    )


def test_many_repeats_are_summarised(fake: FakeCloudflare, client: CloudflareClient) -> None:
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = items(10) + items(9)
    listing = fetch(client)
    assert len(listing.items) == 10
    assert "(and 4 more): the listing changed" in listing.problems[0]


def test_items_without_a_string_id_are_kept_for_the_caller_to_reject(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    odd: list[dict[str, Any]] = [{"name": "no id"}, {"id": 7}, {"id": None}, {"name": "no id"}]
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = [*odd, {"id": "ok"}]
    listing = fetch(client)
    assert listing.items == [*odd, {"id": "ok"}]
    assert listing.consistent


def test_an_item_that_is_not_an_object_is_a_bad_response(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.faults.append(lambda _r: json_response(200, {"success": True, "result": [{"id": "a"}, 5]}))
    with pytest.raises(BadResponseError, match=r"item 2 on page 1 .* is not an object but int"):
        fetch(client)


def test_the_page_cap_raises_instead_of_looping(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.result_info = False
    fake.listings[ACCOUNT]["portals"] = items(1000)
    with pytest.raises(PagingError) as caught:
        fetch(client, per_page=10, max_pages=4)
    assert pages_requested(fake) == [1, 2, 3, 4]
    assert "did not end within 4 pages of 10" in str(caught.value)


def test_an_endless_api_is_stopped_by_the_page_cap(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    # Every page full of new ids and total_pages growing with it: only the cap can end this.
    def endless(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        info = {"page": page, "per_page": 2, "total_pages": page + 1, "total_count": 2 * page + 2}
        result = [{"id": f"x{page}a"}, {"id": f"x{page}b"}]
        return json_response(200, {"success": True, "result": result, "result_info": info})

    fake.faults.extend([endless] * 100)
    with pytest.raises(PagingError):
        fetch(client, per_page=2, max_pages=50)
    assert len(fake.requests) == 50


def test_any_error_on_a_later_page_raises_rather_than_returning_part(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    listing = fake.listings[ACCOUNT]["portals"] = items(30)
    fake.faults.extend(
        [
            lambda _r: fake.page_response(listing, 1, 10),
            lambda _r: error_envelope(403, 10000, "Authentication error"),
        ]
    )
    with pytest.raises(AuthError):
        fetch(client, per_page=10)
    assert pages_requested(fake) == [1, 2]


def test_progress_is_reported_after_every_page(
    fake: FakeCloudflare, client: CloudflareClient
) -> None:
    fake.listings[ACCOUNT]["servers"] = items(25, "s")
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
