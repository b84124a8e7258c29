"""What the simulated API answers to one request, decided without touching a socket.

Two routes per endpoint: the listing (``…/mcp/portals``) and the detail (``…/mcp/portals/{id}``,
404 with error 7002 for an id it does not have, as the published spec's example). Checks run in
Cloudflare's order: route, credentials, account, revocation, rate limit, paging; a
scripted fault then gets its chance to change the answer. The result is a ``Response`` the HTTP
layer writes out, possibly cut short (``cut``) to play a stalled or truncated transfer.
"""

from __future__ import annotations

import hmac
import itertools
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from inventory.simulator.faults import Fault, corrupt_record
from inventory.simulator.pages import error_body
from inventory.simulator.ratelimit import RateLimiter
from inventory.simulator.state import RequestRecord, SimulatedCloudflare

__all__ = ["API_PATH", "DETAIL_PATH", "Response", "handle_api"]

API_PATH = re.compile(r"^/client/v4/accounts/([^/]*)/access/ai-controls/mcp/(portals|servers)/?$")
DETAIL_PATH = re.compile(
    r"^/client/v4/accounts/([^/]*)/access/ai-controls/mcp/(portals|servers)/([^/]+)/?$"
)

_HTML = (
    b"<!DOCTYPE html>\n<html><head>"
    b"<title>example.com | 520: Web server is returning an unknown error</title></head>"
    b"<body><h1>Web server is returning an unknown error</h1><p>Error code 520</p>"
    b"<p>Cloudflare Ray ID: 0000000000000000</p></body></html>\n"
)
_STATUS_ERRORS = {
    401: (10000, "Authentication error"),
    403: (10000, "Authentication error"),
    429: (971, "Please wait and consider throttling your request speed"),
    500: (10001, "Internal server error"),
    502: (10002, "Bad gateway"),
    503: (10003, "Service temporarily unavailable"),
    504: (10004, "Gateway timeout"),
}
_PAST_END_ERRORS = {400: (10001, "page out of range"), 404: (7002, "Not Found")}
_CLOUDFLARE_PHRASES = {  # Cloudflare's own 52x statuses, which http.HTTPStatus does not know
    520: "Web server is returning an unknown error",
    521: "Web server is down",
    522: "Connection timed out",
    523: "Origin is unreachable",
    524: "A timeout occurred",
    525: "SSL handshake failed",
    526: "Invalid SSL certificate",
    527: "Railgun error",
    528: "Unknown error",
    529: "Unknown error",
    530: "Origin DNS error",
}
_rays = itertools.count(0x7A3F00000000)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    cut: str | None = None  # 'stall' | 'truncate': send part of the body, then close
    seconds: float = 0.0


@dataclass
class _Seen:
    account_id: str | None = None
    endpoint: str | None = None
    page: int | None = None
    per_page: int | None = None
    auth: str | None = None
    entity_id: str | None = None  # a detail request's id


def _error(status: int, code: int, message: str, chain: tuple[int, str] | None = None) -> Response:
    return Response(status, error_body(code, message, chain=chain))


def _authenticate(
    sim: SimulatedCloudflare, headers: Mapping[str, str], seen: _Seen
) -> Response | str:
    authorization = headers.get("authorization")
    if authorization is not None:
        seen.auth = "bearer"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token:
            return _error(
                400,
                6003,
                "Invalid request headers",
                (6111, "Invalid format for Authorization header"),
            )
        # An unknown (deleted, rolled) token and a valid one without MCP Portals Read get the
        # same answer from Cloudflare: nothing tells them apart.
        known = hmac.compare_digest(token.encode(), sim.api_token.encode())
        if not known and not sim.token_permitted(token):
            return _error(403, 10000, "Authentication error")
        return "token:" + token
    email, key = headers.get("x-auth-email"), headers.get("x-auth-key")
    if email is None and key is None:
        return _error(403, 10000, "Authentication error")
    seen.auth = "key"
    if email != sim.api_email or not hmac.compare_digest(
        (key or "").encode(), sim.api_key.encode()
    ):
        return _error(403, 10000, "Authentication error")
    return "key:" + email


