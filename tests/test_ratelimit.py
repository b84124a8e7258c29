"""RateLimiter and the header readers, on a fake clock: no test sleeps for real."""

from __future__ import annotations

import random
import threading
from bisect import bisect_right

import pytest

from inventory.cloudflare.budget_headers import ServerBudget, read_budget, retry_after
from inventory.cloudflare.ratelimit import Limiter, RateLimiter, RateLimiterRegistry


class FakeClock:
    """Time that moves only when someone sleeps (or a test says so); safe across threads."""

    def __init__(self, start: float = 5_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def limiter(clock: FakeClock, limit: int = 10, window: float = 60.0) -> RateLimiter:
    return RateLimiter(requests=limit, period=window, clock=clock, sleep=clock.sleep)


def max_in_any_window(times: list[float], window: float) -> int:
    """The most admissions in any half-open window (t - window, t]."""
    ordered = sorted(times)
    return max(bisect_right(ordered, t) - bisect_right(ordered, t - window) for t in ordered)


def test_a_burst_up_to_the_limit_goes_straight_through() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=10)
    assert [lim.acquire() for _ in range(10)] == [0.0] * 10
    assert clock.sleeps == []
    assert lim.available() == 0


def test_no_wait_is_reported_as_zero_on_a_real_clock() -> None:
    lim = RateLimiter(requests=3)  # not probing: no request waits for another's answer
    assert [lim.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_next_request_waits_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=3, window=60)
    lim.acquire()
    clock.now += 10
    lim.acquire()
    lim.acquire()
    waited = lim.acquire()
    assert waited == pytest.approx(50.0)  # the first was at t0; the window is 60 s
    assert clock.now == pytest.approx(5_060.0)


def test_defaults_are_cloudflares_budget() -> None:
    lim = RateLimiter()
    assert (lim.requests, lim.period) == (1200, 300.0)
    assert repr(lim) == "RateLimiter(requests=1200, period=300)"


@pytest.mark.parametrize(("requests", "period"), [(0, 60), (10, 0), (-1, 5)])
def test_a_limit_that_admits_nothing_is_refused(requests: int, period: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(requests=requests, period=period)
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiterRegistry(requests=requests, period=period)


@pytest.mark.parametrize("seed", range(5))
def test_no_window_ever_holds_more_than_the_limit(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    lim = limiter(clock, limit=20, window=300)
    admitted: list[float] = []
    waited: list[int] = []
    for n in range(400):
        clock.now += rng.choice([0, 0, 0, 0.5, 3, 40])  # bursts and pauses
        if lim.acquire() > 0:
            waited.append(n)
        admitted.append(clock.now)
    assert max_in_any_window(admitted, 300) == 20
    assert waited  # the test did make it throttle
    # ...and no longer than needed: a wait ends just as the 20th-last request leaves the window.
    for n in waited:
        assert admitted[n] - admitted[n - 20] == pytest.approx(300, abs=0.002)


def test_threads_never_exceed_the_limit_together() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=15, window=100)
    admitted: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(30):
            lim.acquire()
            with lock:
                admitted.append(clock())

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 180
    assert max_in_any_window(admitted, 100) <= 15


def test_observe_lowers_the_budget_until_the_servers_reset() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=100, window=300)
    lim.acquire()
    lim.observe({"Ratelimit": '"default";r=5;t=30'})
    assert lim.available() == 5
    clock.now += 30
    assert lim.available() == 99  # the server's window reset; ours still holds the one request


def test_observe_never_raises_the_budget() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=10)
    for _ in range(8):
        lim.acquire()
    lim.observe({"X-RateLimit-Remaining": "500", "X-RateLimit-Reset": "1"})
    assert lim.available() == 2


def test_remaining_zero_makes_the_next_acquire_wait_for_the_reset() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=100, window=300)
    lim.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "45"})
    assert lim.acquire() == pytest.approx(45.0)


def test_a_reset_longer_than_our_window_is_capped_at_it() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=100, window=300)
    lim.observe({"Ratelimit": '"default";r=0;t=9000'})
    assert lim.acquire() == pytest.approx(300.0)


def test_observe_without_a_reset_books_the_difference_for_a_whole_window() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=50, window=300)
    lim.observe({"RateLimit-Remaining": "10"})
    assert lim.available() == 10
    clock.now += 299
    assert lim.available() == 10
    clock.now += 1
    assert lim.available() == 50


def test_a_stricter_policy_for_our_window_lowers_the_limit() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=1200, window=300)
    lim.observe({"Ratelimit-Policy": '"default";q=600;w=300'})
    assert lim.requests == 600
    lim.observe({"Ratelimit-Policy": '"burst";q=5;w=1'})  # another window: not comparable
    assert lim.requests == 600


