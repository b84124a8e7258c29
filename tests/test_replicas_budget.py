"""Three `inventory run` replicas, one PostgreSQL, one token shared by many accounts, and a
simulator that enforces the token's budget the way Cloudflare does (over it: 429 and blocked).

Over several cycles: not one 429, every account synced every cycle, and each cycle's requests
sent in no more than 1.1 x (requests - budget) / (budget per second) after the first burst.
One replica SIGKILLed mid-cycle, holding slots: the others stay within the budget, and have all
of it again once the dead replica's reservation has run out (one window and three holds).
More accounts than the budget covers in a cycle: each synced within the issue's bound.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from benchmarks.replicas_budget import densest
from inventory.db.engine import make_engine
from inventory.simulator import SimulatedCloudflare
from inventory.simulator.server import serve_in_thread
from tests.support.daemon import Daemon, daemon_env, free_port, runs, wait_until
from tests.support.db import fresh_pg_database, require_pg

pytestmark = pytest.mark.slow

ACCOUNTS = 24
BUDGET, WINDOW = 16, 5.0  # Cloudflare's 1,200 per 300 s, scaled down
REQUESTS_PER_SYNC = 2  # portals and servers, one page each
# A cycle's 48 requests take three windows (four when it starts with part of the budget spent);
# then the budget refills before the next cycle.
INTERVAL = 25.0
CYCLES = 2  # fresh cycles measured (3 cost CI 25 s more and measured nothing new)


@pytest.mark.timeout(600)
def test_three_replicas_spend_one_budget_without_a_429(tmp_path: Path) -> None:
    require_pg()
    sim = SimulatedCloudflare(
        seed=7,
        accounts=ACCOUNTS,
        portals_per_account=2,
        servers_per_account=3,
        unattached_per_account=1,
        rate_limit=(BUDGET, WINDOW),
    )
    with serve_in_thread(sim) as api_url, fresh_pg_database() as url:
        engine = make_engine(url)
        try:
            run(sim, api_url, url, tmp_path, engine)
        finally:
            engine.dispose()


def run(sim: SimulatedCloudflare, api_url: str, url: str, tmp_path: Path, engine: Engine) -> None:
    base = daemon_env(
        sim,
        api_url,
        url,
        tmp_path,
        sync_interval=INTERVAL,
        max_concurrency=3,
        rate_limit_requests=BUDGET,
        rate_limit_period=WINDOW,
        log_level="info",
    )
    replicas = [
        Daemon({**base, "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}, tmp_path)
        for _ in range(3)
    ]
    try:
        for replica in replicas:
            replica.wait_serving(timeout=60)
        wait_until(lambda: all_synced(engine, sim), timeout=6.5 * INTERVAL, every=0.2)
        first = math.floor(time.time() / INTERVAL) + 1
        last = first + CYCLES - 1
        # The cycle after the last one done too: nothing runs until the one after it.
        wait_until(
            lambda: cycle_done(engine, sim, last + 1), timeout=(CYCLES + 3) * INTERVAL, every=0.2
        )
        metrics = [replica.get("/metrics")[1] for replica in replicas]
        for replica in replicas:
            assert replica.stop() == 0, replica.output()
    finally:
        for replica in replicas:
            replica.close()

    records = sorted(sim.requests, key=lambda r: r.time)
    assert [r for r in records if r.status == 429] == [], "the shared budget was overspent"
    rows = runs(engine)
    rate = BUDGET / WINDOW
    fresh = 0
    for cycle in range(first, last + 1):
        start, end = cycle * INTERVAL, (cycle + 1) * INTERVAL
        synced = {
            r.account_id
            for r in rows
            if start <= r.started_at.timestamp() < end and r.status == "succeeded"
        }
        assert synced == set(sim.account_ids), f"cycle {cycle}: not every account synced"
        times = [r.time for r in records if start <= r.time < end]
        extra = Counter(
            (r.account_id, r.endpoint, r.page, r.entity_id, r.status)
            for r in records
            if start <= r.time < end
        )
        assert len(times) == ACCOUNTS * REQUESTS_PER_SYNC, (
            f"cycle {cycle}: {[(k, v) for k, v in extra.items() if v > 1 or k[2] != 1]}"
        )
        before = [r.time for r in records if r.time < start]
        if before and times[0] - before[-1] < 1.1 * WINDOW:
            continue  # the cycle did not start with a full budget: no first burst to time
        fresh += 1
        after_burst = times[-1] - times[BUDGET - 1]
        bound = 1.1 * (len(times) - BUDGET) / rate
        offsets = " ".join(f"{t - times[0]:.2f}" for t in times)
        assert after_burst <= bound, (
            f"cycle {cycle}: {after_burst:.2f} s > {bound:.2f} s: {offsets}"
        )
    assert fresh >= CYCLES - 1, "too few cycles started with a full budget"
    # Every replica counts the credential's requests and 429s (none) under its fingerprint.
    assert all('inventory_credential_rate_limited_total{credential="' in m for m in metrics)
    assert not any(sim.api_token in m for m in metrics)
    sent = sum(_sample(m, "inventory_credential_requests_total") for m in metrics)
    assert sent == len(records)
    assert sum(_sample(m, "inventory_credential_rate_limited_total") for m in metrics) == 0


KILL_ACCOUNTS = 40  # 80 requests: five windows of 16, so the survivors have work left after one
HOLD = min(1.0, WINDOW / 50)  # SharedRateLimiter's default
SPAN = WINDOW + 3 * HOLD  # how long a reservation counts at most (SharedRateLimiter)


@pytest.mark.timeout(900)
def test_a_replica_killed_mid_cycle_leaves_the_budget_to_the_others(tmp_path: Path) -> None:
    """Where the kill lands is up to the machine's timing: a kill late in the cycle can leave
    the survivors less than two spans of work, which proves nothing either way. So a trial that
    misses is played once more, afresh; the test fails when both miss (with both reasons).
    """
    require_pg()
    missed: list[str] = []
    for attempt in range(2):
        try:
            killed_trial(tmp_path / f"attempt-{attempt}")
            return
        except AssertionError as exc:
            missed.append(f"attempt {attempt + 1}: {exc}")
    raise AssertionError("\n".join(missed))


def killed_trial(tmp_path: Path) -> None:
    tmp_path.mkdir()
    sim = SimulatedCloudflare(
        seed=8,
        accounts=KILL_ACCOUNTS,
        portals_per_account=2,
        servers_per_account=3,
        unattached_per_account=1,
        rate_limit=(BUDGET, WINDOW),
    )
    with serve_in_thread(sim) as api_url, fresh_pg_database() as url:
        engine = make_engine(url)
        base = daemon_env(
            sim,
            api_url,
            url,
            tmp_path,
            sync_interval=3600,  # the start-up sync is the cycle: nothing else runs
            max_concurrency=3,
            rate_limit_requests=BUDGET,
            rate_limit_period=WINDOW,
            log_level="info",
        )
        replicas = [
            Daemon({**base, "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}, tmp_path)
            for _ in range(3)
        ]
        victim, *survivors = replicas
        try:
            # Mid-cycle: every replica has a run going or done, the victim one going (so it is
            # waiting for slots or holding some: its requests are paced by the shared budget).
            wait_until(
                lambda: mid_cycle(engine, victim.pid, [r.pid for r in survivors]),
                timeout=120,
                every=0.05,
            )
            victim.proc.kill()
            killed = time.time()
            victim.wait()
            orphans = running_of(engine, victim.pid)
            wait_until(CycleOver(engine, sim, orphans), timeout=300, every=0.2)
        finally:
            for replica in replicas:
                replica.close()
            engine.dispose()

    times = sorted(r.time for r in sim.requests)
    assert [r for r in sim.requests if r.status == 429] == [], "the shared budget was overspent"
    assert densest(times, WINDOW) <= BUDGET
    # The victim's slots count until its reservation runs out, then the survivors have every
    # slot of the budget: in the next span they send a whole budget's worth.
    after = [t for t in times if killed + SPAN <= t <= killed + 2 * SPAN + 2 * HOLD]
    assert len(after) >= BUDGET, (
        f"{len(after)} requests in the span after the victim's reservation ran out; offsets "
        + " ".join(f"{t - killed:.2f}" for t in times if t >= killed)
    )
    assert times[-1] > killed + 2 * SPAN  # the survivors still had work then: a real test


# Accounts outnumber the budget: 10 accounts of one token need 20 requests a round, the budget
# allows 8 a cycle (8 per 2 s window, a 2 s interval), so each account must be synced at least
# once in every ceil(20 / 8) = 3 cycles (the accounts are taken oldest last success first, and
# their requests paced once they are overdue).
FAIR_ACCOUNTS, FAIR_BUDGET, FAIR_WINDOW, FAIR_INTERVAL = 10, 8, 2.0, 2
FAIR_BOUND = math.ceil(
    FAIR_ACCOUNTS * REQUESTS_PER_SYNC / (FAIR_BUDGET * FAIR_INTERVAL / FAIR_WINDOW)
)
FAIR_CYCLES = 8  # measured, once every account has been synced


@pytest.mark.timeout(600)
def test_accounts_beyond_the_budget_are_each_synced_within_the_bound(tmp_path: Path) -> None:
    require_pg()
    sim = SimulatedCloudflare(
        seed=9,
        accounts=FAIR_ACCOUNTS,
        portals_per_account=2,
        servers_per_account=3,
        unattached_per_account=1,
        rate_limit=(FAIR_BUDGET, FAIR_WINDOW),
    )
    with serve_in_thread(sim) as api_url, fresh_pg_database() as url:
        engine = make_engine(url)
        base = daemon_env(
            sim,
            api_url,
            url,
            tmp_path,
            sync_interval=FAIR_INTERVAL,
            max_concurrency=2,
            rate_limit_requests=FAIR_BUDGET,
            rate_limit_period=FAIR_WINDOW,
            log_level="info",
        )
        replicas = [
            Daemon({**base, "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}, tmp_path)
            for _ in range(2)
        ]
        try:
            wait_until(lambda: all_synced_once(engine, sim), timeout=120, every=0.2)
            first = math.floor(time.time() / FAIR_INTERVAL) + 1
            last = first + FAIR_CYCLES - 1
            wait_until(lambda: time.time() >= (last + 1) * FAIR_INTERVAL, timeout=120, every=0.2)
            rows = runs(engine)
        finally:
            for replica in replicas:
                replica.close()
            engine.dispose()

    assert [r for r in sim.requests if r.status == 429] == [], "the shared budget was overspent"
    synced: dict[str, list[int]] = {a: [] for a in sim.account_ids}
    for r in rows:
        if r.status == "succeeded" and r.finished_at is not None:
            synced[r.account_id].append(math.floor(r.finished_at.timestamp() / FAIR_INTERVAL))
    seen = {
        a[:6]: sorted(c - first for c in cycles if c >= first - 4) for a, cycles in synced.items()
    }
    # The budget was the bottleneck: fewer syncs than accounts x cycles.
    done = sum(1 for cycles in synced.values() for c in cycles if first <= c <= last)
    assert done < FAIR_ACCOUNTS * FAIR_CYCLES, seen
    # Every account synced in every stretch of FAIR_BOUND cycles (the bound). Measured
    # (docs/performance.md): no late (account, stretch) pair in 16 runs, 6 of them at a load
    # average of 4-7; the syncs come whole, 2 every half span (1.06 s), a round of the 10
    # accounts in 5.3 s of the 6 s.
    late = late_accounts(synced, first, last, FAIR_BOUND)
    assert not late, f"not every account within {FAIR_BOUND} cycles: {len(late)} late; {seen}"


def late_accounts(
    synced: dict[str, list[int]], first: int, last: int, bound: int
) -> set[tuple[str, int]]:
    """(account, cycle) for each stretch of ``bound`` cycles from ``cycle`` without its sync."""
    return {
        (account, start)
        for account, cycles in synced.items()
        for start in range(first, last - bound + 2)
        if not any(start <= c < start + bound for c in cycles)
    }


def all_synced_once(engine: Engine, sim: SimulatedCloudflare) -> bool:
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM accounts WHERE last_success_at IS NOT NULL")
        ).scalar_one()
    return bool(done == len(sim.account_ids))


def mid_cycle(engine: Engine, victim: int, others: list[int]) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT pid, status FROM sync_runs")).all()
    going = {pid for pid, status in rows if status == "running"}
    return victim in going and all(pid in {p for p, _ in rows} for pid in others)


def running_of(engine: Engine, pid: int) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT account_id FROM sync_runs WHERE pid = :pid AND status = 'running'"),
            {"pid": pid},
        ).all()
    return {str(a) for (a,) in rows}


class CycleOver:
    """Every account synced, but those the dead replica had, and no survivor busy.

    The dead replica's accounts: a run it left ``running`` (``orphans``), or an account whose
    lock it had taken and whose run it had not yet recorded when it died: the survivors skipped
    that one while it was locked, and the next cycle syncs it (docs/operations.md). Such an
    account has no run at all, so it is told apart by the survivors being idle for a while.
    """

    QUIET = 3.0  # seconds with no survivor's run going: they have nothing left in this cycle

    def __init__(self, engine: Engine, sim: SimulatedCloudflare, orphans: set[str]) -> None:
        self.engine, self.sim, self.orphans = engine, sim, orphans
        self.idle_since: float | None = None

    def __call__(self) -> bool:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT account_id, status FROM sync_runs")).all()
        done = {str(a) for a, status in rows if status == "succeeded"}
        if any(status == "running" and str(a) not in self.orphans for a, status in rows):
            self.idle_since = None
            return False
        if done | self.orphans == set(self.sim.account_ids):
            return True
        if self.idle_since is None:
            self.idle_since = time.monotonic()
        return time.monotonic() - self.idle_since >= self.QUIET


def all_synced(engine: Engine, sim: SimulatedCloudflare) -> bool:
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM accounts WHERE last_success_at IS NOT NULL")
        ).scalar_one()
        running = conn.execute(
            text("SELECT count(*) FROM sync_runs WHERE status = 'running'")
        ).scalar_one()
    return bool(done == len(sim.account_ids) and running == 0)


def cycle_done(engine: Engine, sim: SimulatedCloudflare, cycle: int) -> bool:
    done = {
        r.account_id
        for r in runs(engine)
        if r.status == "succeeded" and cycle * INTERVAL <= r.started_at.timestamp()
    }
    return done == set(sim.account_ids) and all_synced(engine, sim)


def _sample(exposition: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(name + "{")
    )
