"""Helpers shared by the reliability suites: snapshots, run rows, fresh-sync references."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.db.tables import TABLES
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare, serve_in_thread
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.daemon import free_port
from tests.support.settings import settings_for

__all__ = [
    "CURRENT_TABLES",
    "ENTITY_TABLES",
    "Clock",
    "account_snapshot",
    "content_state",
    "fresh_state",
    "run_row",
    "small_sim",
    "snapshot",
    "syncer_for",
]

ENTITY_TABLES = [t for spec in TABLES.values() for t in (spec.current.name, spec.history.name)]
CURRENT_TABLES = [spec.current.name for spec in TABLES.values()]
Rows = dict[str, list[tuple[Any, ...]]]


class Clock:
    """Each call is a second later: versions are distinct and predictable."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def small_sim(**kwargs: Any) -> SimulatedCloudflare:
    """Three accounts, a few pages each at page_size=2: quick, yet every listing is paged."""
    shape: dict[str, Any] = {
        "seed": 11,
        "accounts": 3,
        "portals_per_account": 3,
        "servers_per_account": 4,
        "servers_per_portal": 2,
        "tools_per_server": 2,
        "prompts_per_server": 1,
        "unattached_per_account": 1,
    }
    shape.update(kwargs)
    return SimulatedCloudflare(**shape)


def snapshot(engine: Engine, account_id: str | None = None) -> Rows:
    """Every row of every entity table (optionally of one account), ordered by key."""
    rows: Rows = {}
    with engine.connect() as conn:
        for name in ENTITY_TABLES:
            table = models.Base.metadata.tables[name]
            query = select(table).order_by(*table.primary_key.columns)
            if account_id is not None:
                query = query.where(table.c.account_id == account_id)
            rows[name] = [tuple(r) for r in conn.execute(query)]
    return rows


def account_snapshot(engine: Engine, account_id: str) -> Rows:
    return snapshot(engine, account_id)


def content_state(engine: Engine, account_id: str | None = None) -> dict[str, set[tuple[Any, ...]]]:
    """What the current tables say, independent of when and by which run: keys + content hash.

    Equal across databases and across histories that ended in the same inventory.
    """
    state: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for kind, spec in TABLES.items():
            cols = [spec.current.c.account_id, *(spec.current.c[k] for k in spec.keys)]
            query = select(*cols, spec.current.c.content_hash)
            if account_id is not None:
                query = query.where(spec.current.c.account_id == account_id)
            state[kind] = {tuple(r) for r in conn.execute(query)}
    return state


def run_row(engine: Engine, run_id: int | None) -> dict[str, Any]:
    assert run_id is not None
    runs = models.table_of(models.SyncRun)
    with engine.connect() as conn:
        return dict(conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one())


def runs_by_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM sync_runs GROUP BY status")).all()
    return {str(s): int(n) for s, n in rows}


@contextmanager
def syncer_for(
    engine: Engine, settings: Settings, *, clock: Clock | None = None
) -> Iterator[Syncer]:
    with open_client(settings) as client:
        yield Syncer(
            engine=engine,
            client=client,
            per_page=settings.page_size,
            max_pages=settings.max_pages,
            confirm_threshold=settings.confirm_threshold,
            clock=clock or Clock(),
        )


def sync_all(syncer: Syncer, settings: Settings) -> list[AccountResult]:
    return syncer.sync_all(settings.accounts, max_concurrency=2)


def fresh_state(
    sim: SimulatedCloudflare, api_url: str, template: Path, workdir: Path
) -> dict[str, set[tuple[Any, ...]]]:
    """The current tables a clean sync of the simulator's present state into an empty DB gives."""
    path = workdir / f"fresh-{len(list(workdir.glob('fresh-*.db')))}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    settings = settings_for(sim, api_url, url, cwd=workdir, page_size=100)
    engine = make_engine(url)
    try:
        with syncer_for(engine, settings) as syncer:
            results = sync_all(syncer, settings)
        assert [r.status for r in results] == ["succeeded"] * len(results), results
        return content_state(engine)
    finally:
        engine.dispose()


# --- crash trials: kill -9 of `python -m inventory sync` at a seeded random moment ------------

KINDS_HISTORY = [(spec.current.name, spec.history.name, spec.keys) for spec in TABLES.values()]


def truncate_all(engine: Engine) -> None:
    """Empty every table (between crash trials on one PostgreSQL or SQLite database)."""
    with engine.begin() as conn:
        for table in reversed(models.Base.metadata.sorted_tables):
            conn.execute(table.delete())