def _paging(query: Mapping[str, str], seen: _Seen) -> Response | None:
    try:
        seen.page = int(query.get("page", "1"))
        seen.per_page = int(query.get("per_page", "20"))
    except ValueError:
        seen.page = seen.per_page = None
        return _error(400, 10001, "page and per_page must be integers")
    if seen.page < 1:
        return _error(400, 10001, "page must be at least 1")
    if not 1 <= seen.per_page <= 100:
        return _error(400, 10001, "per_page must be between 1 and 100")
    return None


def _fault_response(sim: SimulatedCloudflare, fault: Fault, seen: _Seen) -> Response | None:
    assert seen.account_id
    assert seen.endpoint
    kind = fault.kind
    if kind == "status":
        phrase = _CLOUDFLARE_PHRASES.get(fault.status) or HTTPStatus(fault.status).phrase
        code, message = _STATUS_ERRORS.get(fault.status, (fault.status, phrase))
        response = _error(fault.status, code, message)
        if fault.ratelimit_headers:
            wait = math.ceil(fault.retry_after if fault.retry_after is not None else 60)
            response.headers.append(("Ratelimit", f'"default";r=0;t={wait}'))
        elif fault.retry_after is not None:
            response.headers.append(("Retry-After", str(math.ceil(fault.retry_after))))
        return response
    fixed = _fixed_answer(fault, seen.account_id)
    if fixed is not None:
        return fixed
    if kind == "delay":
        time.sleep(fault.seconds)
    elif kind == "hold":
        fault.wait_released()
    elif kind in ("drift_insert", "drift_remove", "drift_swap"):
        _drift(sim, seen.account_id, seen.endpoint, kind=kind)
    return None


def _fixed_answer(fault: Fault, account_id: str) -> Response | None:
    """The answer of a fault that replaces the response whatever the request."""
    if fault.kind == "html":
        return Response(520, _HTML, content_type="text/html; charset=UTF-8")
    if fault.kind == "success_false":
        return _error(200, 10013, "Temporary failure listing MCP resources, please retry")
    if fault.kind == "empty_body":
        return Response(200, b"")
    if fault.kind == "past_end_error":
        code, message = _PAST_END_ERRORS.get(fault.status, (10001, "page out of range"))
        return _error(fault.status, code, message)
    if fault.kind == "account_404":
        return _account_404(account_id)
    return None


def _account_404(account_id: str) -> Response:
    message = (
        f"Could not route to /accounts/{account_id}, perhaps your object identifier is invalid?"
    )
    return _error(404, 7003, message)


def _drift(sim: SimulatedCloudflare, account_id: str, endpoint: str, *, kind: str) -> None:
    portals = endpoint == "portals"
    if kind in ("drift_remove", "drift_swap"):
        ids = sim.portal_ids(account_id) if portals else sim.listed_server_ids(account_id)
        if ids:
            (sim.delete_portal if portals else sim.delete_server)(account_id, ids[0])
    if kind in ("drift_insert", "drift_swap"):
        add = sim.add_portal if portals else sim.add_server
        add(account_id, at_start=kind == "drift_insert")


def _page(sim: SimulatedCloudflare, fault: Fault | None, seen: _Seen) -> Response:
    assert seen.account_id
    assert seen.endpoint
    assert seen.page
    assert seen.per_page
    repeat = fault is not None and fault.kind == "repeat_last_page"
    cap = fault.cap if fault is not None and fault.kind == "page_cap" else None
    body = sim.page_body(
        seen.account_id, seen.endpoint, seen.page, seen.per_page, repeat_last=repeat, cap=cap
    )
    if fault is not None and fault.kind == "invalid_record":
        envelope = json.loads(body)
        if envelope["result"]:
            corrupt_record(envelope["result"][0], fault.violation)
        body = json.dumps(envelope, separators=(",", ":")).encode()
    response = Response(200, body)
    if fault is not None and fault.kind in ("stall", "truncate"):
        response.cut, response.seconds = fault.kind, fault.seconds
    return response


