"""``inventory demo``: the whole loop against the simulator, for a newcomer without an account."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from inventory.cli.render import results_summary
from inventory.daemon.service import open_engine, run_sync
from inventory.db.engine import sqlite_path
from inventory.db.migrate import upgrade
from inventory.logs import configure_logging
from inventory.reports.plan import build_plan, referenced
from inventory.reports.plan_text import plan_lines
from inventory.reports.queries import entity_names, known_accounts, version_events
from inventory.settings import load_settings
from inventory.simulator import SimulatedCloudflare, serve_in_thread

__all__ = ["run_demo"]

DEFAULT_DB = "inventory-demo.db"  # `inventory demo --help` names it
README_SECTION = "Configuring real accounts"  # a heading of README.md; a test keeps them equal
EXPLORE_SQL = (
    "SELECT id, name, status FROM servers;",
    "SELECT id, status, valid_from, valid_to FROM servers_history ORDER BY id, valid_from;",
    "SELECT account_id, status, added, changed, removed FROM sync_runs;",
)


def _print_changes(console: Console, conn: Any, since: datetime, until: datetime) -> None:
    # What `inventory changes --since ... --until ...` prints.
    events = version_events(conn, since=since, until=until)
    names = entity_names(conn, referenced(events), until=until)
    account_names = {a.id: a.name for a in known_accounts(conn)}
    plan = build_plan(events, names=names, account_names=account_names)
    for line in plan_lines(plan, since=since, until=until):
        console.print(line)


def run_demo(console: Console, *, cycles: int = 3, database_url: str | None = None) -> None:
    url = database_url or f"sqlite:///{DEFAULT_DB}"
    path = sqlite_path(url)
    if database_url is None and path is not None and path.exists():
        console.print(f"starting over: removing the previous demo database {path}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    sim = SimulatedCloudflare(seed=7, accounts=2, portals_per_account=4)
    with serve_in_thread(sim) as base_url:
        environ = {
            "INVENTORY_API_BASE_URL": base_url,
            "INVENTORY_DATABASE_URL": url,
            "INVENTORY_ACCOUNTS": json.dumps(
                [
                    {"id": account_id, "name": f"demo-{i}", "api_token": sim.api_token}
                    for i, account_id in enumerate(sim.account_ids, start=1)
                ]
            ),
        }
        settings = load_settings(environ=environ, cwd=Path.cwd())
        # The tables say what happened; per-account log lines would only interleave with them.
        configure_logging("warning", "console")
        console.rule("[bold]inventory demo")
        console.print(f"simulated Cloudflare API: {base_url}")
        console.print(f"database: {url}")

        engine = open_engine(settings, check_schema=False)
        try:
            upgrade(engine)
            for cycle in range(1, cycles + 1):
                console.rule(f"cycle {cycle}")
                cycle_began = datetime.now(UTC)
                if cycle > 1:
                    for line in sim.advance(steps=4):
                        console.print(f"  the API changed: {line}", highlight=False)
                results = run_sync(settings, settings.accounts)
                for part in results_summary(results, width=console.width):
                    console.print(part)
                if cycle > 1:
                    with engine.connect() as conn:
                        _print_changes(console, conn, cycle_began, datetime.now(UTC))
        finally:
            engine.dispose()

    console.rule("next")
    where = f"sqlite3 {shlex.quote(str(path))}" if path is not None else "your database"
    command = invocation()
    console.print(
        f"Explore the data: {where}\n"
        + "".join(f"  {query}\n" for query in EXPLORE_SQL)
        + f"Or ask inventory: {command} --database-url {shlex.quote(url)} changes --since 1h\n"
        f"                  {command} --database-url {shlex.quote(url)} report in-error\n"
        + activation_hint()
        + f"Then point inventory at real accounts: see README.md, '{README_SECTION}', "
        f"and check them with `{command} doctor`.",
        highlight=False,
        soft_wrap=True,
    )


def invocation(argv0: str | None = None, *, path: str | None = None) -> str:
    """How to run this very ``inventory`` again from the current directory, as a shell word.

    ``inventory`` when that name on ``PATH`` is this program; else its path (relative when
    under the working directory, as ``.venv/bin/inventory`` after ``python3 dev.py demo``), or
    ``python -m inventory`` with this interpreter when it was started that way.
    """
    program = Path(argv0 if argv0 is not None else sys.argv[0])
    if program.stem != "inventory":  # python -m inventory
        return f"{_shown(Path(sys.executable))} -m inventory"
    found = shutil.which("inventory", path=path)
    if found is not None and Path(found).resolve() == program.resolve():
        return "inventory"
    return _shown(program)


def activation_hint(environ: dict[str, str] | None = None) -> str:
    """A line on activating the virtualenv this runs from, when it is not the active one."""
    env = os.environ if environ is None else environ
    if sys.prefix == sys.base_prefix or env.get("VIRTUAL_ENV") == sys.prefix:
        return ""
    activate = Path(sys.prefix) / "bin" / "activate"
    if not activate.is_file():
        return ""
    return (
        f"                  (or activate its virtualenv first: source {_shown(activate)}; "
        "then plain `inventory` works)\n"
    )


def _shown(path: Path) -> str:
    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(absolute))
    return shlex.quote(str(relative))
