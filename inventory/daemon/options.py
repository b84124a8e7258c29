"""How ``inventory run`` was started: its command-line options."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DaemonOptions"]


@dataclass(frozen=True)
class DaemonOptions:
    upgrade: bool = False
    grace: float = 30.0  # seconds running syncs may take to finish after the first signal
    abort_wait: float = 10.0  # then seconds aborted syncs may take to notice and roll back
    ready_max_age: float | None = None  # default: three cycles
    jitter: float = 0.0  # random delay, per account and cycle, added to each scheduled start
    housekeeping: float = (
        60.0  # seconds between closing runs left behind (see DaemonJobs._close_runs)
    )
