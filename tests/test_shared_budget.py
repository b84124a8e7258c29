"""One rate-limit budget per credential, shared through PostgreSQL (inventory.db.budget).

The store on its own (never more than the budget granted, however many threads ask; what the
server reports and a block it announces are honoured), and a process SIGKILLed while it holds a
whole window's slots: the others have the full budget again one window later.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from inventory.cloudflare.ratelimit import ranked
from inventory.cloudflare.shared_budget import SharedRateLimiter
from inventory.db.budget import PostgresBudgetStore
from inventory.db.engine import make_engine
from inventory.ratebudget import BudgetAsk, BudgetGrant

LIMIT = 20


@pytest.fixture
def pg_engine(pg_database: str | None) -> Iterator[Engine]:
    if pg_database is None:
        pytest.skip("PostgreSQL is not reachable")
    engine = make_engine(pg_database)
    yield engine
    engine.dispose()


def key() -> str:
    return f"token:{uuid.uuid4().hex[:12]}"


def test_concurrent_batches_never_grant_more_than_the_budget(pg_engine: Engine) -> None:
    stores = [PostgresBudgetStore(pg_engine) for _ in range(4)]  # four "replicas"
    credential = key()
    granted: list[int] = []
    start = threading.Barrier(8)

    def ask(store: PostgresBudgetStore) -> None:
        start.wait()
        for _ in range(5):
            grant = store.reserve(credential, BudgetAsk(slots=3, limit=LIMIT, span=60.0))
            granted.append(grant.slots)

    threads = [threading.Thread(target=ask, args=(stores[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == LIMIT
    spent = stores[0].reserve(credential, BudgetAsk(slots=3, limit=LIMIT, span=60.0))
    assert spent.slots == 0
    assert spent.used == LIMIT
    assert 55 < spent.wait <= 60


def test_the_window_frees_its_slots_when_it_ends(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=LIMIT, limit=LIMIT, span=0.3)).slots == LIMIT
    spent = store.reserve(credential, BudgetAsk(slots=1, limit=LIMIT, span=0.3))
    assert spent.slots == 0
    time.sleep(spent.wait + 0.01)  # the store's own answer: how long the window has left
    fresh = store.reserve(credential, BudgetAsk(slots=5, limit=LIMIT, span=0.3))
    assert (fresh.slots, fresh.used) == (5, 5)


def test_what_the_server_reports_raises_the_shared_count(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=2, limit=LIMIT, span=60.0)).used == 2
    # Another tool spent 15 of the token's 20: only 5 are left, whatever we reserved.
    grant = store.reserve(credential, BudgetAsk(slots=10, limit=LIMIT, span=60.0, server_used=15))
    assert (grant.slots, grant.used) == (5, LIMIT)
    # What the server counted a whole span ago has left its window since: nothing is booked.
    late = key()
    stale = BudgetAsk(slots=5, limit=LIMIT, span=60.0, server_used=LIMIT, server_used_age=61.0)
    assert store.reserve(late, stale).slots == 5
    # A block the server announces holds every replica, even past the window's own end.
    other = key()
    blocked = store.reserve(
        other, BudgetAsk(slots=1, limit=LIMIT, span=0.1, server_used=LIMIT, blocked_for=30.0)
    )
    assert blocked.slots == 0
    assert 29 < blocked.wait <= 30


def test_slots_an_older_waiter_elsewhere_wants_are_held_back_for_it(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=LIMIT, limit=LIMIT, span=0.3)).slots == LIMIT
    # The window is spent; process "a" waits with two requests older than "b"'s (ranks 5, 6).
    older = BudgetAsk(slots=4, limit=LIMIT, span=0.3, waiter="a", ranks=(5.0, 6.0), waiter_for=60.0)
    spent = store.reserve(credential, older)
    assert spent.slots == 0
    time.sleep(spent.wait + 0.01)  # the window ends
    # Process "b" asks first, with a younger request (rank 9): a slot for each of "a"'s is
    # held back (each takes one; a sync's next request asks again).
    younger = BudgetAsk(
        slots=LIMIT, limit=LIMIT, span=0.3, waiter="b", ranks=(9.0,), waiter_for=60.0
    )
    assert store.reserve(credential, younger).slots == LIMIT - 2
    assert store.reserve(credential, older).slots == 2
    # "b" got what it asked for: it holds nothing back from an older request.
    oldest = BudgetAsk(slots=2, limit=LIMIT, span=0.3, waiter="c", ranks=(1.0,), waiter_for=60.0)
    spent = store.reserve(credential, oldest)
    assert spent.slots == 0
    time.sleep(spent.wait + 0.01)
    assert store.reserve(credential, oldest).slots == 2


def test_requests_are_served_in_rank_order_across_processes(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=LIMIT - 4, limit=LIMIT, span=60.0)).slots
    assert store.reserve(credential, BudgetAsk(slots=4, limit=LIMIT, span=0.3)).slots == 4
    # "a" waits with two requests: the oldest of all (1) and a young one (5).
    a = BudgetAsk(slots=4, limit=LIMIT, span=0.3, waiter="a", ranks=(1.0, 5.0), waiter_for=60.0)
    spent = store.reserve(credential, a)
    assert spent.slots == 0
    time.sleep(spent.wait + 0.01)  # four slots are free again
    # "b"'s request (3) comes after "a"'s first and before its second: one slot is held back.
    b = BudgetAsk(slots=4, limit=LIMIT, span=0.3, waiter="b", ranks=(3.0,), waiter_for=60.0)
    assert store.reserve(credential, b).slots == 3
    assert store.reserve(credential, a).slots == 1


def test_a_paced_grant_is_whole_shares_and_keeps_the_rest_for_their_requests(
    pg_engine: Engine,
) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=LIMIT - 3, limit=LIMIT, span=60.0)).slots
    # Paced, "a" asks two slots for each of two requests (a sync's request and its next): of
    # the three free, the oldest request gets its two, not one of them each.
    a = BudgetAsk(
        slots=4,
        limit=LIMIT,
        span=200.0,
        waiter="a",
        ranks=(1.0, 5.0),
        waiter_for=60.0,
        paced=True,
    )
    granted = store.reserve(credential, a)
    assert granted.slots == 2
    # The last free slot is held back for "a"'s other request, which wants two.
    b = BudgetAsk(slots=1, limit=LIMIT, span=200.0, waiter="b", ranks=(9.0,), waiter_for=60.0)
    held = store.reserve(credential, b)
    assert held.slots == 0
    assert 50 < held.wait <= 60  # until a slot ends, not at once
    one = BudgetAsk(slots=1, limit=LIMIT, span=200.0, waiter="a", ranks=(5.0,), waiter_for=60.0)
    assert store.reserve(credential, one).slots == 1  # the window is spent
    # What a paced ask gives back it may take again alone: the sync's next request that came
    # after its lease had lapsed gets its slot back, though not the two of a whole share.
    late = BudgetAsk(
        slots=2,
        limit=LIMIT,
        span=200.0,
        waiter="a",
        ranks=(1.0,),
        waiter_for=60.0,
        paced=True,
        give_back=1,
        window=granted.window,
    )
    assert store.reserve(credential, late).slots == 1


def test_a_waiter_that_stops_asking_holds_nothing_back_once_its_entry_expires(
    pg_engine: Engine,
) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    assert store.reserve(credential, BudgetAsk(slots=LIMIT, limit=LIMIT, span=0.3)).slots == LIMIT
    gone = BudgetAsk(slots=4, limit=LIMIT, span=0.3, waiter="a", ranks=(5.0,), waiter_for=0.2)
    spent = store.reserve(credential, gone)
    assert spent.slots == 0
    time.sleep(max(spent.wait, 0.2) + 0.01)  # the window ends, and the entry with it
    younger = BudgetAsk(
        slots=LIMIT, limit=LIMIT, span=0.3, waiter="b", ranks=(9.0,), waiter_for=0.2
    )
    assert store.reserve(credential, younger).slots == LIMIT


def test_paced_asks_get_half_the_budget_per_half_span(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    paced = BudgetAsk(slots=LIMIT, limit=LIMIT, span=2.0, paced=True)
    assert store.reserve(credential, paced).slots == LIMIT // 2
    blocked = store.reserve(credential, paced)
    assert blocked.slots == 0
    assert 0.5 < blocked.wait <= 1.0  # until the first half is half a span old
    time.sleep(blocked.wait + 0.01)
    assert store.reserve(credential, paced).slots == LIMIT // 2
    # Unpaced, an ask gets what the window has left; here, nothing.
    assert store.reserve(credential, BudgetAsk(slots=1, limit=LIMIT, span=2.0)).slots == 0


class RecordingStore:
    def __init__(self) -> None:
        self.asks: list[BudgetAsk] = []

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant:
        self.asks.append(ask)
        return BudgetGrant(slots=ask.slots, used=ask.slots, wait=0.0)


def test_an_ask_carries_the_ranks_of_the_requests_it_is_for_and_the_pace() -> None:
    store = RecordingStore()
    limiter = SharedRateLimiter(store, key(), requests=LIMIT, period=60, batch=10, hold=10.0)
    with ranked(7.0):
        limiter.settle(limiter.acquire_slot()[1])  # the probe
    with ranked(3.0, paced_from=-math.inf):
        limiter.acquire_slot()
    limiter.close()
    probe, batch = store.asks[:2]
    assert (probe.ranks, probe.paced, batch.ranks, batch.paced) == ((7.0,), False, (3.0,), True)
    assert probe.waiter == batch.waiter != ""
    assert batch.waiter_for == 30.0  # three holds


def test_the_limiter_takes_batches_not_one_round_trip_per_request(pg_engine: Engine) -> None:
    calls: list[BudgetAsk] = []

    class Counting(PostgresBudgetStore):
        def reserve(self, credential_key: str, ask: BudgetAsk):  # type: ignore[no-untyped-def]
            calls.append(ask)
            return super().reserve(credential_key, ask)

    limiter = SharedRateLimiter(Counting(pg_engine), key(), requests=LIMIT, period=60, batch=5)
    for _ in range(LIMIT):
        _, slot = limiter.acquire_slot()
        limiter.settle(slot)
    for timer in [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
        timer.join()  # the unsent slot goes back before the engine is disposed
    # The probe alone, then batches; a lone thread asks for two at a time.
    assert calls[0].slots == 1
    assert len(calls) < LIMIT
    assert sum(c.slots for c in calls) >= LIMIT


class GatedStore:
    """A store in memory that grants what is asked, except that its second batch waits for
    ``release`` and holds two slots only, and its third waits for ``finish``."""

    def __init__(self) -> None:
        self.calls = 0
        self.asked = [threading.Event() for _ in range(3)]
        self.release, self.finish = threading.Event(), threading.Event()

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant:
        self.calls += 1
        if self.calls <= 3:
            self.asked[self.calls - 1].set()
        if self.calls == 2:
            assert self.release.wait(10)
            return BudgetGrant(slots=2, used=2, wait=0.0)
        if self.calls == 3:
            assert self.finish.wait(10)
        return BudgetGrant(slots=ask.slots, used=ask.slots, wait=0.0)


def test_waiting_requests_take_the_slots_lowest_rank_first() -> None:
    store = GatedStore()
    limiter = SharedRateLimiter(store, key(), requests=LIMIT, period=60, batch=10, hold=10.0)
    limiter.settle(limiter.acquire_slot()[1])  # the probe has its answer
    served: list[float] = []
    changed = threading.Condition()

    def request(rank: float) -> None:
        with ranked(rank):
            limiter.acquire_slot()
        with changed:
            served.append(rank)
            changed.notify_all()

    # The highest rank comes first and asks the store; the others queue up behind the ask.
    threads = [threading.Thread(target=request, args=(r,)) for r in (4.0, 3.0, 1.0, 2.0)]
    threads[0].start()
    assert store.asked[1].wait(10)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 10
    while limiter._waiting < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    store.release.set()  # two slots for four waiting threads
    assert store.asked[2].wait(10)
    with changed:
        assert changed.wait_for(lambda: len(served) == 2, timeout=10)
        assert sorted(served) == [1.0, 2.0]  # the two lowest ranks, not the first to come
    store.finish.set()
    for t in threads:
        t.join()
    assert sorted(served) == [1.0, 2.0, 3.0, 4.0]
    limiter.close()


VICTIM = """
import sys, time
from inventory.db.budget import PostgresBudgetStore
from inventory.db.engine import make_engine
from inventory.ratebudget import BudgetAsk
store = PostgresBudgetStore(make_engine(sys.argv[1]))
grant = store.reserve(sys.argv[2], BudgetAsk(slots=int(sys.argv[3]), limit=int(sys.argv[3]),
                                             span=float(sys.argv[4])))
