"""The HTTP client for Cloudflare's API: credentials per call, transport only.

    get_page (get_detail: one entity, its 404 told apart as "gone" or not)
    ├── request.build_request: printable headers, a path that stays under base_url
    └── stamina.retry_context, decided by ``retry.retry_wait`` (429/5xx/520-530, timeouts,
        dropped connections; Retry-After honoured; bounded by attempts and by the deadlines)
        └── _attempt: limiter.acquire_slot() → send (streamed) → limiter.observe() + settle()
            → status.read_answer → body.read_page

``get_page`` returns the body and its digest (``body.Page``); the envelope is decoded, strictly,
when the caller asks for it. Each call is bounded by ``request_deadline`` (connect, headers, the
whole body and every retry) and by the caller's deadline if it passes one (the account's),
whichever ends first; time spent waiting for rate-limit budget counts toward neither
(``inventory.cloudflare.deadline``). ``read_timeout`` stays the limit for each chunk.

Every failure leaves as an ``inventory.errors.FetchError`` whose message names the request, what
went wrong in an operator's words (``messages``), and never a credential: anything the server
says is scrubbed of the header values sent with the call before it is quoted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
import stamina
import structlog

from inventory.cloudflare.body import Page
from inventory.cloudflare.call import Call, RequestStats, RetryableError
from inventory.cloudflare.deadline import Deadline, bounded_io, cut_by_deadline, earliest, within
from inventory.cloudflare.messages import secrets_of, transport_failure
from inventory.cloudflare.ratelimit import Limiter, RateLimitBlocked, RateLimiterRegistry
from inventory.cloudflare.request import build_request, ssl_verify
from inventory.cloudflare.retry import WAIT_JITTER, GiveUp, retry_wait
from inventory.cloudflare.status import read_answer
from inventory.errors import (
    ApiError,
    DeadlineError,
    FetchError,
    TransportError,
)

__all__ = [
    "NOT_FOUND_CODES",
    "CloudflareClient",
    "Detail",
    "Page",
    "RequestStats",
]

# Cloudflare's error codes that mean "no such entity" on the MCP detail routes (GET
# …/mcp/portals/{id} and …/mcp/servers/{id}). The published spec's 404 example is 7002; an unknown
# account (7003) or route (7000) is a 404 too but says nothing about the entity, so it is not here.
# This is the one place the set is kept; docs/reliability.md explains how a deletion is confirmed.
NOT_FOUND_CODES = frozenset({7002})
_RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


log = structlog.get_logger("inventory.cloudflare.client")
# stamina's own retry line names the retried code ("<context block>") and the exception class;
# ours (in _retry_wait) names the account and the URL instead.
stamina.instrumentation.set_on_retry_hooks([])


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
            verify=ssl_verify(verify),
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
        single: bool = False,
        deadline: Deadline | None = None,
    ) -> Page:
        """GET ``path`` under ``base_url``: the page (its envelope decoded by ``Page.decoded()``,
        a list of results, or one object if ``single``), or a FetchError. ``deadline`` (the
        account's) bounds the call as well as ``request_deadline``; once it has passed, nothing
        is sent."""
        request = build_request(self._http, path, base=self._base, params=params, headers=headers)
        query = request.url.query.decode("ascii", "replace")
        own = Deadline(
            self._request_deadline,
            setting="request_deadline",
            covers="a request: connect, headers, body and retries",
            clock=self._clock,
        )
        call = Call(
            what=f"GET {path}" + (f"?{query}" if query else ""),
            url=str(request.url),
            secrets=secrets_of(headers),
            stats=stats if stats is not None else RequestStats(),
            deadlines=(own,) if deadline is None else (own, deadline),
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
        except RetryableError as exc:
            raise call.gave_up(exc) from None
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
            record: dict[str, Any] = page.decoded()["result"]
        except DeadlineError:
            raise
        except ApiError as exc:
            if exc.status_code == 404 and exc.codes and set(exc.codes) <= NOT_FOUND_CODES:
                return Detail("gone", reason=str(exc))
            return Detail("unknown", reason=str(exc))
        except FetchError as exc:
            return Detail("unknown", reason=str(exc))
        return Detail("found", record=record)

    def _begin_attempt(self, call: Call) -> None:
        call.attempts += 1
        if call.rate_limit_wait_from is not None:  # the wait Cloudflare asked for is over
            call.exclude(self._clock() - call.rate_limit_wait_from)
            call.rate_limit_wait_from = None
        if call.attempts > 1:
            call.stats.add(retries=1, rate_limit_wait=call.pending_rate_limit_wait)
        call.pending_rate_limit_wait = None

    def _attempt(self, call: Call, request: httpx.Request, limiter: Limiter) -> Page:
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
                return read_answer(call, response, self._max_response_bytes)
            except _RETRY_EXCEPTIONS as exc:
                raise self._failed_attempt(call, exc, reading=True) from None
            finally:
                response.close()

    def _failed_attempt(self, call: Call, exc: httpx.HTTPError, *, reading: bool) -> Exception:
        """A timeout or a dropped connection: retryable, unless a deadline ended it."""
        cause = call.scrub(
            transport_failure(
                exc,
                reading=reading,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
            )
        )
        first = earliest(call.deadlines)
        if first.expired:  # a timeout then is the deadline's own cut, not read_timeout's
            cut = isinstance(exc, httpx.TimeoutException) and cut_by_deadline()
            return call.deadline_error(first, "" if cut else cause)
        return RetryableError(cause)

    def _retry_wait(self, call: Call, exc: Exception) -> bool | float:
        """stamina's predicate: False to give up, else the seconds to wait before the next try."""
        if not isinstance(exc, RetryableError):
            return False
        first = earliest(call.deadlines)
        decision = retry_wait(
            attempts=call.attempts,
            max_retries=self._max_retries,
            remaining=first.remaining(),
            hint=exc.wait_hint,
            jitter=random.uniform(0, WAIT_JITTER),
            deadline=f"{first.setting} ({first.seconds:g} s)",
        )
        if isinstance(decision, GiveUp):
            if decision.out_of_time:
                call.out_of_time = first
            call.gave_up_because = decision.because
            return False
        wait = decision
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
