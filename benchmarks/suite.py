"""The benchmark run: one simulator process, each phase in its own measured process.

Order (the floors measured in the same run, on the same data): warm-up fetch, floor (a),
initial sync per database, floor (b) per database, the fewer-accounts initial sync per
database (peak-RSS check), floor (a) again, unchanged resync, [the dlt peer's initial load and
unchanged resync], 1 % churn, resync, [the dlt peer's resync], Cloudflare re-syncing every
server and the resync after it (observations moved). Then the limiter benchmark against a
simulator that enforces its rate limit and, on PostgreSQL, three replicas spending that
limiter case's budget together (``benchmarks/replicas_budget.py``).
"""

from __future__ import annotations

import os
import platform
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import replicas_budget
from benchmarks.databases import PG_ADMIN_URL, Databases, pg_writes
from benchmarks.peer import Peer
from benchmarks.phase import run_phase
from benchmarks.simhost import SimHost
from benchmarks.workloads import WORKLOADS, LimiterCase, Workload

__all__ = ["BOOKKEEPING", "machine", "run_replicas_budget", "run_suite"]

BOOKKEEPING = frozenset({"accounts", "sync_runs", "rejected_records", "alembic_version"})
Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)  # progress shows even when stdout is a file


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        info["cpu"] = models[0].split(":", 1)[1].strip() if models else None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = next(
            line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal")
        )
        info["memory_gb"] = round(int(total.split()[1]) / 1024 / 1024, 1)
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    except psycopg.OperationalError:
        info["postgresql"] = None
    return info


class _Run:
    """Shared state of one run: the simulator, the databases, a scratch directory."""

    def __init__(self, sim: SimHost, databases: Databases, *, concurrency: int, log: Log) -> None:
        self.sim, self.databases, self.log = sim, databases, log
        self.concurrency = concurrency

    def spec(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "api_url": self.sim.url,
            "token": self.sim.token,
            "accounts": self.sim.accounts,
            "max_concurrency": self.concurrency,
            "per_page": 100,
            "db_url": "",
            **extra,
        }

    def measure(
        self, label: str, spec: dict[str, Any], *, command: list[str] | None = None
    ) -> dict[str, Any]:
        url = spec["db_url"]
        pg = url.startswith("postgresql")
        before = pg_writes(url) if pg else {}
        self.sim.call("reset")
        result = run_phase(spec, workdir=self.databases.tmp, command=command)
        served = self.sim.call("requests")
        result["requests"] = served["total"]
        result["requests_by_status"] = served["by_status"]
        if pg:
            after = pg_writes(url)
            by_table = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
            result["writes_by_table"] = by_table
            result["rows_written"] = sum(by_table.values())
        else:
            result["writes_by_table"] = {
                t: n for t, n in result.get("rowcount_by_table", {}).items() if n
            }
            result["rows_written"] = result.get("sqlite_changes")
        tables = result["writes_by_table"]
        result["entity_rows"] = sum(n for t, n in tables.items() if t not in BOOKKEEPING)
        result["bookkeeping_rows"] = sum(n for t, n in tables.items() if t in BOOKKEEPING)
        if not pg and result["rows_written"] is not None:
            # rowcount misses SQLite's INSERT … RETURNING (the run row); total_changes does not
            result["bookkeeping_rows"] = result["rows_written"] - result["entity_rows"]
        self.log(
            f"  {label:<28} {result['wall_s']:8.2f} s  rows {result.get('rows_written')!s:>9}  "
            f"requests {result['requests']:>5}  peak RSS {result['rss_peak_mb']:7.1f} MB"
        )
        return result