print("reserved", grant.slots, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_replica_killed_holding_slots_frees_them_within_one_window(
    pg_engine: Engine, pg_database: str
) -> None:
    period, credential = 3.0, key()
    limiter = SharedRateLimiter(
        PostgresBudgetStore(pg_engine), credential, requests=LIMIT, period=period, batch=5
    )
    span = period + 3 * limiter._hold  # what a reservation may hold at most
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, pg_database, credential, str(LIMIT), str(span)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().split() == ["reserved", str(LIMIT)]
        victim.kill()  # SIGKILL: it cannot give anything back
        victim.wait()
        killed = time.monotonic()
        slots = []
        for _ in range(LIMIT):
            _, slot = limiter.acquire_slot()
            limiter.settle(slot)
            slots.append(slot)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        if victim.stdout is not None:
            victim.stdout.close()
    # Nothing before the victim's window ended, then the whole budget at once.
    assert slots[0] - killed > 0.5 * period
    assert slots[-1] - killed <= span + 0.5
    assert slots[-1] - slots[0] < 0.5 * period


def test_slots_never_sent_go_back_to_their_window_only(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    first = store.reserve(credential, BudgetAsk(slots=10, limit=LIMIT, span=60.0))
    assert first.used == 10
    # Four were sent, six not: they are free again for every replica.
    back = BudgetAsk(slots=1, limit=LIMIT, span=60.0, give_back=6, window=first.window)
    assert store.reserve(credential, back).used == 5
    # A grant of another window gives nothing back to this one.
    stale = BudgetAsk(slots=1, limit=LIMIT, span=60.0, give_back=5, window=None)
    assert store.reserve(credential, stale).used == 6


def test_closing_gives_back_what_was_not_sent(pg_engine: Engine) -> None:
    store, credential = PostgresBudgetStore(pg_engine), key()
    limiter = SharedRateLimiter(store, credential, requests=LIMIT, period=60, batch=5)
    _, probe = limiter.acquire_slot()
    limiter.settle(probe)
    limiter.acquire_slot()  # a batch of two: one sent, one not
    limiter.close()
    after = store.reserve(credential, BudgetAsk(slots=0, limit=LIMIT, span=60.0))
    assert after.used == 2  # the probe and the one sent


class GiveBackStore:
    """Grants what is asked; a give-back (an ask for no slot) blocks until ``release``."""

    def __init__(self) -> None:
        self.giving_back, self.release = threading.Event(), threading.Event()
        self.done: list[BudgetAsk] = []

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant:
        if ask.slots == 0:
            self.giving_back.set()
            assert self.release.wait(10)
        self.done.append(ask)
        return BudgetGrant(slots=ask.slots, used=ask.slots, wait=0.0)


def test_closing_waits_for_a_give_back_under_way() -> None:
    """Nothing touches the store once ``close`` returns (its engine may be disposed of then: a
    give-back after that leaked a connection into a pool nobody closed)."""
    store = GiveBackStore()
    limiter = SharedRateLimiter(store, key(), requests=LIMIT, period=60, batch=5, hold=0.01)
    limiter.settle(limiter.acquire_slot()[1])  # the probe
    limiter.acquire_slot()  # a batch: one sent, the rest given back when the lease is over
    assert store.giving_back.wait(10)
    closed = threading.Event()

    def close() -> None:
        limiter.close()
        closed.set()

    closer = threading.Thread(target=close)
    closer.start()
    assert not closed.wait(0.2)  # still giving back: close waits
    store.release.set()
    assert closed.wait(10)
    closer.join()
    calls = len(store.done)
    limiter.close()
    assert len(store.done) == calls


def test_paced_a_grant_is_kept_for_the_syncs_it_was_asked_for() -> None:
    """Paced, two slots granted for two syncs' requests go to the older sync (its request and
    its next one), not one to each: no sync is split between two grants."""
    asks: list[BudgetAsk] = []
    log: list[tuple[str, int]] = []

    class Store:
        def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant:
            asks.append(ask)
            if ask.slots and len(asks) > 1 and len(ask.ranks) < 2 and not log:
                return BudgetGrant(slots=0, used=LIMIT, wait=0.001)  # until both wait
            return BudgetGrant(slots=min(ask.slots, 2), used=2, wait=0.0)

    limiter = SharedRateLimiter(Store(), key(), requests=LIMIT, period=60, batch=10, hold=0.5)
    limiter.settle(limiter.acquire_slot()[1])  # the probe, alone

    def sync(name: str, rank: float, requests: int) -> None:
        with ranked(rank, paced_from=-math.inf):
            for _ in range(requests):
                limiter.acquire_slot()
                log.append((name, len(asks)))

    threads = [
        threading.Thread(target=sync, args=("young", 5.0, 1)),
        threading.Thread(target=sync, args=("old", 1.0, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    limiter.close()
    granted = next(i for i, ask in enumerate(asks, 1) if ask.ranks == (1.0, 5.0))
    assert asks[granted - 1].paced
    # The old sync's two requests both took the grant asked for the two syncs ...
    assert log[:2] == [("old", granted), ("old", granted)]
    # ... and the young one asked again, for itself.
    assert log[2][0] == "young"
    assert log[2][1] > granted
    assert asks[log[2][1] - 1].ranks == (5.0,)
