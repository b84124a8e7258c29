"""``python -m benchmarks.replicas_budget [--workload S|L|tiny] [--replicas 3] [--syncs 2]``

Several replicas on one PostgreSQL spending one token's budget (the workload's limiter case:
many accounts on one token, the simulator enforcing a scaled-down Cloudflare limit: over it,
429 and the token blocked for a window). Each replica has its own engine, HTTP client and
limiter, as separate processes would; they take their slots from ``rate_limit_budgets``, and
the per-account advisory locks plus the cycle check give each account to one replica per sync.

Printed per sync: requests, 429 responses, the most requests the server saw in any window, the
seconds from the first request to the last, and the least any client can take against a
sliding window once its first burst spent the budget: request i goes no earlier than one window
after request i - budget, so the last one no earlier than floor((requests - 1) / budget)
windows after the first.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.databases import Databases, pg_available
from benchmarks.workloads import WORKLOADS
from inventory.cloudflare.client import CloudflareClient
from inventory.cloudflare.ratelimit import Limiter
from inventory.cloudflare.shared_budget import SharedRateLimiter
from inventory.db.budget import PostgresBudgetStore
from inventory.db.engine import make_engine
from inventory.db.locks import account_locks
from inventory.settings import AccountConfig
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from inventory.sync.syncer import Syncer

__all__ = ["densest", "main", "measure", "render"]


def _replica(
    url: str, db_url: str, accounts: list[AccountConfig], limit: tuple[int, float], start: datetime
) -> None:
    engine = make_engine(db_url, pool_size=8)
    store = PostgresBudgetStore(engine)

    def shared(key: str) -> Limiter:
        return SharedRateLimiter(store, key, requests=limit[0], period=limit[1])

    try:
        with CloudflareClient(base_url=url, limiter_factory=shared) as client:
            syncer = Syncer(engine=engine, client=client, locks=account_locks(engine))
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda a: syncer.sync_account(a, cycle_start=start), accounts))
    finally:
        engine.dispose()


def densest(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted) in any ``window`` seconds."""
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def measure(workload: str, replicas: int, syncs: int) -> dict[str, Any]:
    case = WORKLOADS[workload].limiter
    sim = SimulatedCloudflare(**case.sim_kwargs(WORKLOADS[workload].seed))
    accounts = [
        AccountConfig.model_validate({"id": a, "api_token": sim.api_token}) for a in sim.account_ids
    ]
    budget, window = case.requests, case.period
    rows = []
    databases = Databases()
    try:
        db_url = databases.fresh("postgresql", "replicas")
        with serve_in_thread(sim) as url:
            for n in range(syncs):
                sim.clear_requests()
                start = datetime.now(UTC)
                threads = [
                    threading.Thread(
                        target=_replica, args=(url, db_url, accounts, (budget, window), start)
                    )
                    for _ in range(replicas)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                times = sorted(r.time for r in sim.requests)
                statuses = [r.status for r in sim.requests]
                spread = times[-1] - times[0] if times else 0.0
                rows.append(
                    {
                        "sync": n + 1,
                        "requests": len(times),
                        "429": statuses.count(429),
                        "densest_window": densest(times, window),
                        "first_to_last_s": round(spread, 2),
                        "least_possible_s": (len(times) - 1) // budget * window,
                    }
                )
                # The next sync starts with a fresh window, like the next cycle of a daemon.
                time.sleep(window + 1)
    finally:
        databases.close()
    return {
        "workload": workload,
        "replicas": replicas,
        "accounts": case.accounts,
        "budget": budget,
        "window_s": window,
        "rows": rows,
    }


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"Workload {figures['workload']} limiter case: {figures['replicas']} replicas, "
        f"{figures['accounts']} accounts on one token, {figures['budget']} requests per "
        f"{figures['window_s']:g} s, PostgreSQL.",
        "",
        "| sync | requests | 429 | most in one window | s first to last request "
        "| least possible s |",
        "|---|---|---|---|---|---|",
    ]
    for r in figures["rows"]:
        lines.append(
            f"| {r['sync']} | {r['requests']} | {r['429']} | {r['densest_window']} | "
            f"{r['first_to_last_s']} | {r['least_possible_s']:g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.replicas_budget", description=__doc__
    )
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="L")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--syncs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if not pg_available():
        print("PostgreSQL is not reachable (INVENTORY_BENCH_PG_URL)")
        return 2
    figures = measure(args.workload, args.replicas, args.syncs)
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
