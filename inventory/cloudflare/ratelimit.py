"""Client-side rate limiting per Cloudflare credential, and reading the budget Cloudflare reports.

Cloudflare allows 1,200 requests per five minutes per user or token and blocks a client that goes
over for five minutes, so every request first takes a slot from the credential's ``RateLimiter``.
It keeps a sliding log (the times of the requests admitted in the last ``period`` seconds): bursts
go straight through, and no stretch of ``period`` seconds ever holds more than ``requests``.

``observe(headers)`` lets the server lower that budget: when it reports fewer requests left than we
think we have (other tools may share the token), the difference is booked as if we had spent it,
until the server's reset time.

Two gaps between our log and the server's count are closed as well:

- A new limiter knows nothing of what this token spent in the last five minutes (a previous
  ``inventory sync`` run, another tool): until the first response has been observed, only one
  request is let through (the *probe*); the others wait for what the server says is left.
  What the server's reset time frees is only its oldest request, so when what was booked
  expires, the limiter probes again instead of spending all of it at once.
- The server counts a request when it arrives, later than we admitted it; a slot's time is
  moved to when its response came back (``settle``), so we never reuse it before the server does.

Several replicas on one PostgreSQL database share one budget per credential: ``SharedRateLimiter``
(``inventory.cloudflare.shared_budget``) takes its slots from a ``BudgetStore`` (implemented in
``inventory.db.budget``) in small batches,
one database round trip per batch, never one per request; see its docstring.

Why not ``pyrate-limiter`` or ``limits``: neither lets a test inject the sleep (pyrate-limiter
calls ``time.sleep`` itself and starts a leak thread per bucket; ``limits`` reads ``time.time``
directly and has no blocking acquire), and neither takes the server's "remaining" as input.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from inventory.cloudflare.budget_headers import read_budget
from inventory.errors import RateLimitBlocked

__all__ = [
    "PROBE_WAIT",
    "Limiter",
    "RateLimitBlocked",
    "RateLimiter",
    "RateLimiterRegistry",
    "current_pace",
    "current_rank",
    "ranked",
]

PROBE_WAIT = 10.0  # seconds others wait for the probe's response at most

_RANK: ContextVar[float] = ContextVar("inventory_request_rank", default=math.inf)
_PACE: ContextVar[float] = ContextVar("inventory_request_pace", default=math.inf)


@contextmanager
def ranked(rank: float, *, paced_from: float = math.inf) -> Iterator[None]:
    """Requests made inside (this thread) wait for a ``SharedRateLimiter``'s slots in ``rank``
    order: the lowest first, equal ranks in the order they came; unranked ones (``inf``) last.

    The daemon ranks a sync's requests by its account's last success (the oldest first), so a
    started sync's next request is not overtaken by the requests of syncs started after it.
    ``paced_from`` (a ``time.monotonic()`` instant): from then on the caller is behind (the
    budget did not cover a cycle), so the shared budget is better spent at an even pace than
    in bursts (``SharedRateLimiter``); the in-process ``RateLimiter`` ignores it.
    """
    token, pace = _RANK.set(rank), _PACE.set(paced_from)
    try:
        yield
    finally:
        _PACE.reset(pace)
        _RANK.reset(token)


def current_rank() -> float:
    """The rank ``ranked`` set for this thread's requests (``inf`` if none)."""
    return _RANK.get()


def current_pace() -> float:
    """From when ``ranked`` said this thread's requests are behind (``paced_from``)."""
    return _PACE.get()


