"""The client's retry decision as a pure function: no HTTP, no clock, no randomness."""

from __future__ import annotations

import pytest

from inventory.cloudflare.retry import WAIT_JITTER, GiveUp, backoff, retry_wait

DEADLINE = "request_deadline (120 s)"


def decide(
    attempts: int = 1,
    *,
    max_retries: int = 5,
    remaining: float = 120.0,
    hint: float | None = None,
    jitter: float = 0.0,
) -> float | GiveUp:
    return retry_wait(
        attempts=attempts,
        max_retries=max_retries,
        remaining=remaining,
        hint=hint,
        jitter=jitter,
        deadline=DEADLINE,
    )


def test_without_a_hint_the_wait_doubles_from_half_a_second_plus_jitter() -> None:
    assert [decide(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert decide(2, jitter=0.25) == 1.25


def test_the_backoff_is_capped_at_thirty_seconds() -> None:
    assert backoff(10, 0.0) == 30.0
    assert backoff(7, WAIT_JITTER) == 30.0
    assert decide(10, max_retries=20) == 30.0


def test_the_wait_the_server_asks_for_is_honoured_as_given() -> None:
    assert decide(1, hint=7.0, jitter=0.9) == 7.0
    assert decide(1, hint=0.0) == 0.0


def test_a_server_wait_longer_than_the_time_left_gives_up_and_says_why() -> None:
    decision = decide(1, hint=300.0, remaining=100.0)
    assert decision == GiveUp(
        out_of_time=False,
        because="Cloudflare asked to wait 300 s, more than the 100 s left of "
        "request_deadline (120 s)",
    )


@pytest.mark.parametrize("remaining", [0.0, -1.0])
def test_no_time_left_gives_up_on_the_deadline(remaining: float) -> None:
    assert decide(1, remaining=remaining) == GiveUp(out_of_time=True)
    assert decide(1, remaining=remaining, hint=1.0) == GiveUp(out_of_time=True)


def test_a_backoff_that_would_leave_no_time_for_the_attempt_gives_up_on_the_deadline() -> None:
    assert decide(3, remaining=2.0) == GiveUp(out_of_time=True)  # 2 s wait, 2 s left
    assert decide(3, remaining=2.01) == 2.0


def test_attempts_past_max_retries_give_up_without_blaming_the_deadline() -> None:
    assert decide(6, max_retries=5) == GiveUp()
    assert decide(5, max_retries=5) == 8.0
    assert decide(1, max_retries=0) == GiveUp()
