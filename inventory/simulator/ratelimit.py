"""Cloudflare-style rate limiting: a sliding window per credential, then a block for a window.

The window is always tracked so every response can carry realistic ``Ratelimit`` headers; it is
enforced (429) only when the simulator was given a ``rate_limit``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["DEFAULT_POLICY", "Quota", "RateLimiter"]

DEFAULT_POLICY = (1200, 300.0)  # Cloudflare's documented global limit: 1200 requests per 5 minutes


@dataclass(frozen=True)
class Quota:
    allowed: bool
    limit: int
    window: int
    remaining: int
    reset: int  # seconds until the window frees up (or the block ends)

    def headers(self, style: str = "ietf") -> list[tuple[str, str]]:
        """``ietf``: Cloudflare's ``Ratelimit``/``-Policy``; ``x``: ``x-ratelimit-*``; else none."""
        if style == "x":
            return [
                ("X-RateLimit-Limit", str(self.limit)),
                ("X-RateLimit-Remaining", str(self.remaining)),
                ("X-RateLimit-Reset", str(self.reset)),
            ]
        if style != "ietf":
            return []
        return [
            ("Ratelimit", f'"default";r={self.remaining};t={self.reset}'),
            ("Ratelimit-Policy", f'"default";q={self.limit};w={self.window}'),
        ]


class RateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def hit(self, credential: str, policy: tuple[int, float] | None) -> Quota:
        limit, window = policy or DEFAULT_POLICY
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(credential, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            blocked = self._blocked_until.get(credential, 0.0)
            if policy is not None and blocked > now:
                return Quota(False, limit, int(window), 0, math.ceil(blocked - now))
            if policy is not None and len(hits) >= limit:
                # like Cloudflare: once over the limit, blocked for a whole window
                self._blocked_until[credential] = now + window
                return Quota(False, limit, int(window), 0, math.ceil(window))
            hits.append(now)
            reset = math.ceil(hits[0] + window - now)
            return Quota(True, limit, int(window), max(0, limit - len(hits)), reset)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._blocked_until.clear()
