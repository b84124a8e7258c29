"""What a response's headers say about the credential's rate-limit budget, and Retry-After."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["ServerBudget", "read_budget", "retry_after"]

_NUMBER = re.compile(r"\d{1,12}(?:\.\d{1,6})?")
# x-ratelimit-reset is seconds-to-go for some servers and an epoch timestamp for others.
_EPOCH_THRESHOLD = 1_000_000_000
_MANY = 1 << 62


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
