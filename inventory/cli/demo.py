"""``inventory demo``: the whole loop against the simulator, for a newcomer without an account."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import inspect, select

from inventory.cli.render import results_summary
from inventory.daemon.service import open_engine, run_sync
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.migrate import upgrade
from inventory.db.models import Account
from inventory.errors import ConfigError
from inventory.logs import configure_logging
from inventory.reports.plan import build_plan, referenced
from inventory.reports.plan_text import plan_lines
from inventory.reports.queries import entity_names, known_accounts, version_events
from inventory.settings import Settings, load_settings
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


def run_demo(
    console: Console,
    *,
    cycles: int = 3,
    database_url: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
) -> None:
    """The demo, from its own settings only (see ``demo_settings``).

    Nothing is written or removed before those settings load and the database is known to be
    the demo's own (``check_demo_database``); a problem is a ConfigError before then.
    """
    url = database_url or f"sqlite:///{DEFAULT_DB}"
    sim = SimulatedCloudflare(seed=7, accounts=2, portals_per_account=4)
    with serve_in_thread(sim) as base_url:
        settings = demo_settings(sim, base_url, url, log_level=log_level, log_format=log_format)
        path = sqlite_path(url)
        check_demo_database(settings, sim.account_ids, given=database_url is not None)
        if database_url is None and path is not None and path.exists():
            console.print(f"starting over: removing the previous demo database {path}")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        # The tables say what happened; per-account log lines would only interleave with them.
        configure_logging(
            settings.log_level if log_level is not None else "warning",
            settings.log_format if log_format is not None else "console",
        )
        console.rule("[bold]inventory demo")
        console.print(f"simulated Cloudflare API: {base_url}")
        # its password masked; one line, however long
        console.print(f"database: {settings.database_url}", highlight=False, soft_wrap=True)

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
    shown = shlex.quote(settings.database_url)  # its password masked
    console.print(
        f"Explore the data: {where}\n"
        + "".join(f"  {query}\n" for query in EXPLORE_SQL)
        + f"Or ask inventory: {command} --database-url {shown} changes --since 1h\n"
        f"                  {command} --database-url {shown} report in-error\n"
        + activation_hint()
        + f"Then point inventory at real accounts: see README.md, '{README_SECTION}', "
        f"and check them with `{command} doctor`.",
        highlight=False,
        soft_wrap=True,
    )


def demo_settings(
    sim: SimulatedCloudflare,
    base_url: str,
    database_url: str,
    *,
    log_level: str | None = None,
    log_format: str | None = None,
) -> Settings:
    """The demo's settings: its simulator's accounts, its database, and nothing of the user's.

    No ``inventory.toml``, ``.env``, ``INVENTORY_*`` variable or secrets directory is read: a
    demo never sends its made-up events to a real ``[[notify]]`` target, nor syncs into a
    configured database.
    """
    overrides = {
        "api_base_url": base_url,
        "database_url": database_url,
        "accounts": [
            {"id": account_id, "name": f"demo-{i}", "api_token": sim.api_token}
            for i, account_id in enumerate(sim.account_ids, start=1)
        ],
        "log_level": log_level,
        "log_format": log_format,
    }
    return load_settings(overrides=overrides, environ={}, cwd=Path.cwd(), files=False)


def check_demo_database(settings: Settings, account_ids: Sequence[str], *, given: bool) -> None:
    """Refuse (ConfigError) a database that is not the demo's: one holding tables but not
    inventory's, or accounts other than ``account_ids``. A SQLite file that does not exist yet
    is the demo's. Reads only: nothing is created or changed here.
    """
    path = sqlite_path(settings.database_url_secret())
    if path is not None and not path.exists():
        return
    engine = make_engine(settings.database_url_secret(), read_only=True)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if not tables:
                return
            ours = {"accounts", "alembic_version"} <= tables
            ids = conn.execute(select(Account.id)).scalars().all() if ours else []
    finally:
        engine.dispose()
    others = [account for account in ids if account not in account_ids]
    if ours and not others:
        return
    what = (
        f"it holds {len(others)} account{'s' if len(others) > 1 else ''} the demo did not make"
        if ours
        else "it holds tables but is not an inventory database"
    )
    if given:
        raise ConfigError(
            f"--database-url {settings.database_url} is not a demo database ({what}): the demo "
            "syncs only into a new database or one an earlier demo made"
        )
    raise ConfigError(
        f"{path} is not a demo database ({what}), and the demo starts over by removing it: "
        "move it away, or give the demo another --database-url"
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
