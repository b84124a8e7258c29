"""One request to a webhook target and what its answer means (no retries here).

    2xx                          ok
    5xx, 408, 429, timeout,      retry, after ``backoff``: the receiver's Retry-After (seconds or
    connect                      an HTTP date, 1 s to an hour), else 2, 4, 8… s up to 10 min
    3xx (never followed), 4xx    refused

408 (Request Timeout) is the receiver timing out on the request: a timeout, so retried.

``Answer.error`` is written from the status or the exception's class only: never the URL (it may
be a credential, as Slack's are) nor the secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from inventory.cloudflare.request import ssl_verify
from inventory.notify.events import new_event
from inventory.notify.formats import request_for
from inventory.settings.notify import NotifyTarget

__all__ = [
    "Answer",
    "backoff",
    "classify",
    "post_events",
    "retry_after_seconds",
    "send_test_events",
]

BACKOFF_BASE = 2.0  # seconds before the first retry; doubles each attempt
BACKOFF_CAP = 600.0
RETRY_AFTER_CAP = 3600.0
RETRY_AFTER_FLOOR = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Literal["ok", "retry", "refused"]
    error: str | None = None  # for last_error and logs: never a URL or a secret
    retry_after: float | None = None
    status: int | None = None


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: the receiver's Retry-After, else 2, 4, 8… s."""
    if retry_after is not None:  # at least a second: "Retry-After: 0" must not mean a hot loop
        return min(max(retry_after, RETRY_AFTER_FLOOR), RETRY_AFTER_CAP)
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(attempts - 1, 0)))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header: seconds, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def classify(status: int, retry_after: float | None = None) -> Answer:
    if 200 <= status < 300:
        return Answer("ok", status=status)
    if status in (408, 429) or status >= 500:
        return Answer("retry", f"HTTP {status}", retry_after, status)
    if 300 <= status < 400:
        return Answer("refused", f"HTTP {status}: a redirect, not followed", status=status)
    return Answer("refused", f"HTTP {status}", status=status)


def post_events(
    client: httpx.Client,
    target: NotifyTarget,
    payloads: Sequence[Mapping[str, Any]],
    *,
    batch_id: str,
    now: datetime,
) -> Answer:
    """One request to the target; the answer classified (no retries here)."""
    secret = target.secret.get_secret_value() if target.secret is not None else None
    body, headers = request_for(payloads, batch_id=batch_id, fmt=target.format, secret=secret)
    url = target.url.get_secret_value()
    try:
        # Only the status and Retry-After count: the answer's body is never read (one that
        # cannot be decoded, or a huge one, must not turn an accepted event into a failure).
        with client.stream(
            "POST", url, content=body, headers=headers, timeout=target.timeout
        ) as response:
            status, retry_after = response.status_code, response.headers.get("Retry-After")
    except httpx.TimeoutException:
        return Answer("retry", f"no answer within {target.timeout:g} s (timeout)")
    except httpx.TransportError as exc:
        return Answer("retry", f"connection failed ({type(exc).__name__})")
    return classify(status, retry_after_seconds(retry_after, now))


def send_test_events(targets: Sequence[NotifyTarget]) -> list[tuple[str, Answer]]:
    """``inventory notify test``: a ``notify.test`` event to each target, no outbox, no retry."""

    answers = []
    with httpx.Client(follow_redirects=False, verify=ssl_verify(True)) as client:
        for target in targets:
            now = datetime.now(UTC)
            event = new_event("notify.test", ("", None), run_id=None, at=now)
            answer = post_events(client, target, [event.payload], batch_id=event.id, now=now)
            answers.append((target.name, answer))
    return answers
