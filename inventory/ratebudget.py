"""The shared rate-limit budget's interface: what a limiter asks, what a store grants.

``inventory.cloudflare.shared_budget.SharedRateLimiter`` asks; ``inventory.db.budget`` keeps the
window in PostgreSQL. Both import these plain types from the core, so neither the HTTP layer nor
the database layer imports the other (the layers contract in pyproject.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["BudgetAsk", "BudgetGrant", "BudgetStore"]


@dataclass(frozen=True)
class BudgetAsk:
    """One batch asked of the shared budget, with what the server said since the last batch."""

    slots: int  # how many slots are wanted (fewer may be granted)
    limit: int  # the credential's budget per window
    span: float  # seconds a granted slot stays counted: the window, plus the time to send it
    server_used: int = 0  # the server's count of the window's requests, if it said so ...
    server_used_age: float = 0.0  # ... this many seconds ago
    blocked_for: float = 0.0  # seconds the server said it blocks the credential
    give_back: int = 0  # slots of an earlier grant that were never used ...
    window: object = None  # ... in this window (``BudgetGrant.window``)
    waiter: str = ""  # the asker's id: requests left wanting wait, the oldest served first ...
    ranks: tuple[float, ...] = ()  # ... by rank (lowest first): those this batch is for ...
    waiter_for: float = 0.0  # ... for this many seconds, unless their process asks again
    paced: bool = False  # the asker is behind: at most half the budget per half span, in
    # whole shares (two slots of ``ranks`` each), or what it gives back now


@dataclass(frozen=True)
class BudgetGrant:
    slots: int  # granted now (0: none left)
    used: int  # slots of the window in use, all replicas together
    wait: float  # with no slot granted: seconds until the window frees its slots
    window: object = None  # the store's name for the window the slots belong to


class BudgetStore(Protocol):
    """Where replicas keep each credential's window; ``inventory.db.budget`` implements it."""

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant: ...
