"""The full crash-trial count: kill -9 of `inventory sync` and `inventory run` at seeded moments.

    .venv/bin/python scripts/crash_trials.py    # 24 trials each: sync and run, on both databases
    .venv/bin/python scripts/crash_trials.py --command run --db postgresql
    .venv/bin/python scripts/crash_trials.py --trials 50 --first-seed 100 --db sqlite

Each trial syncs a simulated inventory, changes it, starts `python -m inventory sync` (or the
daemon, `run`, whose start-up sync is then under way) in a subprocess, kills it with SIGKILL
after a seeded random delay, then checks that every account
holds exactly what a clean sync of the old or of the new state gives, that the history is
consistent, that the next sync closes the runs left `running` as `abandoned`, and that it
converges. PostgreSQL comes from INVENTORY_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test);
it is skipped with a note when unreachable. Exit status 1 if any trial broke a promise.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import stamina  # noqa: E402

from inventory.db.engine import make_engine  # noqa: E402
from inventory.db.migrate import upgrade  # noqa: E402
from inventory.logs import configure_logging  # noqa: E402
from tests.support.faultkit import CrashOutcome, crash_trial, truncate_all  # noqa: E402

PG_ADMIN_URL = os.environ.get("INVENTORY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _run(
    name: str, db_url: str, seeds: range, template: Path, work: Path, command: str = "sync"
) -> int:
    failures = 0
    seen: collections.Counter[str] = collections.Counter()
    engine = make_engine(db_url)
    for seed in seeds:
        truncate_all(engine)
        trial_dir = work / f"{name.replace('/', '-')}-{seed}"
        trial_dir.mkdir()
        try:
            outcome: CrashOutcome = crash_trial(seed, db_url, template, trial_dir, command=command)
        except AssertionError as exc:
            failures += 1
            print(f"{name} seed {seed}: FAILED: {exc}", flush=True)
            continue
        killed = "killed" if outcome.exit_code == -9 else f"exited {outcome.exit_code}"
        states = collections.Counter(outcome.states.values())
        seen.update(["mid-sync" if outcome.left_running else "between/after"])
        print(
            f"{name} seed {seed}: {killed} after {outcome.kill_after:.2f} s; accounts "
            f"{dict(states)}; {outcome.left_running} run(s) left running, now abandoned: ok",
            flush=True,
        )
    engine.dispose()
    print(f"{name}: {len(seeds) - failures}/{len(seeds)} trials ok; kills {dict(seen)}")
    return failures


def _pg_database() -> tuple[str, psycopg.Connection[object]] | None:
    admin_url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL unreachable, skipped: {exc}".splitlines()[0])
        return None
    name = f"inventory_crash_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}", admin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--command", choices=["sync", "run", "both"], default="both")
    args = parser.parse_args()
    stamina.set_testing(True, attempts=100)  # the reference syncs in this process: no backoff
    configure_logging("error", "json")  # the trials' own lines are the report
    seeds = range(args.first_seed, args.first_seed + args.trials)
    commands = ["sync", "run"] if args.command == "both" else [args.command]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="crash-trials-") as tmp:
        work = Path(tmp)
        template = work / "template.db"
        engine = make_engine(f"sqlite:///{template}")
        upgrade(engine)
        engine.dispose()
        if args.db in ("sqlite", "both"):
            db = work / "trials.db"
            db.write_bytes(template.read_bytes())
            for command in commands:
                name = f"sqlite/{command}"
                failures += _run(name, f"sqlite:///{db}", seeds, template, work, command)
        if args.db in ("postgresql", "both") and (pg := _pg_database()) is not None:
            url, admin = pg
            try:
                engine = make_engine(url)
                upgrade(engine)
                engine.dispose()
                for command in commands:
                    failures += _run(f"postgresql/{command}", url, seeds, template, work, command)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
                admin.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