def history_is_consistent(engine: Engine) -> bool:
    """Each current row is exactly the one open version of its key, and nothing else is open."""
    with engine.connect() as conn:
        for current, history, keys in KINDS_HISTORY:
            cols = ", ".join(["account_id", *keys, "content_hash", "run_id"])
            now = set(conn.execute(text(f"SELECT {cols} FROM {current}")).all())
            open_ = conn.execute(text(f"SELECT {cols} FROM {history} WHERE valid_to IS NULL")).all()
            if len(open_) != len(set(open_)) or set(open_) != now:
                return False
    return True


def by_account(state: dict[str, set[tuple[Any, ...]]], account_id: str) -> dict[str, set[Any]]:
    return {kind: {r for r in rows if r[0] == account_id} for kind, rows in state.items()}


@dataclass
class CrashOutcome:
    seed: int
    kill_after: float
    exit_code: int  # -9 when killed, 0/1 when the sync finished first
    states: dict[str, str]  # account -> "before" | "after" (which clean sync it equals)
    left_running: int
    abandoned: int


def _cli_env(sim: SimulatedCloudflare, api_url: str, db_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    accounts = [{"id": a, "api_token": sim.api_token} for a in sim.account_ids]
    return {
        **base,
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(accounts),
        "INVENTORY_PAGE_SIZE": "2",
        "INVENTORY_MAX_CONCURRENCY": "2",
        "INVENTORY_LOG_FORMAT": "json",
    }


def _wait_for_request(sim: SimulatedCloudflare, seen: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the simulator has served a request past the first ``seen`` (or the process ended)."""
    deadline = time.monotonic() + 60
    while len(sim.requests) <= seen and proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("the victim made no request within 60 s")
        time.sleep(0.005)


def crash_trial(
    seed: int, db_url: str, template: Path, workdir: Path, *, command: str = "sync"
) -> CrashOutcome:
    """One trial on an empty, migrated database; raises AssertionError on a broken promise.

    ``command`` is what gets killed: ``sync`` (the one-shot) or ``run`` (the daemon, whose
    start-up sync is under way or done when the kill comes)."""
    rng = random.Random(f"crash-trial:{seed}")
    sim = small_sim(seed=100 + seed)
    engine = make_engine(db_url)
    try:
        with serve_in_thread(sim) as api_url:
            env = _cli_env(sim, api_url, db_url)
            settings = settings_for(sim, api_url, db_url, cwd=workdir, page_size=2)
            with syncer_for(engine, settings) as syncer:
                assert {r.status for r in sync_all(syncer, settings)} == {"succeeded"}
            before = fresh_state(sim, api_url, template, workdir)
            assert content_state(engine) == before
            sim.advance(rng.randint(3, 8))
            after = fresh_state(sim, api_url, template, workdir)
            slow = sim.faults.add(Fault(kind="delay", seconds=0.08))  # ~0.4 s per account
            # Counted from the victim's first request, not from its start: a loaded machine
            # can take seconds to import and migrate, and a kill then proves nothing.
            kill_after = rng.uniform(0.0, 1.4)
            seen = len(sim.requests)
            victim = env
            if command == "run":
                victim = {
                    **env,
                    "INVENTORY_SYNC_INTERVAL": "1h",
                    "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
                }
            proc = subprocess.Popen(
                [sys.executable, "-m", "inventory", command],
                env=victim,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for_request(sim, seen, proc)
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            sim.faults.remove(slow)
            states: dict[str, str] = {}
            for account in sim.account_ids:
                stored = by_account(content_state(engine, account), account)
                if stored == by_account(after, account):
                    states[account] = "after"
                elif stored == by_account(before, account):
                    states[account] = "before"
                else:
                    raise AssertionError(f"seed {seed}: account {account} matches no clean sync")
            assert history_is_consistent(engine), f"seed {seed}: history is inconsistent"
            with engine.connect() as conn:
                running = [
                    int(i)
                    for (i,) in conn.execute(
                        text("SELECT id FROM sync_runs WHERE status='running'")
                    )
                ]
            done = subprocess.run(
                [sys.executable, "-m", "inventory", "sync"],
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            with engine.connect() as conn:
                statuses: dict[int, str] = {
                    int(i): str(st)
                    for i, st in conn.execute(text("SELECT id, status FROM sync_runs"))
                }
            assert "running" not in statuses.values(), f"seed {seed}: a run is still running"
            assert all(statuses[i] == "abandoned" for i in running), statuses
            assert content_state(engine) == after, f"seed {seed}: did not converge"
            assert history_is_consistent(engine)
            return CrashOutcome(
                seed=seed,
                kill_after=kill_after,
                exit_code=proc.returncode,
                states=states,
                left_running=len(running),
                abandoned=sum(1 for s in statuses.values() if s == "abandoned"),
            )
    finally:
        engine.dispose()
