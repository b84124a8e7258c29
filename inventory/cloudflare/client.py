"""The HTTP client for Cloudflare's API: credentials per call, retries in one place, strict bodies.

    get_page (get_detail: one entity, its 404 told apart as "gone" or not)
    └── stamina.retry_context, decided by ``_retry_wait`` (429/5xx/520-530, timeouts, dropped
        connections; Retry-After honoured; bounded by attempts and by the deadlines)
        └── _attempt: limiter.acquire_slot() → send (streamed) → limiter.observe() + settle()
            → _read_envelope

Each call is bounded by ``request_deadline`` (connect, headers, the whole body and every retry)
and by the caller's deadline if it passes one (the account's), whichever ends first; time spent
waiting for rate-limit budget counts toward neither (``inventory.cloudflare.deadline``).
``read_timeout``
stays the limit for each chunk.

Every failure leaves as an ``inventory.errors.FetchError`` whose message names the request, what
went wrong in an operator's words, and never a credential: anything the server says is scrubbed of
the header values sent with the call before it is quoted.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
import stamina
import structlog

from inventory.cloudflare.deadline import Deadline, bounded_io, cut_by_deadline, earliest, within
from inventory.cloudflare.envelope import cloudflare_errors, decode_envelope, decode_known, digest
from inventory.cloudflare.ratelimit import (
    Limiter,
    RateLimitBlocked,
    RateLimiterRegistry,
    read_budget,
    retry_after,
)
from inventory.errors import (
    ApiError,
    AuthError,
    BadResponseError,
    DeadlineError,
    FetchError,
    TransportError,
)

__all__ = [
    "NOT_FOUND_CODES",
    "RETRY_STATUSES",
    "CloudflareClient",
    "Detail",
    "Page",
    "RequestStats",
]

# 520-530 are Cloudflare's own edge errors: the origin was unreachable or misbehaved.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, *range(520, 531)})
# Cloudflare's error codes that mean "no such entity" on the MCP detail routes (GET
# …/mcp/portals/{id} and …/mcp/servers/{id}). The published spec's 404 example is 7002; an unknown
# account (7003) or route (7000) is a 404 too but says nothing about the entity, so it is not here.
# This is the one place the set is kept; docs/reliability.md explains how a deletion is confirmed.
NOT_FOUND_CODES = frozenset({7002})
_RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_SECRET_HEADERS = frozenset({"authorization", "x-auth-key", "x-auth-user-service-key", "cookie"})
_ERROR_BODY_LIMIT = 64 * 1024  # enough for any error envelope; the rest of an error page is noise
_WAIT_INITIAL, _WAIT_MAX, _WAIT_JITTER = 0.5, 30.0, 1.0
_EDGE_REASONS = {  # Cloudflare's names for its edge errors, which httpx does not know
    520: "Unknown Error",
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
    525: "SSL Handshake Failed",
    526: "Invalid SSL Certificate",
    527: "Railgun Error",
    530: "Origin Error",
}
_HINTS = {
    400: "Cloudflare refused the request as malformed",
    401: "check the API token or key and its 'MCP Portals Read' permission on this account",
    403: "check the API token or key and its 'MCP Portals Read' permission on this account",
    404: "check the account id, and that MCP portals are available on this account",
}


@dataclass
class RequestStats:
    """Counters for one unit of work; safe to share between threads."""

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0  # waits Cloudflare asked for (429)
    rate_limit_wait_seconds: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0  # waits our own limiter imposed before sending
    throttled_seconds: float = 0.0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def add(
        self,
        *,
        requests: int = 0,
        retries: int = 0,
        rate_limit_wait: float | None = None,
        throttled: float | None = None,
        status: int | None = None,
    ) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            if rate_limit_wait is not None:
                self.rate_limit_waits += 1
                self.rate_limit_wait_seconds += rate_limit_wait
            if throttled is not None:
                self.throttled += 1
                self.throttled_seconds += throttled
            if status is not None:
                self.by_status[status] = self.by_status.get(status, 0) + 1


log = structlog.get_logger("inventory.cloudflare.client")
# stamina's own retry line names the retried code ("<context block>") and the exception class;
# ours (in _retry_wait) names the account and the URL instead.
stamina.instrumentation.set_on_retry_hooks([])


class _RetryableError(Exception):
    """One failed attempt worth another; ``cause`` is already in operator words and scrubbed."""

    def __init__(
        self,
        cause: str,
        *,
        status: int | None = None,
        wait_hint: float | None = None,
        not_json: bool = False,
        codes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(cause)
        self.cause, self.status, self.wait_hint = cause, status, wait_hint
        self.not_json, self.codes = not_json, codes


@dataclass
class _Call:
    """The state of one ``get_page`` call across its attempts."""

    what: str  # "GET /accounts/…/mcp/portals?page=1"
    url: str
    secrets: tuple[str, ...]
    stats: RequestStats
    deadlines: tuple[Deadline, ...]  # the request's own first, then the caller's
    attempts: int = 0
    pending_rate_limit_wait: float | None = None
    rate_limit_wait_from: float | None = None  # when a wait Cloudflare asked for began
    gave_up_because: str = ""
    out_of_time: Deadline | None = None  # the deadline that made the call give up
    known: Collection[str] = ()  # digests of bodies the caller need not have decoded
    single: bool = False  # a detail route: ``result`` is one object, not a list

    def remaining(self) -> float:
        return min(d.remaining() for d in self.deadlines)

    def exclude(self, seconds: float) -> None:
        """Waits for rate-limit budget are charged to no deadline."""
        for deadline in self.deadlines:
            deadline.exclude(seconds)

    def check_deadline(self) -> None:
        """Raise DeadlineError once any deadline has passed (between chunks, after headers)."""
        first = earliest(self.deadlines)
        if first.expired:
            raise self.deadline_error(first)

    def deadline_error(self, deadline: Deadline, cause: str = "") -> DeadlineError:
        n = self.attempts
        if n:
            text = f"GET {self.url}: stopped by {deadline.describe()} after {n} attempt" + (
                "s" * (n != 1) + (f"; last error: {cause}" if cause else "")
            )
        else:
            text = f"GET {self.url}: not sent: {deadline.describe()} is spent"
        advice = "raise it if Cloudflare is really this slow, or look for what slows the API"
        return DeadlineError(
            self.scrub(f"{text}; {advice}"), setting=deadline.setting, url=self.url
        )

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def error(self, cls: type[FetchError], text: str, **kwargs: Any) -> FetchError:
        return cls(self.scrub(text), url=self.url, **kwargs)


@dataclass(slots=True)
class Page:
    """A successful response: its body's digest, and its envelope unless the digest was known."""

    digest: str
    body: bytes
    envelope: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # the response's

    def decoded(self) -> dict[str, Any]:
        if self.envelope is None:
            self.envelope = decode_known(self.body)
        return self.envelope


