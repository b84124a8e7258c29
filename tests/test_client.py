"""CloudflareClient against the simulator's request handler, over httpx.MockTransport.

Backoff is off (stamina's testing mode); time is a fake clock that every request advances, so the
retry budget, Retry-After and the rate limiter are exercised without sleeping. Faults the API
can send come from the simulator (``inventory.simulator.Fault``); bytes it never sends, broken
connections and broken bodies are played at the transport (``tests.support.api``).
"""

from __future__ import annotations

import itertools
import ssl
import threading
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from structlog.testing import capture_logs

from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.ratelimit import RateLimiter
from inventory.cloudflare.request import ssl_verify
from inventory.cloudflare.retry import RETRY_STATUSES
from inventory.errors import (
    ApiError,
    AuthError,
    BadResponseError,
    DeadlineError,
    FetchError,
    TransportError,
)
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.api import (
    BrokenStream,
    Scripted,
    SimulatorTransport,
    broken_body,
    error_reply,
    html_page,
    http_date,
    json_reply,
    raises,
    reply,
)

BASE = "https://api.cloudflare.test/client/v4"
TOKEN = "cfut_LEAKCANARY_9d1c7e4b2a6f0e83"  # distinctive, so any leak is unmistakable
API_EMAIL, API_KEY = "ops@example.com", "KEYCANARY0123456789abcdef"


def simulator() -> SimulatedCloudflare:
    return SimulatedCloudflare(
        seed=5,
        accounts=2,
        portals_per_account=2,
        servers_per_account=2,
        unattached_per_account=0,
        api_token=TOKEN,
        api_email=API_EMAIL,
        api_key=API_KEY,
    )


ACCOUNT, OTHER_ACCOUNT = simulator().account_ids
PORTALS = f"/accounts/{ACCOUNT}/access/ai-controls/mcp/portals"
OTHER_PORTALS = PORTALS.replace(ACCOUNT, OTHER_ACCOUNT)
PARAMS: dict[str, str | int] = {"page": 1, "per_page": 100}
SERVER_DATE = datetime(2033, 11, 15, 8, 12, 31, tzinfo=UTC)


@pytest.fixture
def api() -> SimulatorTransport:
    return SimulatorTransport(simulator())


def make_client(api: SimulatorTransport, **kwargs: Any) -> CloudflareClient:
    kwargs.setdefault(
        "limiter_factory", lambda _key: RateLimiter(clock=api.clock, sleep=api.clock.sleep)
    )
    return CloudflareClient(base_url=BASE, transport=api, clock=api.clock, **kwargs)


def fault(api: SimulatorTransport, kind: str = "status", times: int = 1, **kw: Any) -> None:
    api.sim.faults.add(Fault(kind=kind, times=times, **kw))  # type: ignore[arg-type]


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
    api: SimulatorTransport,
) -> None:
    stats = RequestStats()
    with make_client(api, user_agent="inventory/test") as client:
        envelope = get(client, stats)
    assert envelope["result"] == api.sim.portals(ACCOUNT)
    assert len(envelope["result"]) == 2
    assert envelope["success"] is True
    request = api.requests[0]
    assert str(request.url) == f"{BASE}{PORTALS}?page=1&per_page=100"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == "inventory/test"
    assert (stats.requests, stats.retries, stats.by_status) == (1, 0, {200: 1})


def test_the_default_limiter_does_not_count_an_unthrottled_request(api: SimulatorTransport) -> None:
    stats = RequestStats()
    with make_client(api, limiter_factory=None) as client:
        get(client, stats)
        get(client, stats)
    assert (stats.requests, stats.throttled, stats.throttled_seconds) == (2, 0, 0.0)


def test_api_key_credentials_work_too(api: SimulatorTransport) -> None:
    headers = {"X-Auth-Email": API_EMAIL, "X-Auth-Key": API_KEY}
    with make_client(api) as client:
        assert get(client, headers=headers)["result"] == api.sim.portals(ACCOUNT)
    assert api.sim.requests[0].auth == "key"


