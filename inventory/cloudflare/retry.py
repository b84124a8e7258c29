"""When to try a failed request again, and how long to wait first: a pure decision.

The client (``inventory.cloudflare.client``) asks ``retry_wait`` after each failed attempt that
is worth another (429, 5xx, Cloudflare's 520-530, timeouts, dropped connections): either the
seconds to wait, or ``GiveUp`` with the reason. Cloudflare's ``Retry-After`` (or its rate-limit
reset) is honoured as given; otherwise the wait grows exponentially with jitter, capped. No wait
may outlast the time left of the deadlines that bound the request.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RETRY_STATUSES", "WAIT_JITTER", "GiveUp", "backoff", "retry_wait"]

# 520-530 are Cloudflare's own edge errors: the origin was unreachable or misbehaved.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, *range(520, 531)})
WAIT_INITIAL, WAIT_MAX, WAIT_JITTER = 0.5, 30.0, 1.0


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No more attempts. ``out_of_time``: a deadline ended the call (its error says so);
    ``because``: why a wait Cloudflare asked for was not taken, for the message."""

    out_of_time: bool = False
    because: str = ""


def backoff(attempts: int, jitter: float) -> float:
    """The wait after ``attempts`` failed attempts when the server named none (``jitter`` is
    drawn by the caller from [0, WAIT_JITTER))."""
    return min(WAIT_INITIAL * 2.0 ** (attempts - 1) + jitter, WAIT_MAX)


def retry_wait(
    *,
    attempts: int,
    max_retries: int,
    remaining: float,
    hint: float | None,
    jitter: float,
    deadline: str,
) -> float | GiveUp:
    """Seconds to wait before attempt ``attempts + 1``, or why not to make it.

    ``remaining``: seconds left of the earliest deadline, which ``deadline`` names for an
    operator (``"request_deadline (120 s)"``); ``hint``: the wait the server asked for, if any.
    """
    if attempts > max_retries:
        return GiveUp()
    if remaining <= 0:
        return GiveUp(out_of_time=True)
    if hint is not None:
        if hint > remaining:
            return GiveUp(
                because=f"Cloudflare asked to wait {hint:.0f} s, more than the "
                f"{remaining:.0f} s left of {deadline}"
            )
        return hint
    wait = backoff(attempts, jitter)
    if wait >= remaining:  # the next attempt would start with no time left
        return GiveUp(out_of_time=True)
    return wait