@dataclass(frozen=True, slots=True)
class Detail:
    """What a detail GET says of one entity: ``found`` (with its record), ``gone``, or ``unknown``.

    ``gone`` only for a 404 whose JSON envelope carries nothing but codes in NOT_FOUND_CODES;
    anything else that is not a 200 with a record is ``unknown``, and ``reason`` says why.
    """

    state: Literal["found", "gone", "unknown"]
    record: dict[str, Any] | None = None
    reason: str = ""


class CloudflareClient:
    """Thread-safe; one per process. Credentials come with each call and go only to ``base_url``."""

    def __init__(
        self,
        *,
        base_url: str,
        connect_timeout: float = 10,
        read_timeout: float = 30,
        max_retries: int = 5,
        request_deadline: float = 120,
        retry_max_time: float | None = None,  # deprecated: the old name of request_deadline
        max_response_bytes: int = 50_000_000,
        verify: bool | str = True,
        limiter_factory: Callable[[str], Limiter] | None = None,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "inventory/0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry_max_time is not None:
            request_deadline = retry_max_time
        if max_retries < 0 or request_deadline <= 0 or max_response_bytes < 1:
            raise ValueError(
                "max_retries must be >= 0, request_deadline > 0, max_response_bytes >= 1"
            )
        self._max_retries = max_retries
        self._request_deadline = request_deadline
        self._max_response_bytes = max_response_bytes
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._limiters = RateLimiterRegistry(limiter_factory)
        self._http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,  # a redirect must not carry the credential anywhere else
            verify=_ssl_verify(verify),
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )
        bounded_io(self._http)  # each socket operation waits no longer than the deadline left
        self._base = str(self._http.base_url)

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={self._base!r})"

    def __enter__(self) -> CloudflareClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._limiters.close()
        self._http.close()

    def get_page(
        self,
        path: str,
        *,
        params: dict[str, str | int],
        headers: dict[str, str],
        credential_key: str,
        stats: RequestStats | None = None,
        known: Collection[str] = (),
        single: bool = False,
        deadline: Deadline | None = None,
    ) -> Page:
        """GET ``path`` under ``base_url``; the page with Cloudflare's success envelope, or a
        FetchError. A body whose digest is in ``known`` is returned undecoded
        (``Page.decoded()`` decodes it on demand). ``deadline`` (the account's) bounds the call
        as well as ``request_deadline``; once it has passed, nothing is sent."""
        for name, value in headers.items():
            # Checked before the request is built: httpx would raise UnicodeEncodeError with
            # the value in its args. Settings reject such credentials; this is the backstop.
            if not (value.isascii() and value.isprintable()):
                raise AuthError(
                    f"the {name} header for GET {path} holds a character that is not printable "
                    "ASCII; not sent"
                )
        request = self._build(path, params, headers)
        query = request.url.query.decode("ascii", "replace")
        own = Deadline(
            self._request_deadline,
            setting="request_deadline",
            covers="a request: connect, headers, body and retries",
            clock=self._clock,
        )
        call = _Call(
            what=f"GET {path}" + (f"?{query}" if query else ""),
            url=str(request.url),
            secrets=_secrets(headers),
            stats=stats if stats is not None else RequestStats(),
            deadlines=(own,) if deadline is None else (own, deadline),
            known=known,
            single=single,
        )
        if deadline is not None and deadline.expired:  # between two requests of the account
            raise call.deadline_error(deadline, "not sent")
        limiter = self._limiters.get(credential_key)
        try:
            for attempt in stamina.retry_context(
                on=lambda exc: self._retry_wait(call, exc),
                attempts=self._max_retries + 1,
                timeout=None,  # the time budget is kept by _retry_wait, which also caps each wait
            ):
                with attempt:
                    self._begin_attempt(call)
                    return self._attempt(call, request, limiter)
        except _RetryableError as exc:
            raise self._gave_up(call, exc) from None
        raise AssertionError("unreachable: the retry loop returns or raises")  # pragma: no cover

    def get_detail(
        self,
        path: str,
        *,
        headers: dict[str, str],
        credential_key: str,
        stats: RequestStats | None = None,
        deadline: Deadline | None = None,
    ) -> Detail:
        """GET one entity (``…/mcp/portals/{id}``): found, gone, or unknown. Raises no FetchError
        but DeadlineError (``deadline`` or request_deadline spent: the sync stops): whatever
        else went wrong is the ``unknown`` reason, retries spent as for a page."""
        try:
            page = self.get_page(
                path,
                params={},
                headers=headers,
                credential_key=credential_key,
                stats=stats,
                single=True,
                deadline=deadline,
            )
        except DeadlineError:
            raise
        except ApiError as exc:
            if exc.status_code == 404 and exc.codes and set(exc.codes) <= NOT_FOUND_CODES:
                return Detail("gone", reason=str(exc))
            return Detail("unknown", reason=str(exc))
        except FetchError as exc:
            return Detail("unknown", reason=str(exc))
        record: dict[str, Any] = page.decoded()["result"]
        return Detail("found", record=record)

    def _build(
        self, path: str, params: dict[str, str | int], headers: dict[str, str]
    ) -> httpx.Request:
        segments = path.split("/")
        if not path.startswith("/") or path.startswith("//") or "?" in path or "#" in path:
            raise ValueError(f"path must be relative to base_url, like /accounts/…, not {path!r}")
        if "." in segments or ".." in segments or "\\" in path:
            raise ValueError(f"path must not climb out of base_url: {path!r}")
        request = self._http.build_request("GET", path, params=params, headers=headers)
        if not str(request.url).startswith(self._base):  # belt and braces: the token stays home
            raise ValueError(f"path {path!r} resolves outside base_url")
        return request

    def _begin_attempt(self, call: _Call) -> None:
        call.attempts += 1
        if call.rate_limit_wait_from is not None:  # the wait Cloudflare asked for is over
            call.exclude(self._clock() - call.rate_limit_wait_from)
            call.rate_limit_wait_from = None
        if call.attempts > 1:
            call.stats.add(retries=1, rate_limit_wait=call.pending_rate_limit_wait)
        call.pending_rate_limit_wait = None

    def _attempt(self, call: _Call, request: httpx.Request, limiter: Limiter) -> Page:
        first = earliest(call.deadlines)
        budget_left = max(first.remaining(), 0.0)
        try:
            waited, slot = limiter.acquire_slot(max_block=budget_left)
        except RateLimitBlocked as exc:
            raise call.error(
                ApiError,
                f"{call.what}: not sent: Cloudflare's rate limit blocks this credential for "
                f"another {exc.seconds:.0f} s, more than the {budget_left:.0f} s left of "
                f"{first.setting} ({first.seconds:g} s); the next sync will try again",
                status_code=429,
            ) from None
        if waited > 0:
            call.exclude(waited)
            call.stats.add(throttled=waited)
        call.stats.add(requests=1)
        with within(call.remaining):
            try:
                response = self._http.send(request, stream=True)
            except _RETRY_EXCEPTIONS as exc:
                limiter.settle(slot)
                raise self._failed_attempt(call, exc, reading=False) from None
            except httpx.HTTPError as exc:
                limiter.settle(slot)
                raise call.error(
                    TransportError, f"{call.what}: {type(exc).__name__}: {exc}"
                ) from None
            limiter.observe(response.headers)
            limiter.settle(slot)  # counted from when the answer came, as the server may count it
            try:
                call.stats.add(status=response.status_code)
                call.check_deadline()  # the headers may have trickled in
                return self._read_envelope(call, response)
            except _RETRY_EXCEPTIONS as exc:
                raise self._failed_attempt(call, exc, reading=True) from None
            finally:
                response.close()

    def _failed_attempt(self, call: _Call, exc: httpx.HTTPError, *, reading: bool) -> Exception:
        """A timeout or a dropped connection: retryable, unless a deadline ended it."""
        cause = call.scrub(self._describe(exc, reading=reading))
        first = earliest(call.deadlines)
        if first.expired:  # a timeout then is the deadline's own cut, not read_timeout's
            cut = isinstance(exc, httpx.TimeoutException) and cut_by_deadline()
            return call.deadline_error(first, "" if cut else cause)
        return _RetryableError(cause)

    def _read_envelope(self, call: _Call, response: httpx.Response) -> Page:
        status = response.status_code
        if status in RETRY_STATUSES:
            detail, codes, not_json = _error_detail(response, call)
            hint = retry_after(response.headers)
            if status == 429 and hint is None:
                hint = read_budget(response.headers).reset
            raise _RetryableError(
                call.scrub(f"{_status(status)}{detail}"),
                status=status,
                wait_hint=hint,
                not_json=not_json,
                codes=codes,
            )
        if 300 <= status < 400:
            where = response.headers.get("location", "nowhere")
            raise call.error(
                ApiError,
                f"{_status(status)} from {call.what}: redirects are not followed "
                f"(to {where}); check base_url",
                status_code=status,
            )
        if not 200 <= status < 300:
            detail, codes, _ = _error_detail(response, call)
            advice = _HINTS.get(status)
            cls = AuthError if status in (401, 403) else ApiError
            text = f"{_status(status)} from {call.what}{detail}" + (f"; {advice}" if advice else "")
            raise call.error(cls, text, status_code=status, codes=codes)
        return _parse_envelope(call, response, self._max_response_bytes)

    def _retry_wait(self, call: _Call, exc: Exception) -> bool | float:
        """stamina's predicate: False to give up, else the seconds to wait before the next try."""
        if not isinstance(exc, _RetryableError) or call.attempts > self._max_retries:
            return False
        first = earliest(call.deadlines)
        remaining = first.remaining()
        if remaining <= 0:
            call.out_of_time = first
            return False
        if exc.wait_hint is not None:
            if exc.wait_hint > remaining:
                call.gave_up_because = (
                    f"Cloudflare asked to wait {exc.wait_hint:.0f} s, more than the "
                    f"{remaining:.0f} s left of {first.setting} ({first.seconds:g} s)"
                )
                return False
            wait = exc.wait_hint
        else:
            backoff = _WAIT_INITIAL * 2 ** (call.attempts - 1) + random.uniform(0, _WAIT_JITTER)
            wait = min(backoff, _WAIT_MAX)
            if wait >= remaining:  # the next attempt would start with no time left
                call.out_of_time = first
                return False
        if exc.status == 429:
            call.pending_rate_limit_wait = wait
            call.rate_limit_wait_from = self._clock()
        # The sync binds account_id and account to the context: this line names them too.
        log.warning(
            "retry",
            url=call.scrub(call.url),
            attempt=call.attempts,
            wait_s=round(wait, 2),
            cause=exc.cause,
        )
        return wait

    def _gave_up(self, call: _Call, exc: _RetryableError) -> FetchError:
        if call.out_of_time is not None:
            return call.deadline_error(call.out_of_time, exc.cause)
        n = call.attempts
        text = (
            f"{call.what}: gave up after {n} attempt{'s' * (n != 1)} in "
            f"{self._elapsed(call):.1f} s: {exc.cause}"
        )
        if call.gave_up_because:
            text += f" ({call.gave_up_because})"
        if exc.status is None:
            return call.error(TransportError, text)
        if exc.not_json:
            return call.error(BadResponseError, text)
        return call.error(ApiError, text, status_code=exc.status, codes=exc.codes)

    def _elapsed(self, call: _Call) -> float:
        return call.deadlines[0].elapsed()

    def _describe(self, exc: httpx.HTTPError, *, reading: bool) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"could not connect within {self._connect_timeout:g} s"
        if isinstance(exc, httpx.TimeoutException):
            return f"no data for {self._read_timeout:g} s (read timeout)"
        if isinstance(exc, httpx.ConnectError):
            return f"could not connect ({exc})"
        if reading:
            return f"the connection broke mid-response ({type(exc).__name__}: {exc})"
        return f"the connection broke ({type(exc).__name__}: {exc})"