@pytest.mark.parametrize("code", sorted(RETRY_STATUSES))
def test_retriable_statuses_are_retried_until_success(api: SimulatorTransport, code: int) -> None:
    assert {429, 500, 502, 503, 504, *range(520, 531)} <= RETRY_STATUSES
    # a 429 says how long to wait; else the simulator's Ratelimit header (5 minutes) would
    fault(api, status=code, times=2, retry_after=1 if code == 429 else None)
    stats = RequestStats()
    with make_client(api) as client:
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
def test_timeouts_and_connection_errors_are_retried(
    api: SimulatorTransport, fault: Scripted
) -> None:
    api.ahead.extend([fault, fault])
    stats = RequestStats()
    with make_client(api) as client:
        assert get(client, stats)["success"] is True
    assert (stats.requests, stats.retries) == (3, 2)


@pytest.mark.parametrize("error", [httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout])
def test_a_body_cut_or_stalled_mid_read_is_retried(api: SimulatorTransport, error: type) -> None:
    api.ahead.append(broken_body([b'{"success": true, "result": [{"id": "p'], error("cut")))
    stats = RequestStats()
    with make_client(api) as client:
        assert get(client, stats)["result"] == api.sim.portals(ACCOUNT)
    assert stats.retries == 1


def test_gives_up_after_max_retries_with_the_count_the_time_and_the_cause(
    api: SimulatorTransport,
) -> None:
    api.latency = 1.5
    fault(api, status=503, times=50)
    with make_client(api, max_retries=5) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(api.requests) == 6
    assert caught.value.status_code == 503
    assert caught.value.codes == (10003,)
    assert str(caught.value) == (
        f"GET {PORTALS}?page=1&per_page=100: gave up after 6 attempts in 9.0 s: "
        "503 Service Unavailable: Cloudflare error 10003: Service temporarily unavailable"
    )
    assert caught.value.url == f"{BASE}{PORTALS}?page=1&per_page=100"


def test_max_retries_zero_means_one_attempt(api: SimulatorTransport) -> None:
    fault(api, status=502, times=5)
    with make_client(api, max_retries=0) as client, pytest.raises(ApiError, match="1 attempt in"):
        get(client)
    assert len(api.requests) == 1


def test_gives_up_when_the_time_budget_is_spent(api: SimulatorTransport) -> None:
    api.latency = 10.0  # every request takes ten seconds
    api.ahead.extend([raises(httpx.ReadTimeout)] * 50)
    client = make_client(api, max_retries=50, request_deadline=25)
    with client, pytest.raises(DeadlineError) as caught:
        get(client)
    assert len(api.requests) == 3
    assert caught.value.setting == "request_deadline"
    assert str(caught.value).startswith(
        f"GET {BASE}{PORTALS}?page=1&per_page=100: stopped by request_deadline (25 s for a "
        "request: connect, headers, body and retries; rate-limit waits not counted) after 3 "
        "attempts; last error: no data for 30 s (read timeout)"
    )


def test_transport_errors_that_are_not_transient_fail_at_once(api: SimulatorTransport) -> None:
    api.ahead.append(raises(httpx.UnsupportedProtocol))
    with make_client(api) as client, pytest.raises(TransportError, match="UnsupportedProtocol"):
        get(client)
    assert len(api.requests) == 1


def test_retry_after_seconds_is_honoured(api: SimulatorTransport) -> None:
    fault(api, status=429, retry_after=7)
    stats = RequestStats()
    with make_client(api) as client:
        get(client, stats)
    assert (stats.rate_limit_waits, stats.rate_limit_wait_seconds) == (1, 7.0)
    assert stats.retries == 1


def test_retry_after_http_date_is_measured_from_the_servers_date(api: SimulatorTransport) -> None:
    now, later = http_date(SERVER_DATE), http_date(SERVER_DATE + timedelta(seconds=30))
    api.ahead.append(error_reply(429, 971, "slow down", **{"Retry-After": later, "Date": now}))
    stats = RequestStats()
    with make_client(api) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 30.0


def test_ratelimit_header_alone_sets_the_wait_and_holds_back_the_credential(
    api: SimulatorTransport,
) -> None:
    fault(api, status=429, retry_after=30, ratelimit_headers=True)
    stats = RequestStats()
    with make_client(api) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 30.0
    # stamina's wait is skipped in tests, so the limiter (fed the header) held the retry back.
    assert stats.throttled_seconds == pytest.approx(30.0)


def test_x_ratelimit_reset_is_the_last_hint(api: SimulatorTransport) -> None:
    api.ahead.append(error_reply(429, 971, "slow down", **{"X-RateLimit-Reset": "12"}))
    stats = RequestStats()
    with make_client(api) as client:
        get(client, stats)
    assert stats.rate_limit_wait_seconds == 12.0


