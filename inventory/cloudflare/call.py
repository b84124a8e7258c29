"""The state of one GET across its attempts, and the counters a unit of work keeps."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from inventory.cloudflare.deadline import Deadline, earliest
from inventory.errors import ApiError, BadResponseError, DeadlineError, FetchError, TransportError

__all__ = ["Call", "RequestStats", "RetryableError"]


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


class RetryableError(Exception):
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
class Call:
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

    def gave_up(self, exc: RetryableError) -> FetchError:
        """The error once no attempt is left: the deadline's, or the last failure's."""
        if self.out_of_time is not None:
            return self.deadline_error(self.out_of_time, exc.cause)
        n = self.attempts
        text = (
            f"{self.what}: gave up after {n} attempt{'s' * (n != 1)} in "
            f"{self.deadlines[0].elapsed():.1f} s: {exc.cause}"
        )
        if self.gave_up_because:
            text += f" ({self.gave_up_because})"
        if exc.status is None:
            return self.error(TransportError, text)
        if exc.not_json:
            return self.error(BadResponseError, text)
        return self.error(ApiError, text, status_code=exc.status, codes=exc.codes)