def _status(status: int) -> str:
    reason = httpx.codes.get_reason_phrase(status) or _EDGE_REASONS.get(status, "")
    return f"{status} {reason}".rstrip()


def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    if isinstance(verify, bool):
        return verify
    if Path(verify).is_dir():
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _secrets(headers: dict[str, str]) -> tuple[str, ...]:
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() == "bearer":
                found.add(token.strip())
    # Longest first, so a token inside "Bearer <token>" is not left half-scrubbed.
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def _content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", maxsplit=1)[0].strip().lower()


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _read_prefix(response: httpx.Response, limit: int, call: _Call) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decoded) body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        call.check_deadline()  # a body trickling in must not outlast the deadlines
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    lower = text.lower()
    if (start := lower.find("<title>")) != -1:
        end = lower.find("</title>", start)
        text = text[start + 7 : end if end != -1 else None]
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return repr(text[:120] + ("…" if len(text) > 120 else ""))


def _error_detail(response: httpx.Response, call: _Call) -> tuple[str, tuple[int, ...], bool]:
    """``": what the body says"``, Cloudflare's error codes, and whether the body was not JSON."""
    body, _ = _read_prefix(response, _ERROR_BODY_LIMIT, call)
    content_type = _content_type(response)
    if not _is_json(content_type):
        got = content_type or "no Content-Type"
        what = f": expected JSON from Cloudflare but got {got}"
        return (what + (f": {_snippet(body)}" if body.strip() else ", empty body")), (), True
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return f": unreadable JSON error body {_snippet(body)}", (), False
    described, codes = cloudflare_errors(document)
    return (f": {described}" if described else ""), codes, False


def _parse_envelope(call: _Call, response: httpx.Response, limit: int) -> Page:
    status = f"HTTP {response.status_code}"
    content_type = _content_type(response)
    if not _is_json(content_type):
        body, _ = _read_prefix(response, 4096, call)
        got = content_type or "no Content-Type"
        raise call.error(
            BadResponseError,
            f"expected JSON from Cloudflare but got {got} ({status}) from {call.what}: "
            + (_snippet(body) if body.strip() else "empty body"),
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise call.error(
            BadResponseError,
            f"the response to {call.what} declares {int(declared):,} bytes, over the "
            f"{limit:,}-byte limit (max_response_bytes); not read",
        )
    body, more = _read_prefix(response, limit, call)
    if more:
        raise call.error(
            BadResponseError,
            f"the response to {call.what} is larger than the {limit:,}-byte limit "
            "(max_response_bytes); stopped reading",
        )
    page = Page(digest=digest(body), body=body, headers=response.headers)
    if page.digest in call.known:
        return page  # the caller holds what these very bytes meant last time: not decoded
    page.envelope = decode_envelope(
        body, call=call, status_code=response.status_code, single=call.single
    )
    return page