def test_429_without_hints_backs_off_exponentially(api: SimulatorTransport) -> None:
    api.ahead.extend([error_reply(429, 971, "slow down")] * 2)  # no hint at all
    stats = RequestStats()
    with make_client(api) as client:
        get(client, stats)
    assert stats.rate_limit_waits == 2
    # 0.5 s then 1 s, plus up to 1 s of jitter each
    assert 1.5 <= stats.rate_limit_wait_seconds <= 3.5


def test_a_wait_longer_than_the_budget_gives_up_at_once(api: SimulatorTransport) -> None:
    fault(api, status=429, retry_after=600)
    with make_client(api, request_deadline=120) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(api.requests) == 1
    assert caught.value.status_code == 429
    assert "gave up after 1 attempt in 0.0 s: 429 Too Many Requests" in str(caught.value)
    assert "Cloudflare asked to wait 600 s, more than the 120 s left" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "error", "cf_code", "message"),
    [
        (403, AuthError, 10000, "Authentication error"),
        (401, AuthError, 10000, "Authentication error"),
        (400, ApiError, 400, "Bad Request"),
        (404, ApiError, 404, "Not Found"),
        (409, ApiError, 409, "Conflict"),
    ],
)
def test_other_4xx_fail_at_once_with_cloudflares_code_and_message(
    api: SimulatorTransport, code: int, error: type[ApiError], cf_code: int, message: str
) -> None:
    fault(api, status=code)
    with make_client(api) as client, pytest.raises(error) as caught:
        get(client)
    assert len(api.requests) == 1
    assert type(caught.value) is error
    assert (caught.value.status_code, caught.value.codes) == (code, (cf_code,))
    reason = httpx.codes.get_reason_phrase(code)
    assert str(caught.value).startswith(
        f"{code} {reason} from GET {PORTALS}?page=1&per_page=100: "
        f"Cloudflare error {cf_code}: {message}"
    )


def test_a_refused_token_is_an_auth_error_naming_the_permission(api: SimulatorTransport) -> None:
    with make_client(api) as client, pytest.raises(AuthError) as caught:
        get(client, headers=bearer("cfut_wrong_but_well_formed"))
    assert "Cloudflare error 10000: Authentication error" in str(caught.value)
    assert "MCP Portals Read" in str(caught.value)


def test_a_4xx_without_json_says_so(api: SimulatorTransport) -> None:
    api.ahead.append(html_page(403, "Attention Required! | Cloudflare"))
    with make_client(api) as client, pytest.raises(AuthError) as caught:
        get(client)
    assert "403 Forbidden from GET" in str(caught.value)
    assert "expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "Attention Required! | Cloudflare" in str(caught.value)


def test_a_fatal_5xx_is_not_retried(api: SimulatorTransport) -> None:
    fault(api, status=501)
    with make_client(api) as client, pytest.raises(ApiError, match="501 Not Implemented"):
        get(client)
    assert len(api.requests) == 1


def test_success_false_in_a_200_is_an_api_error(api: SimulatorTransport) -> None:
    api.ahead.append(error_reply(200, 9999, "Something odd"))
    with make_client(api) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert type(caught.value) is ApiError
    assert caught.value.codes == (9999,)
    assert "success: false: Cloudflare error 9999: Something odd" in str(caught.value)


