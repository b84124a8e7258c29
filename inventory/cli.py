"""The ``inventory`` command line.

Exit codes: 0 success (an account skipped because another process syncs it, or superseded by a
later run, is not a failure); 1 an account failed (the others still synced); 2 configuration or
usage problem. A user's mistake gets one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from inventory.errors import ConfigError, InventoryError
from inventory.redaction import scrub_text
from inventory.sync.outcome import describe_error

__all__ = ["app", "main"]

app = typer.Typer(
    name="inventory",
    help="A SQL mirror, with history, of Cloudflare Zero Trust MCP portals across accounts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # even if someone turns them on: locals hold credentials
    # Plain click help: typer's rich help shows "<bool>" beside flags that take no value (and
    # importing rich for it costs start-up time).
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


def piped_width() -> int:
    """The width of output that is not a terminal: $COLUMNS, else 80."""
    import os

    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else 80


class _LazyConsole:
    """A rich Console made on first use: importing rich costs `--help` start-up time."""

    def __init__(self, *, stderr: bool) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)

    def _made(self) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # On a terminal rich follows its size (and $COLUMNS); piped, piped_width().
            width = None if stream.isatty() else piped_width()
            object.__setattr__(self, "_console", Console(stderr=self._stderr, width=width))
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._made(), name, value)


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


def fit_consoles() -> None:
    """Size the consoles for this invocation (the environment may differ from import time)."""
    for console in (out, err):
        # one not made yet reads piped_width() when it is (and rich stays unimported till then)
        if console._console is not None and not console.file.isatty():
            console.width = piped_width()


F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    from rich.markup import escape

    message = escape(scrub_text(message))  # "[[accounts]]" in a message is not markup
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    from rich.markup import escape

    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and an exit code."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except InventoryError as exc:
        fail(str(exc), 2)
    except Exception as exc:
        # Not `except SQLAlchemyError`: importing SQLAlchemy costs `config check` and `--help`
        # half a second. If it was never imported, no error can be one of its.
        sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
        if sqlalchemy_exc is None or not isinstance(exc, sqlalchemy_exc.SQLAlchemyError):
            raise
        fail(describe_error(exc), 1)


class Options:
    """Global options, passed on to the settings as the highest-priority source."""

    def __init__(self, overrides: dict[str, object], config: Path | None) -> None:
        self.overrides = overrides
        self.config = config

    def settings(self, *, require_accounts: bool = True, log_warnings: bool = True) -> Any:
        """Load the settings and configure logging; warnings are logged once, here.

        ``log_warnings=False``: a command that logs nothing and prints the warnings itself;
        logging is not configured (structlog is not even imported).
        """
        settings = self.load(require_accounts=require_accounts)
        if not log_warnings:  # the command shows them itself and logs nothing (start-up time)
            return settings
        from inventory.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        if log_warnings:
            import structlog

            log = structlog.get_logger("inventory.settings")
            for warning in settings.warnings:
                log.warning(warning)
        return settings

    def load(self, *, require_accounts: bool = True) -> Any:
        """The settings from every source, read afresh (the daemon's SIGHUP reads them again)."""
        import os

        from inventory.settings import load_settings

        return load_settings(
            overrides=self.overrides,
            environ=dict(os.environ),
            config=self.config,
            require_accounts=require_accounts,
        )


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"inventory {version('inventory')}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy database URL.", show_default=False)
    ] = None,
    api_base_url: Annotated[str | None, typer.Option(help="Cloudflare API base URL.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, json or console.")] = None,
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    overrides: dict[str, object] = {}
    for name, value in (
        ("database_url", database_url),
        ("api_base_url", api_base_url),
        ("log_level", log_level),
        ("log_format", log_format),
    ):
        if value is not None:
            overrides[name] = value
    ctx.obj = Options(overrides, config)
    fit_consoles()


