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
takes its slots from a ``BudgetStore`` (implemented in ``inventory.db.budget``) in small batches,
one database round trip per batch, never one per request; see its docstring.

Why not ``pyrate-limiter`` or ``limits``: neither lets a test inject the sleep (pyrate-limiter
calls ``time.sleep`` itself and starts a leak thread per bucket; ``limits`` reads ``time.time``
directly and has no blocking acquire), and neither takes the server's "remaining" as input.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = [
    "BudgetAsk",
    "BudgetGrant",
    "BudgetStore",
    "Limiter",
    "RateLimitBlocked",
    "RateLimiter",
    "RateLimiterRegistry",
    "ServerBudget",
    "SharedRateLimiter",
    "read_budget",
    "retry_after",
]

_NUMBER = re.compile(r"\d{1,12}(?:\.\d{1,6})?")
# x-ratelimit-reset is seconds-to-go for some servers and an epoch timestamp for others.
_EPOCH_THRESHOLD = 1_000_000_000
_MANY = 1 << 62
_PROBE_WAIT = 10.0  # seconds others wait for the probe's response at most


class RateLimitBlocked(Exception):  # noqa: N818 - a condition, reported by the client
    """The server has blocked this credential for longer than the caller is willing to wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the server blocks this credential for another {seconds:.0f} s")


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
                self._calibrated.wait(_PROBE_WAIT)
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


@dataclass(frozen=True)
class BudgetAsk:
    """One batch asked of the shared budget, with what the server said since the last batch."""

    slots: int  # how many slots are wanted (fewer may be granted)
    limit: int  # the credential's budget per window
    span: float  # seconds a granted slot stays counted: the window, plus the time to send it
    server_used: int = 0  # the server's count of the window's requests, if it said so ...
    server_used_age: float = 0.0  # ... this many seconds ago
    blocked_for: float = 0.0  # seconds the server said it blocks the credential
    give_back: int = 0  # slots of an earlier grant that were never used ...
    window: object = None  # ... in this window (``BudgetGrant.window``)


@dataclass(frozen=True)
class BudgetGrant:
    slots: int  # granted now (0: none left)
    used: int  # slots of the window in use, all replicas together
    wait: float  # with no slot granted: seconds until the window frees its slots
    window: object = None  # the store's name for the window the slots belong to


class BudgetStore(Protocol):
    """Where replicas keep each credential's window; ``inventory.db.budget`` implements it."""

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant: ...


