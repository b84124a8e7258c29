"""The benchmark workloads: simulator shapes with a fixed seed, and the limiter cases."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WORKLOADS", "LimiterCase", "Workload"]


@dataclass(frozen=True)
class Workload:
    name: str
    accounts: int
    portals: int  # per account
    servers: int  # the shared pool portals draw from, per account
    servers_per_portal: int
    tools: int  # per server
    prompts: int  # per server
    unattached: int  # servers in no portal, per account
    small_accounts: int  # the "fewer accounts" run of the peak-RSS check
    limiter: LimiterCase
    churn: float = 0.01  # fraction of entities the churn resync finds changed
    seed: int = 20_251

    def sim_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``SimulatedCloudflare`` for this shape."""
        return {
            "seed": self.seed,
            "accounts": self.accounts,
            "portals_per_account": self.portals,
            "servers_per_account": self.servers,
            "servers_per_portal": self.servers_per_portal,
            "tools_per_server": self.tools,
            "prompts_per_server": self.prompts,
            "unattached_per_account": self.unattached,
        }

    def min_requests(self, portals: int, servers: int, per_page: int = 100) -> int:
        """The fewest pages one account's two listings can take."""
        return math.ceil(portals / per_page) + math.ceil(servers / per_page)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LimiterCase:
    """Many accounts on one token against a simulator that enforces ``requests``/``period``.

    The limits are scaled down from Cloudflare's 1,200 / 300 s so that exceeding a window
    takes seconds, not five minutes; the mechanism under test is the same.
    """

    accounts: int
    portals: int
    servers: int
    requests: int
    period: float
    syncs: int  # back-to-back syncs, each with a fresh client (like separate cron runs)

    def sim_kwargs(self, seed: int) -> dict[str, Any]:
        return {
            "seed": seed,
            "accounts": self.accounts,
            "portals_per_account": self.portals,
            "servers_per_account": self.servers,
            "servers_per_portal": 2,
            "tools_per_server": 2,
            "prompts_per_server": 1,
            "unattached_per_account": 1,
            "rate_limit": (self.requests, self.period),
        }


WORKLOADS: dict[str, Workload] = {
    "S": Workload(
        name="S",
        accounts=3,
        portals=20,
        servers=30,
        servers_per_portal=5,
        tools=25,
        prompts=5,
        unattached=5,
        small_accounts=1,
        limiter=LimiterCase(accounts=50, portals=2, servers=3, requests=50, period=3.0, syncs=2),
    ),
    "L": Workload(
        name="L",
        accounts=50,
        portals=200,
        servers=300,
        servers_per_portal=5,
        tools=25,
        prompts=5,
        unattached=50,
        small_accounts=5,
        limiter=LimiterCase(accounts=50, portals=2, servers=3, requests=60, period=15.0, syncs=2),
    ),
    # L's account shape on 25 accounts: before/after comparisons with phases of about a minute.
    "H": Workload(
        name="H",
        accounts=25,
        portals=200,
        servers=300,
        servers_per_portal=5,
        tools=25,
        prompts=5,
        unattached=50,
        small_accounts=5,
        limiter=LimiterCase(accounts=50, portals=2, servers=3, requests=50, period=3.0, syncs=2),
    ),
    # L's account shape on 5 accounts: L's per-account ratios in a tenth of the time.
    "M": Workload(
        name="M",
        accounts=5,
        portals=200,
        servers=300,
        servers_per_portal=5,
        tools=25,
        prompts=5,
        unattached=50,
        small_accounts=4,
        limiter=LimiterCase(accounts=50, portals=2, servers=3, requests=50, period=3.0, syncs=2),
    ),
    # For the smoke test only: the whole code path in a few seconds.
    "tiny": Workload(
        name="tiny",
        accounts=2,
        portals=3,
        servers=4,
        servers_per_portal=2,
        tools=2,
        prompts=1,
        unattached=1,
        small_accounts=1,
        limiter=LimiterCase(accounts=4, portals=1, servers=1, requests=8, period=1.0, syncs=2),
        churn=0.2,
    ),
}