def _engine(settings: Any) -> Any:
    from inventory.db.engine import make_engine

    return make_engine(settings.database_url_secret())


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the schema or bring it up to date."""
    from inventory.db.migrate import upgrade

    with user_errors():
        settings = ctx.obj.settings(require_accounts=False)
        engine = _engine(settings)
        before, after = upgrade(engine, revision)
        engine.dispose()
    if before == after:
        out.print(f"database already at revision {after}")
    else:
        out.print(f"database upgraded from {before or 'empty'} to {after}")


@db_app.command("merge-observations")
def db_merge_observations(
    ctx: typer.Context,
    apply: Annotated[
        bool, typer.Option("--apply", help="Merge; without it, only count (a dry run).")
    ] = False,
) -> None:
    """Merge consecutive server versions that differ only in last_synced/last_successful_sync
    (written before migration 0007); a dry run unless --apply."""
    from inventory.db.merge import merge_observation_versions
    from inventory.db.migrate import ensure_current

    with user_errors():
        engine = _engine(ctx.obj.settings(require_accounts=False))
        try:
            ensure_current(engine)
            with engine.begin() as conn:
                report = merge_observation_versions(conn, apply=apply)
        finally:
            engine.dispose()
    verb = "merged" if report.applied else "would merge"
    out.print(
        f"{report.versions} server versions read; {verb} {report.merged} into the version "
        f"before them, for {report.entities} servers"
        + ("" if report.applied or not report.merged else " (run again with --apply)")
    )


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the one this code needs."""
    from inventory.db.migrate import current_revision, head_revision

    with user_errors():
        engine = _engine(ctx.obj.settings(require_accounts=False))
        current = current_revision(engine)
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "behind: run `inventory db upgrade`"
    out.print(f"database: {current or 'empty'}  code: {head}  ({state})")


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the effective configuration, secrets redacted; exit 2 on any problem."""
    with user_errors():
        settings = ctx.obj.settings(log_warnings=False)
    for warning in settings.warnings:
        warn(warning)
    redacted = settings.redacted()
    if as_json:
        out.print_json(json.dumps(redacted, default=str))
        return
    from inventory.render import config_table

    out.print(config_table(redacted))
    out.print(f"[green]ok[/]: {len(settings.accounts)} account(s) configured")


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="Only this account, by id or name (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check the database and every account's credential before the first sync (exit 1 if any
    check fails)."""
    from inventory.doctor import doctor_lines, run_doctor

    with user_errors():
        settings = ctx.obj.settings()
        selected = _select_accounts(settings.accounts, account or [])
        checks = run_doctor(settings, selected)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        document = {"ok": not failed, "checks": [c.as_dict() for c in checks]}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        for line in doctor_lines(checks):
            out.print(line, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="Only this account, id or name (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """One pass over every configured account, then exit (1 if any account failed).

    An account another process is syncing right now is skipped (not a failure).
    """
    from inventory.render import results_json, results_summary
    from inventory.service import run_sync

    with user_errors():
        settings = ctx.obj.settings()
        selected = _select_accounts(settings.accounts, account or [])
        results = run_sync(
            settings, selected, all_accounts=not account, progress=err.is_terminal and not as_json
        )
    if as_json:
        sys.stdout.write(results_json(results) + "\n")
    else:
        for part in results_summary(results, width=out.width):
            out.print(part)
    raise typer.Exit(1 if any(r.failed for r in results) else 0)


def _select_accounts(accounts: list[Any], wanted: list[str]) -> list[Any]:
    """The configured accounts ``--account`` names, by id or name; an unknown one is exit 2."""
    from inventory.selection import KnownAccount, SelectionError, resolve_accounts

    if not wanted:
        return accounts
    by_id = {a.id: a for a in accounts}
    try:
        ids = resolve_accounts(wanted, [KnownAccount(a.id, a.name) for a in accounts])
    except SelectionError as exc:
        raise ConfigError(str(exc).replace("known account", "configured account")) from None
    return [by_id[i] for i in ids]


@app.command("simulate")
def simulate_command(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8787,
    seed: Annotated[int, typer.Option(help="Seed of the generated inventory.")] = 1,
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 3,
    portals: Annotated[int, typer.Option(help="Portals per account.")] = 5,
    advance_every: Annotated[
        float | None, typer.Option(help="Apply a step of changes every N seconds.")
    ] = None,
) -> None:
    """Serve a simulated Cloudflare API on 127.0.0.1 (for trying inventory without an account)."""
    from inventory.simulator import SimulatedCloudflare, serve_forever

    sim = SimulatedCloudflare(seed=seed, accounts=accounts, portals_per_account=portals)
    base = f"http://127.0.0.1:{port}/client/v4"
    out.print(f"simulated Cloudflare API at [bold]{base}[/]")
    out.print(
        f"token: {sim.api_token}  (or X-Auth-Email {sim.api_email}, X-Auth-Key {sim.api_key})"
    )
    out.print("accounts: " + ", ".join(sim.account_ids))
    out.print("try:")
    env = json.dumps([{"id": a, "api_token": sim.api_token} for a in sim.account_ids])
    out.print(
        f"  INVENTORY_API_BASE_URL={base} INVENTORY_ACCOUNTS='{env}' inventory sync",
        soft_wrap=True,
        highlight=False,
    )
    try:
        serve_forever(sim, port=port, advance_every=advance_every)
    except OSError as exc:
        fail(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}")


@app.command("demo")
def demo_command(
    cycles: Annotated[int, typer.Option(help="Sync cycles to run.")] = 3,
    database_url: Annotated[
        str | None,
        typer.Option(help="Where to keep the demo's data (default: a new inventory-demo.db)."),
    ] = None,
) -> None:
    """A first run: a simulated API, a few sync cycles, and what changed between them."""
    from inventory.demo import run_demo

    with user_errors():
        run_demo(out, cycles=cycles, database_url=database_url)


def _register_commands() -> None:
    from inventory.commands.daemon import register as register_daemon
    from inventory.commands.reports import register as register_reports

    register_daemon(app)
    register_reports(app)


_register_commands()


def main() -> None:
    # Logging is configured by whatever logs (the settings, the demo), not here: structlog costs
    # `--help` a tenth of a second at start-up. Nothing logs before that, but a crash might.
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:  # noqa: BLE001 - a bug: logged scrubbed, frames only, no locals
        import structlog

        from inventory.logs import configure_logging, logging_configured

        if not logging_configured():  # never structlog's defaults, which show locals
            configure_logging()
        structlog.get_logger("inventory").critical("inventory crashed", exc_info=True)
        sys.exit(1)