class RateLimiter:
    """At most ``requests`` in any ``period`` seconds; thread-safe; ``acquire`` blocks."""

    def __init__(
        self,
        *,
        requests: int = 1200,
        period: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        probe: bool = False,
    ) -> None:
        """``probe``: let one request out, and the rest only once its answer has been observed
        (``settle``), so that a new process learns what the token has left before it bursts."""
        if requests < 1 or period <= 0:
            raise ValueError(
                f"a rate limit needs requests >= 1 and period > 0, not {requests}/{period}"
            )
        self._limit = requests
        self._window = float(period)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: list[float] = []  # admission times, sorted; booked-but-unsent ones included
        # Until when the server said it has no requests left for us (its block, not our pacing).
        self._blocked_until = 0.0
        # Until a response has been observed, one request (the probe) goes out at a time.
        self._calibrated = threading.Event()
        if not probe:
            self._calibrated.set()
        self._probe = probe
        self._probing = False
        # When what observe() booked expires: the server's reset covers its oldest request only,
        # so a probing limiter asks again (one request) rather than spend the whole excess.
        self._recheck_at: float | None = None

    def __repr__(self) -> str:
        return f"RateLimiter(requests={self._limit}, period={self._window:g})"

    @property
    def requests(self) -> int:
        return self._limit

    @property
    def period(self) -> float:
        return self._window

    def available(self) -> int:
        """How many requests would go through right now without waiting."""
        with self._lock:
            self._expire(self._clock())
            return max(self._limit - len(self._log), 0)

    def acquire(self, *, max_block: float | None = None) -> float:
        """Take one slot, waiting until there is one; returns the seconds waited.

        Our own pacing is always waited out. A block the server announced is waited out only
        up to ``max_block`` seconds; a longer one raises RateLimitBlocked at once, so a caller
        with a time budget fails clearly instead of sleeping through Cloudflare's 5 minutes.
        """
        return self.acquire_slot(max_block=max_block)[0]

    def acquire_slot(self, *, max_block: float | None = None) -> tuple[float, float]:
        """``acquire``, also returning the slot's time, for ``settle`` once the response is in."""
        start, slept = self._clock(), False
        while True:
            with self._lock:
                now = self._clock()
                blocked = self._blocked_until - now
                if max_block is not None and blocked > max_block:
                    raise RateLimitBlocked(blocked)
                self._expire(now)
                if self._recheck_at is not None and now >= self._recheck_at:
                    self._recheck_at, self._probing = None, False
                    self._calibrated.clear()
                probe_out = self._probing and not self._calibrated.is_set()
                if not probe_out and len(self._log) < self._limit:
                    self._probing = True
                    insort(self._log, now)
                    return (now - start if slept else 0.0), now
                if not probe_out:
                    # The slot frees when the entry `limit` places from the newest leaves.
                    delay = self._log[len(self._log) - self._limit] + self._window - now
            if probe_out:
                # Bounded: a probe that never gets an answer must not hold the others forever.
                self._calibrated.wait(PROBE_WAIT)
                self._calibrated.set()
            else:
                self._sleep(max(delay, 0.001))  # never spin on float rounding
            slept = True

    def settle(self, slot: float) -> None:
        """The request admitted at ``slot`` has its answer: count it from now, as the server may.

        Also ends the probe phase: whatever the response said has been observed by then.
        """
        with self._lock:
            now = self._clock()
            at = bisect_left(self._log, slot)
            if at < len(self._log) and self._log[at] == slot and now > slot:
                del self._log[at]
                insort(self._log, now)
        self._calibrated.set()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Lower our budget to what the server reports is left (never raise it)."""
        budget = read_budget(headers)
        with self._lock:
            now = self._clock()
            self._expire(now)
            if budget.limit is not None and budget.window == self._window:
                self._limit = max(min(self._limit, budget.limit), 1)
            if budget.remaining is None:
                return
            if budget.remaining == 0 and budget.reset is not None:
                self._blocked_until = max(self._blocked_until, now + budget.reset)
            excess = (self._limit - len(self._log)) - budget.remaining
            if excess <= 0:
                return
            # Book the difference so that it expires when the server's window resets.
            reset = self._window if budget.reset is None else min(budget.reset, self._window)
            stamp = min(now + reset - self._window, now)
            for _ in range(excess):
                insort(self._log, stamp)
            if self._probe:
                self._recheck_at = stamp + self._window

    def close(self) -> None:
        """Nothing to release: the log lives in this process only."""

    def _expire(self, now: float) -> None:
        del self._log[: bisect_right(self._log, now - self._window)]


class Limiter(Protocol):
    """What the client needs: ``RateLimiter`` (one process) or ``SharedRateLimiter`` (replicas)."""

    @property
    def requests(self) -> int: ...

    @property
    def period(self) -> float: ...

    def acquire_slot(self, *, max_block: float | None = None) -> tuple[float, float]: ...

    def settle(self, slot: float) -> None: ...

    def observe(self, headers: Mapping[str, str]) -> None: ...

    def close(self) -> None: ...


class RateLimiterRegistry:
    """One limiter per credential key, created on first use and shared by every thread.

    Limiters come from ``factory`` when given, else ``RateLimiter(requests=…, period=…)``.
    """

    def __init__(
        self,
        factory: Callable[[str], Limiter] | None = None,
        *,
        requests: int = 1200,
        period: float = 300.0,
    ) -> None:
        if factory is None:
            RateLimiter(requests=requests, period=period)  # refuse a bad budget now, not on use
        self._factory = factory or (
            lambda _key: RateLimiter(requests=requests, period=period, probe=True)
        )
        self._limiters: dict[str, Limiter] = {}
        self._lock = threading.Lock()

    def get(self, credential_key: str) -> Limiter:
        with self._lock:
            limiter = self._limiters.get(credential_key)
            if limiter is None:
                limiter = self._limiters[credential_key] = self._factory(credential_key)
            return limiter

    def close(self) -> None:
        """Close every limiter (a shared one gives back the slots it did not send)."""
        with self._lock:
            limiters = list(self._limiters.values())
        for limiter in limiters:
            limiter.close()
