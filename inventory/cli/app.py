"""The ``inventory`` application: the global options, the command groups, and ``main``.

Each group (inventory.cli.commands) imports what its commands use when they run, not at start-up:
``inventory --help`` and ``config check`` load no database, HTTP or logging stack.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from inventory.cli.commands import config, daemon, db, demo, notify, reports, sync
from inventory.cli.console import err, fit_consoles, out
from inventory.cli.options import Options

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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # lazily: only --version needs it

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


# The order of `inventory --help`.
for group in (db, config, sync, demo, daemon, reports, notify):
    group.register(app)


def main() -> None:
    # Pydantic looks for plugins (entry points of every installed distribution) when it builds
    # the first model: some 20 ms of each command's start-up. The command uses none; a user who
    # wants one sets PYDANTIC_DISABLE_PLUGINS to something else (an empty value looks again).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # Logging is configured by whatever logs (the settings, the demo), not here: structlog costs
    # `--help` a tenth of a second at start-up. Nothing logs before that, but a crash might.
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:  # noqa: BLE001 - a bug: logged scrubbed, frames only, no locals
        import structlog  # lazily: start-up time (see above)

        from inventory.logs import configure_logging, logging_configured

        if not logging_configured():  # never structlog's defaults, which show locals
            configure_logging()
        structlog.get_logger("inventory").critical("inventory crashed", exc_info=True)
        sys.exit(1)
