"""CloudflareClient against a stateful fake of the two list endpoints, over httpx.MockTransport.

Backoff is off (stamina's testing mode); time is a fake clock that the fake API advances, so the
retry budget, Retry-After and the rate limiter are exercised without sleeping.
"""

from __future__ import annotations

import itertools
import json
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import certifi
import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from inventory.client import RETRY_STATUSES, CloudflareClient, RequestStats
from inventory.errors import (
    ApiError,
    AuthError,
    BadResponseError,
    DeadlineError,
    FetchError,
    TransportError,
)
from inventory.ratelimit import RateLimiter

BASE = "https://api.cloudflare.test/client/v4"
ACCOUNT = "a86a8f5c339544d7bdc89926de14fb8c"
TOKEN = "cfut_LEAKCANARY_9d1c7e4b2a6f0e83"  # distinctive, so any leak is unmistakable
OTHER_ACCOUNT, OTHER_TOKEN = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "cfut_OTHERCANARY_1f2e3d4c5b6a"
API_KEY = "KEYCANARY0123456789abcdef"
SERVER_DATE = datetime(2033, 11, 15, 8, 12, 31, tzinfo=UTC)
PORTALS = f"/accounts/{ACCOUNT}/access/ai-controls/mcp/portals"
PARAMS: dict[str, str | int] = {"page": 1, "per_page": 100}