class SharedRateLimiter:
    """A credential's budget kept in a ``BudgetStore``, shared by every process using it.

    Slots are reserved up to ``batch`` at a time (two per waiting thread) and must be sent
    within ``hold`` seconds of the store's answer; what is left then is given back to the store
    (a round trip of its own only when nothing else is being asked for). A batch stays counted
    for ``period + 3 * hold`` after it was reserved (the window, plus the time to send its
    requests and for them to reach the server: a round trip and the way there are assumed to
    take less than ``2 * hold``), so a process that dies holds nothing for longer than that.
    The store's answer says how long to wait when the window is spent; a waiting limiter asks
    again after one ``hold`` at most, since slots that other processes leave unsent come back
    within that time.

    As with ``RateLimiter``: the first request goes alone (the *probe*), the others wait for
    its answer; the server's ``Ratelimit`` headers correct the shared count upwards (another
    tool spending the same token) and a block it announces is honoured, both carried to the
    store with the next batch, so they cost no round trip of their own.
    """

    def __init__(
        self,
        store: BudgetStore,
        credential_key: str,
        *,
        requests: int = 1200,
        period: float = 300.0,
        batch: int = 10,
        hold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or period <= 0 or batch < 1:
            raise ValueError(
                f"a rate limit needs requests >= 1, period > 0 and batch >= 1, "
                f"not {requests}/{period}/{batch}"
            )
        self._store = store
        self._key = credential_key
        self._limit = requests
        self._window = float(period)
        self._batch = min(batch, requests)
        self._hold = min(1.0, self._window / 50) if hold is None else hold
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._slots = 0  # granted, not yet taken
        self._lease_end = 0.0  # granted slots must be sent before this
        self._window_id: object = None  # the store's window of the granted slots
        self._unused = 0  # slots a lapsed lease left, given back with the next batch
        self._timer: threading.Timer | None = None  # gives a lapsed lease's slots back
        self._closed = False
        self._fetching = False  # one thread at a time asks the store
        self._waiting = 0
        self._calibrated = False  # the probe's answer has been observed
        self._probe_since: float | None = None
        self._blocked_until = 0.0  # the server's budget is spent (or blocked) until then
        self._server_block_until = 0.0  # the server blocks the credential (429) until then
        self._server_used = 0
        self._server_used_at = 0.0

    def __repr__(self) -> str:
        return f"SharedRateLimiter(requests={self._limit}, period={self._window:g})"

    @property
    def requests(self) -> int:
        return self._limit

    @property
    def period(self) -> float:
        return self._window

    def acquire(self, *, max_block: float | None = None) -> float:
        return self.acquire_slot(max_block=max_block)[0]

    def acquire_slot(self, *, max_block: float | None = None) -> tuple[float, float]:
        start, slept = self._clock(), False
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    now = self._clock()
                    blocked = self._blocked_until - now
                    if max_block is not None and blocked > max_block:
                        raise RateLimitBlocked(blocked)
                    if self._slots > 0 and now < self._lease_end:
                        self._slots -= 1
                        if not self._calibrated and self._probe_since is None:
                            self._probe_since = now  # this request is the probe
                        return (now - start if slept else 0.0), now
                    self._unused += self._slots  # a lapsed lease's slots are not sent
                    self._slots = 0
                    if self._fetching or self._probe_out(now):
                        self._cond.wait(0.05 if self._fetching else _PROBE_WAIT)
                        slept = True
                        continue
                    slept = self._reserve(now) or slept
            finally:
                self._waiting -= 1

    def _probe_out(self, now: float) -> bool:
        if self._calibrated or self._probe_since is None:
            return False
        if now - self._probe_since > _PROBE_WAIT:
            self._calibrated = True  # a probe never answered must not hold the others forever
            return False
        return True

    def _reserve(self, now: float) -> bool:
        """Ask the store for a batch (lock held on entry and exit); True if it had to wait."""
        probe = not self._calibrated
        ask = BudgetAsk(
            slots=1 if probe else min(self._batch, 2 * self._waiting),
            limit=self._limit,
            span=self._window + 3 * self._hold,
            server_used=self._server_used,
            server_used_age=max(now - self._server_used_at, 0.0),
            blocked_for=max(self._server_block_until - now, 0.0),
            give_back=self._unused,
            window=self._window_id,
        )
        self._server_used = self._unused = 0
        self._fetching = True
        self._cond.release()
        try:
            grant = self._store.reserve(self._key, ask)
            granted_at = self._clock()
            if grant.slots == 0:
                # Ask again after one lease at most: other processes give back what their lease
                # left unsent within ``hold``, and those slots are spendable in this window.
                self._sleep(max(min(grant.wait, self._hold), 0.001))
        finally:
            self._cond.acquire()
            self._fetching = False
            self._cond.notify_all()
        if grant.slots:
            self._slots, self._lease_end = grant.slots, granted_at + self._hold
            self._window_id = grant.window
            if grant.slots > 1 and not self._closed:  # what the lease leaves unsent goes back
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = threading.Timer(self._hold, self._give_back, args=(grant.window,))
                self._timer.daemon = True
                self._timer.start()
            return False
        return True

    def _give_back(self, window: object) -> None:
        """The lease of the grant for ``window`` is over: return its unsent slots at once, so
        that no other process waits for slots this one no longer needs."""
        with self._cond:
            if self._closed:
                return
            if self._window_id is window and self._slots and self._clock() >= self._lease_end:
                self._unused += self._slots
                self._slots = 0
            if self._fetching or not self._unused:
                return  # the batch being asked for carries them
            ask = BudgetAsk(
                slots=0,
                limit=self._limit,
                span=self._window + 3 * self._hold,
                give_back=self._unused,
                window=self._window_id,
            )
            self._unused = 0
        with contextlib.suppress(Exception):  # not given back: they count until the batch ends
            self._store.reserve(self._key, ask)

    def close(self) -> None:
        """Give back every slot not sent (one round trip if any); then ask for nothing more."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            unused, self._unused, self._slots = self._unused + self._slots, 0, 0
            ask = BudgetAsk(
                slots=0,
                limit=self._limit,
                span=self._window + 3 * self._hold,
                give_back=unused,
                window=self._window_id,
            )
        if unused:
            with contextlib.suppress(Exception):  # not given back: they count until they end
                self._store.reserve(self._key, ask)

    def settle(self, slot: float) -> None:
        """The answer to a request is in: whatever it said has been observed (ends the probe)."""
        with self._cond:
            self._calibrated = True
            self._cond.notify_all()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Carry what the server reports (used, blocked) to the store with the next batch."""
        budget = read_budget(headers)
        with self._cond:
            if budget.limit is not None and budget.window == self._window:
                self._limit = max(min(self._limit, budget.limit), 1)
                self._batch = min(self._batch, self._limit)
            if budget.remaining is None:
                return
            self._server_used = max(self._server_used, self._limit - budget.remaining)
            self._server_used_at = self._clock()
            if budget.remaining == 0 and budget.reset is not None:
                until = self._clock() + budget.reset
                self._blocked_until = max(self._blocked_until, until)
                self._slots = 0
                if retry_after(headers) is not None:
                    # Blocked, not just spent (where the shared count already says so): every
                    # process must wait for the end of the block.
                    self._server_block_until = max(self._server_block_until, until)


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


@dataclass(frozen=True)
class ServerBudget:
    """What a response's headers say about the credential's budget; None where they are silent."""

    remaining: int | None = None
    reset: float | None = None  # seconds until `remaining` is replenished
    limit: int | None = None  # the policy's quota ...
    window: float | None = None  # ... per this many seconds


def read_budget(headers: Mapping[str, str], *, now: float | None = None) -> ServerBudget:
    """``Ratelimit``/``-Policy`` (IETF drafts), else ``X-RateLimit-*``, else ``Retry-After``."""
    h = _lower(headers)
    remaining: int | None = None
    reset: float | None = None
    items = _items(h.get("ratelimit", ""))
    if items:
        # The most constrained item is the one to honour.
        item = min(items, key=_remaining_or_many)
        remaining = _int(item.get("r", item.get("remaining")))
        reset = _seconds(item.get("t", item.get("reset")))
    for prefix in ("ratelimit-", "x-ratelimit-"):
        if remaining is None:
            remaining = _int(h.get(prefix + "remaining"))
        if reset is None and (raw := _seconds(h.get(prefix + "reset"))) is not None:
            reset = _reset_delta(raw, h, now)
    if remaining is None and (wait := retry_after(h, now=now)) is not None:
        remaining, reset = 0, wait
    limit, window = None, None
    for item in _items(h.get("ratelimit-policy", "")):
        quota = _int(item.get("q", item.get("")))
        per = _seconds(item.get("w"))
        if quota is not None and per is not None and (limit is None or quota < limit):
            limit, window = quota, per
    return ServerBudget(remaining=remaining, reset=reset, limit=limit, window=window)


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delay or HTTP-date, measured against the response's ``Date``)."""
    value = _lower(headers).get("retry-after", "").strip()
    if not value:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    when = _http_date(value)
    if when is None:
        return None
    return max(when - _server_now(_lower(headers), now), 0.0)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _items(value: str) -> list[dict[str, str]]:
    """Parse ``"default";r=0;t=30, "burst";r=5`` and ``limit=10, remaining=0, reset=5`` alike."""
    items: list[dict[str, str]] = []
    for member in value.split(","):
        params: dict[str, str] = {}
        for part in member.split(";"):
            key, sep, val = part.strip().partition("=")
            if sep:
                params[key.strip().lower()] = val.strip().strip('"')
            elif key and not key.startswith('"'):
                params[""] = key  # an old-draft bare quota: ``100;w=60``
        if params:
            items.append(params)
    # The old draft spreads one item over comma-separated members: merge them.
    keys = [k for i in items for k in i]
    if len(items) > 1 and all(len(i) == 1 for i in items) and len(set(keys)) == len(keys):
        return [{k: v for i in items for k, v in i.items()}]
    return items


def _remaining_or_many(item: Mapping[str, str]) -> int:
    remaining = _int(item.get("r", item.get("remaining")))
    return _MANY if remaining is None else remaining


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _seconds(value: str | None) -> float | None:
    if value is None or not _NUMBER.fullmatch(value.strip()):
        return None
    return float(value)


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _server_now(h: Mapping[str, str], now: float | None) -> float:
    # The server's own Date makes HTTP-date arithmetic immune to our clock's skew.
    server = _http_date(h.get("date", ""))
    if server is not None:
        return server
    return time.time() if now is None else now


def _reset_delta(raw: float, h: Mapping[str, str], now: float | None) -> float:
    if raw < _EPOCH_THRESHOLD:
        return raw
    return max(raw - _server_now(h, now), 0.0)