def test_headers_that_say_nothing_change_nothing() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=10)
    lim.observe({"Content-Type": "application/json", "Ratelimit": "garbage;;=;"})
    assert lim.available() == 10


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Ratelimit": '"default";r=0;t=30'}, ServerBudget(remaining=0, reset=30.0)),
        ({"RateLimit": '"a";r=50;t=1, "b";r=2;t=40'}, ServerBudget(remaining=2, reset=40.0)),
        ({"RateLimit": "limit=100, remaining=7, reset=9"}, ServerBudget(remaining=7, reset=9.0)),
        ({"RateLimit-Remaining": "3", "RateLimit-Reset": "4"}, ServerBudget(remaining=3, reset=4)),
        ({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "2.5"}, ServerBudget(1, 2.5)),
        (
            {
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2000000060",
                "Date": "Wed, 18 May 2033 03:33:20 GMT",
            },
            ServerBudget(remaining=0, reset=60.0),
        ),
        ({"Retry-After": "12"}, ServerBudget(remaining=0, reset=12.0)),
        (
            {"Ratelimit-Policy": '"default";q=1200;w=300, "burst";q=100;w=10'},
            ServerBudget(limit=100, window=10.0),
        ),
        ({"Ratelimit-Policy": "1200;w=300"}, ServerBudget(limit=1200, window=300.0)),
        ({"X-RateLimit-Remaining": "-4", "X-RateLimit-Reset": "inf"}, ServerBudget()),
        ({}, ServerBudget()),
    ],
)
def test_read_budget_understands_the_header_dialects(
    headers: dict[str, str], expected: ServerBudget
) -> None:
    assert read_budget(headers) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 120 "}, 120.0),
        (
            {
                "Retry-After": "Tue, 15 Nov 2033 08:13:01 GMT",
                "Date": "Tue, 15 Nov 2033 08:12:31 GMT",
            },
            30.0,
        ),
        (
            {
                "Retry-After": "Tue, 15 Nov 2033 08:12:01 GMT",
                "Date": "Tue, 15 Nov 2033 08:12:31 GMT",
            },
            0.0,
        ),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "NaN"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(headers) == expected


def test_retry_after_date_without_a_date_header_uses_our_clock() -> None:
    # 2033-11-15 08:13:01 GMT
    assert retry_after({"Retry-After": "Tue, 15 Nov 2033 08:13:01 GMT"}, now=2015655151.0) == 30.0


def test_the_registry_gives_one_limiter_per_key_even_under_contention() -> None:
    made: list[str] = []

    def factory(key: str) -> RateLimiter:
        made.append(key)
        return RateLimiter(requests=5)

    registry = RateLimiterRegistry(factory)
    barrier = threading.Barrier(8)
    got: list[Limiter] = []

    def work() -> None:
        barrier.wait()
        got.append(registry.get("shared"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["shared"]
    assert len({id(lim) for lim in got}) == 1
    assert registry.get("other") is not registry.get("shared")
    assert made == ["shared", "other"]


def test_the_default_registry_makes_default_limiters() -> None:
    lim = RateLimiterRegistry().get("token")
    assert (lim.requests, lim.period) == (1200, 300.0)


def test_the_registry_can_set_the_budget() -> None:
    lim = RateLimiterRegistry(requests=50, period=60).get("token")
    assert (lim.requests, lim.period) == (50, 60.0)


def acquire_in_background(lim: RateLimiter) -> tuple[threading.Event, threading.Thread]:
    """Another thread's ``acquire``; the event is set once it is admitted."""
    admitted = threading.Event()

    def second() -> None:
        lim.acquire()
        admitted.set()

    worker = threading.Thread(target=second)
    worker.start()
    return admitted, worker


def test_a_probing_limiter_lets_one_request_out_until_its_answer_is_observed() -> None:
    lim = RateLimiter(requests=10, period=60.0, probe=True)
    _, slot = lim.acquire_slot()
    admitted, worker = acquire_in_background(lim)
    assert not admitted.wait(0.3)  # held back while the probe is out
    # The server says another process left 2 of 10: the rest of this window is booked.
    lim.observe({"Ratelimit": '"default";r=2;t=60'})
    lim.settle(slot)
    assert admitted.wait(5)
    worker.join()
    assert lim.available() == 1


def test_a_slot_counts_from_when_its_answer_came() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=1, window=60)
    _, slot = lim.acquire_slot()
    clock.now += 5  # the request took 5 s: the server may have counted it only then
    lim.settle(slot)
    assert lim.acquire() == pytest.approx(60.0)
    assert clock.now == pytest.approx(5_065.0)


def test_settling_an_unknown_or_expired_slot_changes_nothing() -> None:
    clock = FakeClock()
    lim = limiter(clock, limit=2, window=60)
    lim.acquire()
    lim.settle(1.0)
    assert lim.available() == 1


def test_when_a_booked_reset_comes_a_probing_limiter_asks_again_before_spending_it() -> None:
    # The server's reset frees its oldest request only: the rest of what it counted may still
    # be in its window, so one request asks what is left before the others go.
    clock = FakeClock()
    lim = RateLimiter(requests=10, period=60.0, clock=clock, sleep=clock.sleep, probe=True)
    _, slot = lim.acquire_slot()
    lim.observe({"Ratelimit": '"default";r=0;t=1'})
    lim.settle(slot)
    clock.now += 2
    _, probe = lim.acquire_slot()
    admitted, worker = acquire_in_background(lim)
    assert not admitted.wait(0.3)
    lim.observe({"Ratelimit": '"default";r=5;t=30'})
    lim.settle(probe)
    assert admitted.wait(5)
    worker.join()