def run_suite(
    workload: Workload,
    dbs: list[str],
    *,
    concurrency: int = 4,
    peer: Peer | None = None,
    log: Log = _print,
) -> dict[str, Any]:
    started = time.monotonic()
    out: dict[str, Any] = {
        "machine": machine(),
        "workload": workload.as_json(),
        "concurrency": concurrency,
        "dbs": {db: {} for db in dbs},
    }
    with Databases() as databases, SimHost(workload.sim_kwargs()) as sim:
        run = _Run(sim, databases, concurrency=concurrency, log=log)
        counts = sim.call("counts")
        out["entities"] = counts
        out["min_requests"] = sum(
            workload.min_requests(c["portals"], c["servers"]) for c in counts.values()
        )
        small = sim.accounts[: workload.small_accounts]
        out["min_requests_small"] = sum(
            workload.min_requests(counts[a]["portals"], counts[a]["servers"]) for a in small
        )
        log(f"workload {workload.name}: {len(sim.accounts)} accounts, simulator at {sim.url}")
        run_phase(run.spec("floor_fetch"), workdir=databases.tmp)  # warm the simulator's caches
        floor_a = [run.measure("floor (a) fetch + parse", run.spec("floor_fetch"))]
        main = {db: databases.fresh(db, "main") for db in dbs}
        for db in dbs:
            out["dbs"][db]["initial"] = run.measure(
                f"[{db}] initial sync", run.spec("sync", db_url=main[db])
            )
        for db in dbs:
            target = databases.fresh(db, "floor")
            out["dbs"][db]["floor_b"] = run.measure(
                f"[{db}] floor (b) executemany",
                run.spec("floor_insert", db_url=target, source_url=main[db]),
            )
            databases.drop(target)
        for db in dbs:
            target = databases.fresh(db, "few")
            out["dbs"][db]["initial_few"] = run.measure(
                f"[{db}] initial, {len(small)} accounts",
                run.spec("sync", db_url=target, accounts=small),
            )
            databases.drop(target)
        floor_a.append(run.measure("floor (a) again", run.spec("floor_fetch")))
        for db in dbs:
            out["dbs"][db]["unchanged"] = run.measure(
                f"[{db}] unchanged resync", run.spec("sync", db_url=main[db])
            )
        if peer is not None:
            peer.before_churn(run, dbs)
        out["churned"] = sim.call("churn", fraction=workload.churn)["changed"]
        log(f"  churn {workload.churn:.0%}: {out['churned']} entities changed in the simulator")
        for db in dbs:
            out["dbs"][db]["churn"] = run.measure(
                f"[{db}] resync after churn", run.spec("sync", db_url=main[db])
            )
        if peer is not None:
            peer.after_churn(run, dbs)
            out["peer"] = peer.figures
        out["resynced"] = sim.call("resync")["servers"]
        log(f"  Cloudflare re-synced {out['resynced']} servers: last_synced moved on every one")
        for db in dbs:
            out["dbs"][db]["observed"] = run.measure(
                f"[{db}] observations moved", run.spec("sync", db_url=main[db])
            )
        out["floor_a_runs"] = floor_a
        out["floor_a"] = min(floor_a, key=lambda r: float(r["wall_s"]))
    out["limiter"] = run_limiter(workload.limiter, seed=workload.seed, log=log)
    if "postgresql" in dbs:
        out["replicas_budget"] = run_replicas_budget(workload.name, log=log)
    out["total_s"] = time.monotonic() - started
    return out


def run_replicas_budget(workload: str, *, log: Log = _print) -> dict[str, Any]:
    """The limiter case again, with three replicas on one PostgreSQL sharing the budget."""
    case = WORKLOADS[workload].limiter
    log(
        f"replicas: 3 replicas on one PostgreSQL, {case.accounts} accounts on one token, "
        f"limit {case.requests} requests / {case.period:g} s"
    )
    figures = replicas_budget.measure(workload, replicas=3, syncs=2)
    for row in figures["rows"]:
        log(
            f"  sync {row['sync']}: {row['requests']} requests, {row['429']} responses 429, "
            f"at most {row['densest_window']} in one window, {row['first_to_last_s']} s "
            f"first to last (least possible {row['least_possible_s']:g} s)"
        )
    return figures


def run_limiter(case: LimiterCase, *, seed: int, log: Log = _print) -> dict[str, Any]:
    """Many accounts on one token; the simulator answers 429 past ``requests`` per ``period``."""
    log(
        f"limiter: {case.accounts} accounts on one token, {case.syncs} back-to-back syncs, "
        f"limit {case.requests} requests / {case.period:g} s enforced by the simulator"
    )
    with Databases() as databases, SimHost(case.sim_kwargs(seed)) as sim:
        run = _Run(sim, databases, concurrency=4, log=log)
        spec = run.spec(
            "sync",
            db_url=databases.fresh("sqlite", "limiter"),
            rate_limit=[case.requests, case.period],
            syncs=case.syncs,
        )
        result = run.measure("limiter syncs", spec)
        served = sim.call("requests", times=True)
    ok_times = [t for t, status in served["times"] if status != 429]
    total = served["total"]
    first = min((t for t, _ in served["times"]), default=0.0)
    result.update(
        case=case.__dict__,
        timeline=[[round(t - first, 3), status] for t, status in served["times"]],
        too_many_requests=served["by_status"].get("429", 0),
        max_in_window=replicas_budget.densest(sorted(ok_times), case.period),
        # the fastest any client may go: every full window but the last must be waited out
        min_wall_s=max(0, -(-total // case.requests) - 1) * case.period,
    )
    log(
        f"  429 responses: {result['too_many_requests']}; most requests in any "
        f"{case.period:g} s window: {result['max_in_window']} (limit {case.requests})"
    )
    return result
