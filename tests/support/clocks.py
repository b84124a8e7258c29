"""Fake clocks: time that moves only when told, so retry budgets and waits need no sleeping."""

from __future__ import annotations

import threading


class FakeClock:
    """A monotonic clock whose ``sleep`` returns at once, having moved time on (and noted it)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