def _decide(
    sim: SimulatedCloudflare,
    *,
    limiter: RateLimiter,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    seen: _Seen,
) -> Response:
    match = API_PATH.match(path)
    detail = DETAIL_PATH.match(path) if match is None else None
    if (match is None and detail is None) or method != "GET":
        return _error(404, 7000, "No route for that URI")
    if match is not None:
        seen.account_id, seen.endpoint = match.groups()
    else:
        assert detail is not None
        seen.account_id, seen.endpoint, seen.entity_id = detail.groups()
    credential = _authenticate(sim, headers, seen)
    if isinstance(credential, Response):
        return credential
    quota = limiter.hit(credential, sim.rate_limit)
    response = _checked(sim, quota.allowed, query, seen)
    if not quota.allowed:
        response.headers.append(("Retry-After", str(quota.reset)))
    present = {name.lower() for name, _ in response.headers}  # a fault's own Ratelimit wins
    response.headers.extend(
        h for h in quota.headers(sim.ratelimit_headers) if h[0].lower() not in present
    )
    return response


def _checked(
    sim: SimulatedCloudflare, allowed: bool, query: Mapping[str, str], seen: _Seen
) -> Response:
    assert seen.account_id is not None
    assert seen.endpoint is not None
    if not sim.has_account(seen.account_id):
        return _account_404(seen.account_id)
    if sim.is_revoked(seen.account_id):
        return _error(403, 10000, "Authentication error")
    if not allowed:
        return _error(429, 971, "Please wait and consider throttling your request speed")
    return _detail(sim, seen) if seen.entity_id is not None else _listed(sim, query, seen)


def _listed(sim: SimulatedCloudflare, query: Mapping[str, str], seen: _Seen) -> Response:
    assert seen.account_id is not None
    assert seen.endpoint is not None
    invalid = _paging(query, seen)
    if invalid is not None:
        return invalid
    assert seen.page is not None
    assert seen.per_page is not None
    past_end = (seen.page - 1) * seen.per_page >= sim.count(seen.account_id, seen.endpoint)
    fault = sim.faults.take(seen.account_id, seen.endpoint, seen.page, past_end=past_end)
    if fault is not None:
        replaced = _fault_response(sim, fault, seen)
        if replaced is not None:
            return replaced
    return _page(sim, fault, seen)


def _detail(sim: SimulatedCloudflare, seen: _Seen) -> Response:
    assert seen.account_id is not None
    assert seen.endpoint is not None
    assert seen.entity_id is not None
    fault = sim.faults.take(
        seen.account_id, seen.endpoint, None, past_end=False, entity_id=seen.entity_id
    )
    if fault is not None:
        replaced = _fault_response(sim, fault, seen)
        if replaced is not None:
            return replaced
    body = sim.detail_body(seen.account_id, seen.endpoint, seen.entity_id)
    if body is None:
        return _error(404, 7002, "Not Found")
    response = Response(200, body)
    if fault is not None and fault.kind in ("stall", "truncate"):
        response.cut, response.seconds = fault.kind, fault.seconds
    return response


def handle_api(
    sim: SimulatedCloudflare,
    limiter: RateLimiter,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> tuple[Response, RequestRecord]:
    """``headers`` must have lower-case names."""
    seen = _Seen()
    response = _decide(
        sim, limiter=limiter, method=method, path=path, query=query, headers=headers, seen=seen
    )
    response.headers.append(("cf-ray", f"{next(_rays):016x}-SJC"))
    record = RequestRecord(
        method=method,
        path=path,
        query=dict(query),
        status=response.status,
        account_id=seen.account_id,
        endpoint=seen.endpoint,
        page=seen.page,
        per_page=seen.per_page,
        auth=seen.auth,
        entity_id=seen.entity_id,
    )
    return response, record