Fault = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class Stream(httpx.SyncByteStream):
    """A body sent in chunks, that may break off with ``error`` after them."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.sent = chunks, error, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.error is not None:
            raise self.error


class FakeCloudflare:
    """The list endpoints of two accounts, each with its own token; ``faults`` are served first."""

    def __init__(self, clock: FakeClock | None = None, *, latency: float = 0.0) -> None:
        self.clock = clock or FakeClock()
        self.latency = latency
        self.tokens = {TOKEN: ACCOUNT, OTHER_TOKEN: OTHER_ACCOUNT}
        self.listings: dict[str, dict[str, list[dict[str, Any]]]] = {
            ACCOUNT: {"portals": [], "servers": []},
            OTHER_ACCOUNT: {"portals": [], "servers": []},
        }
        self.result_info = True
        self.repeat_last_page = False  # past the end, serve the last page again
        self.max_per_page = 100  # a server that caps page size silently
        self.faults: deque[Fault] = deque()
        self.before_page: Callable[[str, int], None] | None = None
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.clock.now += self.latency
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            return fault(request)
        account = self._authenticate(request)
        if account is None:
            return error_envelope(403, 10000, "Authentication error")
        prefix = f"/client/v4/accounts/{account}/access/ai-controls/mcp/"
        endpoint = request.url.path.removeprefix(prefix)
        if not request.url.path.startswith(prefix) or endpoint not in ("portals", "servers"):
            return error_envelope(404, 7003, "Could not route to /" + request.url.path)
        page = int(request.url.params.get("page", "1"))
        per_page = int(request.url.params.get("per_page", "20"))
        if page < 1 or not 1 <= per_page <= 100:
            return error_envelope(400, 10001, "page and per_page are out of range")
        if self.before_page is not None:
            self.before_page(endpoint, page)
        return self.page_response(
            self.listings[account][endpoint], page, min(per_page, self.max_per_page)
        )

    def _authenticate(self, request: httpx.Request) -> str | None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer in self.tokens:
            return self.tokens[bearer]
        if request.headers.get("x-auth-key") == API_KEY and request.headers.get("x-auth-email"):
            return ACCOUNT
        return None

    def page_response(
        self, listing: list[dict[str, Any]], page: int, per_page: int
    ) -> httpx.Response:
        total_pages = -(-len(listing) // per_page)
        shown = page if not (self.repeat_last_page and page > total_pages > 0) else total_pages
        items = listing[(shown - 1) * per_page : shown * per_page]
        body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": items}
        if self.result_info:
            body["result_info"] = {
                "page": page,
                "per_page": per_page,
                "count": len(items),
                "total_count": len(listing),
                "total_pages": total_pages,
            }
        return json_response(200, body)


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Date": http_date(SERVER_DATE), **headers},
    )


def error_envelope(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    body = {"success": False, "errors": [{"code": code, "message": message}], "result": None}
    return json_response(status, body, **headers)


def raw(status: int, content: bytes, content_type: str = "application/json") -> Fault:
    return lambda _r: httpx.Response(
        status, content=content, headers={"Content-Type": content_type}
    )


def status(code: int, **headers: str) -> Fault:
    return lambda _r: error_envelope(code, 1000 + code, f"fake {code}", **headers)


def raises(error: type[httpx.RequestError]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return fault


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def html_page(code: int, title: str) -> Fault:
    page = f"<html><head><title>{title}</title></head><body>{'x' * 500}</body></html>"
    return raw(code, page.encode(), "text/html; charset=UTF-8")


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    # attempts=1000 with cap keeps each client's own max_retries; waits become 0.
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare()


def make_client(fake: FakeCloudflare, **kwargs: Any) -> CloudflareClient:
    kwargs.setdefault(
        "limiter_factory", lambda _key: RateLimiter(clock=fake.clock, sleep=fake.clock.sleep)
    )
    return CloudflareClient(base_url=BASE, transport=fake.transport(), clock=fake.clock, **kwargs)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(client: CloudflareClient, stats: RequestStats | None = None, **kw: Any) -> dict[str, Any]:
    return client.get_page(
        kw.pop("path", PORTALS),
        params=kw.pop("params", PARAMS),
        headers=kw.pop("headers", bearer()),
        credential_key=kw.pop("credential_key", "token-1"),
        stats=stats,
    ).decoded()


def test_returns_the_envelope_and_sends_the_credential_only_with_the_call(
    fake: FakeCloudflare,
) -> None:
    fake.listings[ACCOUNT]["portals"] = [{"id": "p1"}]
    stats = RequestStats()
    with make_client(fake, user_agent="inventory/test") as client:
        envelope = get(client, stats)
    assert envelope["result"] == [{"id": "p1"}]
    assert envelope["success"] is True
    request = fake.requests[0]
    assert str(request.url) == f"{BASE}{PORTALS}?page=1&per_page=100"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == "inventory/test"
    assert (stats.requests, stats.retries, stats.by_status) == (1, 0, {200: 1})


def test_the_default_limiter_does_not_count_an_unthrottled_request(fake: FakeCloudflare) -> None:
    stats = RequestStats()
    with make_client(fake, limiter_factory=None) as client:
        get(client, stats)
        get(client, stats)
    assert (stats.requests, stats.throttled, stats.throttled_seconds) == (2, 0, 0.0)


def test_api_key_credentials_work_too(fake: FakeCloudflare) -> None:
    headers = {"X-Auth-Email": "ops@example.com", "X-Auth-Key": API_KEY}
    with make_client(fake) as client:
        assert get(client, headers=headers)["result"] == []


@pytest.mark.parametrize("code", sorted(RETRY_STATUSES))
def test_retriable_statuses_are_retried_until_success(fake: FakeCloudflare, code: int) -> None:
    assert {429, 500, 502, 503, 504, *range(520, 531)} <= RETRY_STATUSES
    fake.faults.extend([status(code), status(code)])
    stats = RequestStats()
    with make_client(fake) as client:
        assert get(client, stats)["success"] is True
    assert (stats.requests, stats.retries) == (3, 2)
    assert stats.by_status == {code: 2, 200: 1}


@pytest.mark.parametrize(
    "fault",
    [
        raises(httpx.ConnectError),
        raises(httpx.ConnectTimeout),
        raises(httpx.ReadTimeout),
        raises(httpx.RemoteProtocolError),
        raises(httpx.ReadError),
        raises(httpx.PoolTimeout),
    ],
)
def test_timeouts_and_connection_errors_are_retried(fake: FakeCloudflare, fault: Fault) -> None:
    fake.faults.extend([fault, fault])
    stats = RequestStats()
    with make_client(fake) as client:
        assert get(client, stats)["success"] is True
    assert (stats.requests, stats.retries) == (3, 2)


@pytest.mark.parametrize("error", [httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout])
def test_a_body_cut_or_stalled_mid_read_is_retried(fake: FakeCloudflare, error: type) -> None:
    def cut(_request: httpx.Request) -> httpx.Response:
        chunks = [b'{"success": true, "result": [{"id": "p']
        return httpx.Response(
            200, headers={"Content-Type": "application/json"}, stream=Stream(chunks, error("cut"))
        )

    fake.faults.append(cut)
    stats = RequestStats()
    with make_client(fake) as client:
        assert get(client, stats)["result"] == []
    assert stats.retries == 1


def test_gives_up_after_max_retries_with_the_count_the_time_and_the_cause(
    fake: FakeCloudflare,
) -> None:
    fake.latency = 1.5
    fake.faults.extend([status(503)] * 50)
    with make_client(fake, max_retries=5) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(fake.requests) == 6
    assert caught.value.status_code == 503
    assert caught.value.codes == (1503,)
    assert str(caught.value) == (
        f"GET {PORTALS}?page=1&per_page=100: gave up after 6 attempts in 9.0 s: "
        "503 Service Unavailable: Cloudflare error 1503: fake 503"
    )
    assert caught.value.url == f"{BASE}{PORTALS}?page=1&per_page=100"


def test_max_retries_zero_means_one_attempt(fake: FakeCloudflare) -> None:
    fake.faults.extend([status(502)] * 5)
    with make_client(fake, max_retries=0) as client, pytest.raises(ApiError, match="1 attempt in"):
        get(client)
    assert len(fake.requests) == 1


def test_gives_up_when_the_time_budget_is_spent(fake: FakeCloudflare) -> None:
    fake.latency = 10.0  # every request takes ten seconds
    fake.faults.extend([raises(httpx.ReadTimeout)] * 50)
    client = make_client(fake, max_retries=50, request_deadline=25)
    with client, pytest.raises(DeadlineError) as caught:
        get(client)
    assert len(fake.requests) == 3
    assert caught.value.setting == "request_deadline"
    assert str(caught.value).startswith(
        f"GET {BASE}{PORTALS}?page=1&per_page=100: stopped by request_deadline (25 s for a "
        "request: connect, headers, body and retries; rate-limit waits not counted) after 3 "
        "attempts; last error: no data for 30 s (read timeout)"
    )


def test_transport_errors_that_are_not_transient_fail_at_once(fake: FakeCloudflare) -> None:
    fake.faults.append(raises(httpx.UnsupportedProtocol))
    with make_client(fake) as client, pytest.raises(TransportError, match="UnsupportedProtocol"):
        get(client)
    assert len(fake.requests) == 1


def test_retry_after_seconds_is_honoured(fake: FakeCloudflare) -> None:
    fake.faults.append(status(429, **{"Retry-After": "7"}))
    stats = RequestStats()
    with make_client(fake) as client:
        get(client, stats)
    assert (stats.rate_limit_waits, stats.rate_limit_wait_seconds) == (1, 7.0)
    assert stats.retries == 1


def test_retry_after_http_date_is_measured_from_the_servers_date(fake: FakeCloudflare) -> None:
    later = http_date(SERVER_DATE + timedelta(seconds=30))
    fake.faults.append(status(429, **{"Retry-After": later}))
    stats = RequestStats()
    with make_client(fake) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 30.0


def test_ratelimit_header_alone_sets_the_wait_and_holds_back_the_credential(
    fake: FakeCloudflare,
) -> None:
    fake.faults.append(status(429, Ratelimit='"default";r=0;t=30'))
    stats = RequestStats()
    with make_client(fake) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 30.0
    # stamina's wait is skipped in tests, so the limiter (fed the header) held the retry back.
    assert stats.throttled_seconds == pytest.approx(30.0)


def test_x_ratelimit_reset_is_the_last_hint(fake: FakeCloudflare) -> None:
    fake.faults.append(status(429, **{"X-RateLimit-Reset": "12"}))
    stats = RequestStats()
    with make_client(fake) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 12.0


def test_429_without_hints_backs_off_exponentially(fake: FakeCloudflare) -> None:
    fake.faults.extend([status(429), status(429)])
    stats = RequestStats()
    with make_client(fake) as client:
        get(client, stats)
    assert stats.rate_limit_waits == 2
    # 0.5 s then 1 s, plus up to 1 s of jitter each
    assert 1.5 <= stats.rate_limit_wait_seconds <= 3.5


def test_a_wait_longer_than_the_budget_gives_up_at_once(fake: FakeCloudflare) -> None:
    fake.faults.append(status(429, **{"Retry-After": "600"}))
    with make_client(fake, request_deadline=120) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(fake.requests) == 1
    assert caught.value.status_code == 429
    assert "gave up after 1 attempt in 0.0 s: 429 Too Many Requests" in str(caught.value)
    assert "Cloudflare asked to wait 600 s, more than the 120 s left" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "error", "cf_code", "message"),
    [
        (403, AuthError, 10000, "Authentication error"),
        (401, AuthError, 10001, "Unauthorized"),
        (400, ApiError, 7400, "bad per_page"),
        (404, ApiError, 7003, "Could not route"),
        (409, ApiError, 1, "conflict"),
    ],
)
def test_other_4xx_fail_at_once_with_cloudflares_code_and_message(
    fake: FakeCloudflare, code: int, error: type[ApiError], cf_code: int, message: str
) -> None:
    fake.faults.append(lambda _r: error_envelope(code, cf_code, message))
    with make_client(fake) as client, pytest.raises(error) as caught:
        get(client)
    assert len(fake.requests) == 1
    assert type(caught.value) is error
    assert (caught.value.status_code, caught.value.codes) == (code, (cf_code,))
    reason = httpx.codes.get_reason_phrase(code)
    assert str(caught.value).startswith(
        f"{code} {reason} from GET {PORTALS}?page=1&per_page=100: "
        f"Cloudflare error {cf_code}: {message}"
    )


def test_a_refused_token_is_an_auth_error_naming_the_permission(fake: FakeCloudflare) -> None:
    with make_client(fake) as client, pytest.raises(AuthError) as caught:
        get(client, headers=bearer("cfut_wrong_but_well_formed"))
    assert "Cloudflare error 10000: Authentication error" in str(caught.value)
    assert "MCP Portals Read" in str(caught.value)


def test_a_4xx_without_json_says_so(fake: FakeCloudflare) -> None:
    fake.faults.append(html_page(403, "Attention Required! | Cloudflare"))
    with make_client(fake) as client, pytest.raises(AuthError) as caught:
        get(client)
    assert "403 Forbidden from GET" in str(caught.value)
    assert "expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "Attention Required! | Cloudflare" in str(caught.value)


def test_a_fatal_5xx_is_not_retried(fake: FakeCloudflare) -> None:
    fake.faults.append(status(501))
    with make_client(fake) as client, pytest.raises(ApiError, match="501 Not Implemented"):
        get(client)
    assert len(fake.requests) == 1


def test_success_false_in_a_200_is_an_api_error(fake: FakeCloudflare) -> None:
    fake.faults.append(lambda _r: error_envelope(200, 9999, "Something odd"))
    with make_client(fake) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert type(caught.value) is ApiError
    assert caught.value.codes == (9999,)
    assert "success: false: Cloudflare error 9999: Something odd" in str(caught.value)


def test_an_html_520_is_retried_then_reported_as_a_bad_response(fake: FakeCloudflare) -> None:
    fake.faults.extend([html_page(520, "example.com | 520: Web server is returning an error")] * 9)
    with make_client(fake, max_retries=2) as client, pytest.raises(BadResponseError) as caught:
        get(client)
    assert len(fake.requests) == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert "520 Unknown Error: expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "520: Web server is returning an error" in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (html_page(200, "Captive portal"), "expected JSON from Cloudflare but got text/html"),
        (raw(200, b"{}", "text/plain"), "got text/plain (HTTP 200)"),
        (raw(200, b""), "empty body (HTTP 200)"),
        (raw(200, b'{"success": true, "result": [{"id": "p1"'), "truncated JSON at byte 40"),
        (raw(200, b'{"success": true, "result": [1,, 2]}'), "invalid JSON"),
        (raw(200, b'{"success": true, "result": [NaN]}'), "non-standard JSON literal NaN"),
        (raw(200, b'{"success": true, "result": [-Infinity]}'), "non-standard JSON literal"),
        (raw(200, b'{"success": true, "result": [], "result": [1]}'), "more than one result"),
        (raw(200, b'{"success": true, "result": {"id": "p1"}}'), "is an object, expected a list"),
        (raw(200, b'{"success": true, "result": null}'), "is null, expected a list"),
        (raw(200, b'{"success": true}'), "is null, expected a list"),
        (raw(200, b'[{"id": "p1"}]'), "envelope object"),
        (raw(200, b'{"result": []}'), "no boolean 'success'"),
        (raw(200, b'{"success": "yes", "result": []}'), "no boolean 'success'"),
        (raw(200, b'{"success": true, "result": ["\xff"]}'), "not UTF-8"),
        (raw(200, b"[" * 100_000 + b"]" * 100_000), "unusable JSON"),
    ],
)
def test_bodies_that_are_not_the_envelope_are_bad_responses(
    fake: FakeCloudflare, fault: Fault, expected: str
) -> None:
    fake.faults.append(fault)
    with make_client(fake) as client, pytest.raises(BadResponseError) as caught:
        get(client)
    assert expected in str(caught.value)
    assert len(fake.requests) == 1


def test_duplicate_keys_inside_items_are_left_to_json(fake: FakeCloudflare) -> None:
    fake.faults.append(raw(200, b'{"success": true, "result": [{"id": "a", "id": "b"}]}'))
    with make_client(fake) as client:
        assert get(client)["result"] == [{"id": "b"}]


def test_an_oversized_body_declared_up_front_is_not_read(fake: FakeCloudflare) -> None:
    stream = Stream([b"x" * 1000] * 10)

    def big(_request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Length": "10000"}
        return httpx.Response(200, headers=headers, stream=stream)

    fake.faults.append(big)
    client = make_client(fake, max_response_bytes=5000)
    with (
        client,
        pytest.raises(BadResponseError, match="declares 10,000 bytes, over the 5,000-byte"),
    ):
        get(client)
    assert stream.sent == 0


def test_an_oversized_streamed_body_stops_being_read_at_the_limit(fake: FakeCloudflare) -> None:
    stream = Stream(itertools.repeat(b" " * 1024, 1_000_000))  # a gigabyte, were it all read
    fake.faults.append(
        lambda _r: httpx.Response(200, headers={"Content-Type": "application/json"}, stream=stream)
    )
    client = make_client(fake, max_response_bytes=10_000)
    with client, pytest.raises(BadResponseError, match="larger than the 10,000-byte limit"):
        get(client)
    assert stream.sent == 10


def test_a_redirect_is_refused_and_not_followed(fake: FakeCloudflare) -> None:
    fake.faults.append(
        lambda _r: httpx.Response(302, headers={"Location": "https://elsewhere.test/steal"})
    )
    with make_client(fake) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(fake.requests) == 1  # nothing went to elsewhere.test
    assert caught.value.status_code == 302
    assert "302 Found" in str(caught.value)
    assert "redirects are not followed (to https://elsewhere.test/steal)" in str(caught.value)


@pytest.mark.parametrize(
    "path",
    [
        "https://elsewhere.test/accounts/x",
        "//elsewhere.test/accounts/x",
        "accounts/x",
        "/accounts/../../x",
        "/accounts/x?page=2",
    ],
)
def test_a_path_that_could_leave_base_url_is_refused(fake: FakeCloudflare, path: str) -> None:
    with make_client(fake) as client, pytest.raises(ValueError, match="base_url"):
        get(client, path=path)
    assert fake.requests == []


def test_a_credential_with_a_newline_is_not_sent(fake: FakeCloudflare) -> None:
    with make_client(fake) as client, pytest.raises(AuthError) as caught:
        get(client, headers=bearer(TOKEN + "\n"))
    assert fake.requests == []
    assert "Authorization header" in str(caught.value)
    assert TOKEN not in str(caught.value)


# (fault, whether the message quotes the server's text, so the token must show as [redacted])
LEAKY_FAULTS: list[tuple[Fault, bool]] = [
    (lambda _r: error_envelope(400, 6003, f"Invalid request headers: Bearer {TOKEN}"), True),
    (lambda _r: error_envelope(403, 10000, f"token {TOKEN} is not valid"), True),
    (lambda _r: error_envelope(200, 10000, f"token {TOKEN} expired"), True),
    (lambda _r: error_envelope(503, 1, f"overloaded; your token {TOKEN}"), True),
    (lambda _r: error_envelope(429, 971, TOKEN, **{"Retry-After": "1"}), True),
    (html_page(520, f"Error for {TOKEN}"), True),
    (html_page(200, f"Hello {TOKEN}"), True),
    (lambda _r: httpx.Response(301, headers={"Location": f"https://x.test/?t={TOKEN}"}), True),
    (raw(200, f'{{"success": true, "result": "{TOKEN}"}}'.encode()), False),
    (raises(httpx.ReadTimeout), False),
    (raises(httpx.ConnectError), False),
    (raises(httpx.UnsupportedProtocol), False),
]


@pytest.mark.parametrize(("fault", "quoted"), LEAKY_FAULTS)
def test_no_error_message_repr_traceback_or_log_holds_the_credential(
    fake: FakeCloudflare, fault: Fault, quoted: bool
) -> None:
    fake.faults.extend([fault] * 3)
    stats = RequestStats()
    with capture_logs() as logs, make_client(fake, max_retries=2) as client:
        with pytest.raises(FetchError) as caught:
            get(client, stats)
        seen = [
            str(caught.value),
            repr(caught.value),
            "".join(traceback.format_exception(caught.value)),
            repr(client),
            repr(stats),
            repr(logs),
        ]
    for text in seen:
        assert TOKEN not in text
    assert ("[redacted]" in str(caught.value)) is quoted


def test_an_api_key_is_scrubbed_too(fake: FakeCloudflare) -> None:
    fake.faults.append(lambda _r: error_envelope(403, 9103, f"Unknown X-Auth-Key {API_KEY}"))
    headers = {"X-Auth-Email": "ops@example.com", "X-Auth-Key": API_KEY}
    with make_client(fake) as client, pytest.raises(AuthError) as caught:
        get(client, headers=headers)
    assert API_KEY not in str(caught.value)
    assert "Unknown X-Auth-Key [redacted]" in str(caught.value)


def test_one_limiter_per_credential_key_acquired_before_every_attempt(
    fake: FakeCloudflare,
) -> None:
    created: dict[str, CountingLimiter] = {}

    def factory(key: str) -> RateLimiter:
        created[key] = CountingLimiter(clock=fake.clock, sleep=fake.clock.sleep)
        return created[key]

    fake.faults.append(status(503))
    with make_client(fake, limiter_factory=factory) as client:
        get(client, credential_key="key-a")
        get(client, credential_key="key-a")
        get(
            client,
            credential_key="key-b",
            headers=bearer(OTHER_TOKEN),
            path=PORTALS.replace(ACCOUNT, OTHER_ACCOUNT),
        )
    assert sorted(created) == ["key-a", "key-b"]
    assert (created["key-a"].acquired, created["key-b"].acquired) == (3, 1)
    assert (created["key-a"].observed, created["key-b"].observed) == (3, 1)


class CountingLimiter(RateLimiter):
    acquired = observed = 0

    def acquire_slot(self, *, max_block: float | None = None) -> tuple[float, float]:
        self.acquired += 1
        return super().acquire_slot(max_block=max_block)

    def observe(self, headers: Any) -> None:
        self.observed += 1
        super().observe(headers)


def test_a_low_budget_reported_by_cloudflare_slows_that_credential_only(
    fake: FakeCloudflare,
) -> None:
    def low(_request: httpx.Request) -> httpx.Response:
        return json_response(
            200,
            {"success": True, "result": []},
            **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"},
        )

    fake.faults.append(low)
    other = PORTALS.replace(ACCOUNT, OTHER_ACCOUNT)
    stats, other_stats = RequestStats(), RequestStats()
    with make_client(fake) as client:
        get(client, credential_key="key-a")
        get(client, other_stats, credential_key="key-b", headers=bearer(OTHER_TOKEN), path=other)
        assert other_stats.throttled == 0
        get(client, stats, credential_key="key-a")
    assert stats.throttled == 1
    assert stats.throttled_seconds == pytest.approx(60.0)


def test_threads_share_one_client_each_with_its_own_credential(fake: FakeCloudflare) -> None:
    fake.listings[ACCOUNT]["portals"] = [{"id": "mine"}]
    fake.listings[OTHER_ACCOUNT]["portals"] = [{"id": "theirs"}]
    stats = RequestStats()
    results: dict[str, list[object]] = {"mine": [], "theirs": []}

    def work(token: str, account: str, label: str) -> None:
        for _ in range(25):
            envelope = get(
                client,
                stats,
                headers=bearer(token),
                credential_key=token[-4:],
                path=PORTALS.replace(ACCOUNT, account),
            )
            results[label].append(envelope["result"][0]["id"])

    with make_client(fake) as client:
        threads = [
            threading.Thread(target=work, args=(TOKEN, ACCOUNT, "mine")),
            threading.Thread(target=work, args=(OTHER_TOKEN, OTHER_ACCOUNT, "theirs")),
        ] * 1
        threads += [threading.Thread(target=work, args=(TOKEN, ACCOUNT, "mine"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results["mine"] == ["mine"] * 50
    assert results["theirs"] == ["theirs"] * 25
    assert stats.requests == 75
    assert stats.by_status == {200: 75}


def test_a_ca_bundle_path_is_accepted() -> None:
    with CloudflareClient(base_url=BASE, verify=certifi.where()) as client:
        assert repr(client) == f"CloudflareClient(base_url='{BASE}/')"