def test_an_html_520_is_retried_then_reported_as_a_bad_response(api: SimulatorTransport) -> None:
    api.ahead.extend([html_page(520, "example.com | 520: Web server is returning an error")] * 9)
    with make_client(api, max_retries=2) as client, pytest.raises(BadResponseError) as caught:
        get(client)
    assert len(api.requests) == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert "520 Unknown Error: expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "expected JSON from Cloudflare but got text/html" in str(caught.value)
    assert "520: Web server is returning an error" in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (html_page(200, "Captive portal"), "expected JSON from Cloudflare but got text/html"),
        (reply(200, b"{}", "text/plain"), "got text/plain (HTTP 200)"),
        (reply(200, b""), "empty body (HTTP 200)"),
        (reply(200, b'{"success": true, "result": [{"id": "p1"'), "truncated JSON at byte 40"),
        (reply(200, b'{"success": true, "result": [1,, 2]}'), "invalid JSON"),
        (reply(200, b'{"success": true, "result": [NaN]}'), "non-standard JSON literal NaN"),
        (reply(200, b'{"success": true, "result": [-Infinity]}'), "non-standard JSON literal"),
        (reply(200, b'{"success": true, "result": [], "result": [1]}'), "more than one result"),
        (reply(200, b'{"success": true, "result": {"id": "p1"}}'), "is an object, expected a list"),
        (reply(200, b'{"success": true, "result": null}'), "is null, expected a list"),
        (reply(200, b'{"success": true}'), "is null, expected a list"),
        (reply(200, b'[{"id": "p1"}]'), "envelope object"),
        (reply(200, b'{"result": []}'), "no boolean 'success'"),
        (reply(200, b'{"success": "yes", "result": []}'), "no boolean 'success'"),
        (reply(200, b'{"success": true, "result": ["\xff"]}'), "not UTF-8"),
        (reply(200, b"[" * 100_000 + b"]" * 100_000), "unusable JSON"),
    ],
)
def test_bodies_that_are_not_the_envelope_are_bad_responses(
    api: SimulatorTransport, fault: Scripted, expected: str
) -> None:
    api.ahead.append(fault)
    with make_client(api) as client, pytest.raises(BadResponseError) as caught:
        get(client)
    assert expected in str(caught.value)
    assert len(api.requests) == 1


def test_duplicate_keys_inside_items_are_left_to_json(api: SimulatorTransport) -> None:
    api.ahead.append(reply(200, b'{"success": true, "result": [{"id": "a", "id": "b"}]}'))
    with make_client(api) as client:
        assert get(client)["result"] == [{"id": "b"}]


def test_an_oversized_body_declared_up_front_is_not_read(api: SimulatorTransport) -> None:
    stream = BrokenStream([b"x" * 1000] * 10)

    def big(_request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Length": "10000"}
        return httpx.Response(200, headers=headers, stream=stream)

    api.ahead.append(big)
    client = make_client(api, max_response_bytes=5000)
    with (
        client,
        pytest.raises(BadResponseError, match="declares 10,000 bytes, over the 5,000-byte"),
    ):
        get(client)
    assert stream.sent == 0


def test_an_oversized_streamed_body_stops_being_read_at_the_limit(api: SimulatorTransport) -> None:
    stream = BrokenStream(itertools.repeat(b" " * 1024, 1_000_000))  # a gigabyte, were it all read
    api.ahead.append(
        lambda _r: httpx.Response(200, headers={"Content-Type": "application/json"}, stream=stream)
    )
    client = make_client(api, max_response_bytes=10_000)
    with client, pytest.raises(BadResponseError, match="larger than the 10,000-byte limit"):
        get(client)
    assert stream.sent == 10


def test_a_redirect_is_refused_and_not_followed(api: SimulatorTransport) -> None:
    api.ahead.append(
        lambda _r: httpx.Response(302, headers={"Location": "https://elsewhere.test/steal"})
    )
    with make_client(api) as client, pytest.raises(ApiError) as caught:
        get(client)
    assert len(api.requests) == 1  # nothing went to elsewhere.test
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
def test_a_path_that_could_leave_base_url_is_refused(api: SimulatorTransport, path: str) -> None:
    with make_client(api) as client, pytest.raises(ValueError, match="base_url"):
        get(client, path=path)
    assert api.requests == []


def test_a_credential_with_a_newline_is_not_sent(api: SimulatorTransport) -> None:
    with make_client(api) as client, pytest.raises(AuthError) as caught:
        get(client, headers=bearer(TOKEN + "\n"))
    assert api.requests == []
    assert "Authorization header" in str(caught.value)
    assert TOKEN not in str(caught.value)


# (fault, whether the message quotes the server's text, so the token must show as [redacted])
LEAKY_FAULTS: list[tuple[Scripted, bool]] = [
    (error_reply(400, 6003, f"Invalid request headers: Bearer {TOKEN}"), True),
    (error_reply(403, 10000, f"token {TOKEN} is not valid"), True),
    (error_reply(200, 10000, f"token {TOKEN} expired"), True),
    (error_reply(503, 1, f"overloaded; your token {TOKEN}"), True),
    (error_reply(429, 971, TOKEN, **{"Retry-After": "1"}), True),
    (html_page(520, f"Error for {TOKEN}"), True),
    (html_page(200, f"Hello {TOKEN}"), True),
    (lambda _r: httpx.Response(301, headers={"Location": f"https://x.test/?t={TOKEN}"}), True),
    (reply(200, f'{{"success": true, "result": "{TOKEN}"}}'.encode()), False),
    (raises(httpx.ReadTimeout), False),
    (raises(httpx.ConnectError), False),
    (raises(httpx.UnsupportedProtocol), False),
]


@pytest.mark.parametrize(("fault", "quoted"), LEAKY_FAULTS)
def test_no_error_message_repr_traceback_or_log_holds_the_credential(
    api: SimulatorTransport, fault: Scripted, quoted: bool
) -> None:
    api.ahead.extend([fault] * 3)
    stats = RequestStats()
    with capture_logs() as logs, make_client(api, max_retries=2) as client:
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


def test_an_api_key_is_scrubbed_too(api: SimulatorTransport) -> None:
    api.ahead.append(error_reply(403, 9103, f"Unknown X-Auth-Key {API_KEY}"))
    headers = {"X-Auth-Email": API_EMAIL, "X-Auth-Key": API_KEY}
    with make_client(api) as client, pytest.raises(AuthError) as caught:
        get(client, headers=headers)
    assert API_KEY not in str(caught.value)
    assert "Unknown X-Auth-Key [redacted]" in str(caught.value)


def test_one_limiter_per_credential_key_acquired_before_every_attempt(
    api: SimulatorTransport,
) -> None:
    created: dict[str, CountingLimiter] = {}

    def factory(key: str) -> RateLimiter:
        created[key] = CountingLimiter(clock=api.clock, sleep=api.clock.sleep)
        return created[key]

    fault(api, status=503)
    with make_client(api, limiter_factory=factory) as client:
        get(client, credential_key="key-a")
        get(client, credential_key="key-a")
        get(client, credential_key="key-b", path=OTHER_PORTALS)
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
    api: SimulatorTransport,
) -> None:
    low = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"}
    api.ahead.append(json_reply(200, {"success": True, "result": []}, **low))
    stats, other_stats = RequestStats(), RequestStats()
    with make_client(api) as client:
        get(client, credential_key="key-a")
        get(client, other_stats, credential_key="key-b", path=OTHER_PORTALS)
        assert other_stats.throttled == 0
        get(client, stats, credential_key="key-a")
    assert stats.throttled == 1
    assert stats.throttled_seconds == pytest.approx(60.0)


