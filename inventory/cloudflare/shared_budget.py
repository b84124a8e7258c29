"""One credential's rate-limit budget shared by every replica, through a ``BudgetStore``.

The store (``inventory.db.budget`` implements it in PostgreSQL) keeps each credential's window;
``SharedRateLimiter`` takes its slots from it in small batches (see its docstring).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping

from inventory.cloudflare.budget_headers import read_budget, retry_after
from inventory.cloudflare.ratelimit import (
    PROBE_WAIT,
    RateLimitBlocked,
    current_pace,
    current_rank,
)
from inventory.ratebudget import BudgetAsk, BudgetStore

__all__ = ["SharedRateLimiter"]


class SharedRateLimiter:
    """A credential's budget kept in a ``BudgetStore``, shared by every process using it.

    Slots are reserved up to ``batch`` at a time (two per waiting thread) and must be sent
    within ``hold`` seconds of the store's answer; what is left then is given back to the store
    with the next ask from here (a sync's next request that came just too late takes them
    again, before any other process), or by a round trip of its own when the lease ends (one
    ``hold`` later while paced). A batch
    stays counted for ``period + 3 * hold`` after it was reserved (the window, plus the time to
    send its requests and for them to reach the server: a round trip and the way there are
    assumed to take less than ``2 * hold``), so a process that dies holds nothing for longer
    than that. The store's answer says how long to wait when the window is spent; a waiting
    limiter asks again after one ``hold`` at most, since slots that other processes leave unsent
    come back within two.

    Threads waiting here take the granted slots by rank (``ranked``: the daemon's oldest last
    success first; equal ranks in the order they came), one each, and so do the processes: each
    ask carries the ranks of the threads it is for (two slots each: a request and its sync's next
    one), and the store holds back the slots that an older request waiting in another process
    still wants (its entry counts until this limiter asks again, ``3 * hold`` at most). A
    request made while ``ranked(paced_from=...)`` says it is behind (the daemon's account is
    overdue) has this limiter's asks paced while it waits and for a span after: the store then
    grants at most half the budget per half span, and in whole shares, which this limiter keeps
    for the requests they were asked for (``_may_take``), so that syncs come whole and at an
    even pace rather than in a burst per window.

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
        self._shares: dict[float, int] | None = None  # paced: the slots left for each rank
        self._lease_end = 0.0  # granted slots must be sent before this
        self._window_id: object = None  # the store's window of the granted slots
        self._unused = 0  # slots a lapsed lease left, given back with the next batch
        self._timer: threading.Timer | None = None  # gives a lapsed lease's slots back
        self._closed = False
        self._fetching = False  # one thread at a time asks the store
        self._waiting = 0
        self._queue: list[tuple[float, int]] = []  # the waiting threads' (rank, arrival), sorted
        self._arrivals = itertools.count()
        self._calibrated = False  # the probe's answer has been observed
        self._probe_since: float | None = None
        self._blocked_until = 0.0  # the server's budget is spent (or blocked) until then
        self._server_block_until = 0.0  # the server blocks the credential (429) until then
        self._server_used = 0
        self._server_used_at = 0.0
        self._id = uuid.uuid4().hex  # this process's name for itself among the store's waiters
        self._paced_until = 0.0  # asks are paced until then, and while a waiting request ...
        self._paced_from: dict[tuple[float, int], float] = {}  # ... is behind (by ticket)

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
        """Take a slot; waiting threads get the granted slots in rank order (``ranked``)."""
        start, slept = self._clock(), False
        ticket = (current_rank(), next(self._arrivals))
        paced_from = current_pace()
        with self._cond:
            self._waiting += 1
            self._paced_from[ticket] = paced_from
            insort(self._queue, ticket)
            try:
                while True:
                    now = self._clock()
                    blocked = self._blocked_until - now
                    if max_block is not None and blocked > max_block:
                        raise RateLimitBlocked(blocked)
                    if self._slots > 0 and now < self._lease_end:
                        if not self._may_take(ticket):
                            self._cond.wait(max(self._lease_end - now, 0.001))
                            slept = True
                            continue
                        self._slots -= 1
                        if self._shares is not None:
                            self._shares[ticket[0]] -= 1
                        if not self._calibrated and self._probe_since is None:
                            self._probe_since = now  # this request is the probe
                        return (now - start if slept else 0.0), now
                    self._unused += self._slots  # a lapsed lease's slots are not sent
                    self._slots = 0
                    if self._fetching or self._probe_out(now):
                        self._cond.wait(0.05 if self._fetching else PROBE_WAIT)
                        slept = True
                        continue
                    slept = self._reserve(now) or slept
            finally:
                self._waiting -= 1
                del self._paced_from[ticket]
                if (end := self._clock()) >= paced_from:  # asks stay paced for a span more
                    self._paced_until = max(self._paced_until, end + self._window + 3 * self._hold)
                del self._queue[bisect_left(self._queue, ticket)]
                self._cond.notify_all()  # the next in rank may now be among the first

    def _may_take(self, ticket: tuple[float, int]) -> bool:
        """Whether this thread may take one of the lease's slots now (lock held).

        Paced, a grant's slots are the shares of the requests it was asked for, two each, the
        oldest first: a sync's next request finds its slot kept for it, so that the sync ends
        within the grant rather than waiting for the next (a request whose rank has no share
        asks again when the lease ends). Otherwise those ranked before this thread take the
        granted slots first, one each.
        """
        if self._shares is not None:
            return self._shares.get(ticket[0], 0) > 0
        return bisect_left(self._queue, ticket) < self._slots

    def _probe_out(self, now: float) -> bool:
        if self._calibrated or self._probe_since is None:
            return False
        if now - self._probe_since > PROBE_WAIT:
            self._calibrated = True  # a probe never answered must not hold the others forever
            return False
        return True

    def _reserve(self, now: float) -> bool:
        """Ask the store for a batch (lock held on entry and exit); True if it had to wait."""
        probe = not self._calibrated
        slots = 1 if probe else min(self._batch, 2 * self._waiting)
        ask = BudgetAsk(
            slots=slots,
            limit=self._limit,
            span=self._window + 3 * self._hold,
            server_used=self._server_used,
            server_used_age=max(now - self._server_used_at, 0.0),
            blocked_for=max(self._server_block_until - now, 0.0),
            give_back=self._unused,
            window=self._window_id,
            waiter=self._id,
            ranks=tuple(rank for rank, _ in self._queue[: (slots + 1) // 2]),  # two a request
            waiter_for=3 * self._hold,
            paced=now < self._paced_until or any(now >= p for p in self._paced_from.values()),
        )
        self._server_used = self._unused = 0
        self._fetching = True
        self._cond.release()
        try:
            grant = self._store.reserve(self._key, ask)
            granted_at = self._clock()
            if grant.slots == 0:
                # Ask again after one lease at most: other processes give back what their lease
                # left unsent within ``hold``, and those slots are spendable in this window;
                # slots held back for an older request elsewhere are taken within that too.
                self._sleep(min(grant.wait, self._hold) if grant.wait > 0 else self._hold)
        finally:
            self._cond.acquire()
            self._fetching = False
            self._cond.notify_all()
        if grant.slots:
            self._slots, self._lease_end = grant.slots, granted_at + self._hold
            self._shares = _split(ask.ranks, grant.slots) if ask.paced else None
            self._window_id = grant.window
            if grant.slots > 1 and not self._closed:  # what the lease leaves unsent goes back
                if self._timer is not None:
                    self._timer.cancel()
                # Paced, a sync's next request that comes just after the lease takes its unsent
                # slots for one hold more; otherwise they go back as the lease ends, when other
                # processes may be waiting for them (a burst's tail).
                delay = (2 if ask.paced else 1) * self._hold
                self._timer = threading.Timer(delay, self._give_back, args=(grant.window,))
                self._timer.daemon = True
                self._timer.start()
            return False
        return True

    def _give_back(self, window: object) -> None:
        """The lease of the grant for ``window`` is over (one ``hold`` more while paced) and no
        thread here took its unsent slots again: return them, so that no other process waits
        for slots this one no longer needs."""
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
        """Give back every slot not sent (one round trip if any); then ask for nothing more.

        Once it returns, nothing of this limiter touches the store again: a give-back already
        under way is waited for, so that the caller may dispose of the store's engine.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            timer = self._timer
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()
        with self._cond:
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


def _split(ranks: tuple[float, ...], slots: int) -> dict[float, int]:
    """A paced grant's ``slots`` by rank: two for each of ``ranks``, the lowest first (what the
    store granted them: ``inventory.db.budget``)."""
    shares: dict[float, int] = {}
    for rank in sorted(ranks):
        share = min(2, slots)
        shares[rank] = shares.get(rank, 0) + share
        slots -= share
    return shares