def test_threads_share_one_client_each_with_its_own_credential(api: SimulatorTransport) -> None:
    mine, theirs = api.sim.portal_ids(ACCOUNT)[0], api.sim.portal_ids(OTHER_ACCOUNT)[0]
    stats = RequestStats()
    results: dict[str, list[object]] = {mine: [], theirs: []}

    def work(key: str, account: str, label: str) -> None:
        for _ in range(25):
            envelope = get(
                client, stats, credential_key=key, path=PORTALS.replace(ACCOUNT, account)
            )
            results[label].append(envelope["result"][0]["id"])

    with make_client(api) as client:
        threads = [
            threading.Thread(target=work, args=("key-a", ACCOUNT, mine)),
            threading.Thread(target=work, args=("key-b", OTHER_ACCOUNT, theirs)),
            threading.Thread(target=work, args=("key-a", ACCOUNT, mine)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results[mine] == [mine] * 50
    assert results[theirs] == [theirs] * 25
    assert stats.requests == 75
    assert stats.by_status == {200: 75}


def test_a_ca_bundle_path_is_accepted() -> None:
    with CloudflareClient(base_url=BASE, verify=certifi.where()) as client:
        assert repr(client) == f"CloudflareClient(base_url='{BASE}/')"


def test_clients_share_one_tls_context_per_source(tmp_path: Path) -> None:
    """Loading a CA bundle costs tens of milliseconds: made once per process, not per sync."""
    assert ssl_verify(True) is ssl_verify(True)
    assert ssl_verify(False) is False
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    first = ssl_verify(str(bundle))
    assert isinstance(first, ssl.SSLContext)
    assert first is ssl_verify(str(bundle))
    assert first is not ssl_verify(True)
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n")  # a rotated bundle is read again
    assert ssl_verify(str(bundle)) is not first
