"""``inventory config check``: the effective configuration, secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inventory.cli.console import out, user_errors, warn
from inventory.cli.options import options

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["config_table", "register"]

config_app = typer.Typer(help="Configuration.", no_args_is_help=True, rich_markup_mode=None)


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the effective configuration, secrets redacted; exit 2 on any problem."""
    with user_errors():
        settings = options(ctx).settings(log_warnings=False)
    for warning in settings.warnings:
        warn(warning)
    redacted = settings.redacted()
    if as_json:
        out.print_json(json.dumps(redacted, default=str))
        return
    out.print(config_table(redacted))
    # emoji=False: the line holds no emoji code, and rich would load its 3,600 codes to find none
    out.print(f"[green]ok[/]: {len(settings.accounts)} account(s) configured", emoji=False)


def config_table(redacted: Mapping[str, Any]) -> Table:
    from rich.table import Table  # lazily: rich costs `--help` start-up time
    from rich.text import Text

    # Text, not str, everywhere: rich would load its emoji codes to look for one (start-up time)
    title = Text("effective configuration", style="table.title")
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in redacted.items():
        if name in ("accounts", "notify"):
            continue
        table.add_row(Text(name), Text("" if value is None else str(value)))
    # Numbered as in error messages; Text, so that "[[accounts]]" is not read as markup.
    for i, account in enumerate(redacted.get("accounts") or []):
        table.add_row(Text(f"accounts[{i}]"), Text(json.dumps(account, default=str)))
    for i, target in enumerate(redacted.get("notify") or []):
        table.add_row(Text(f"notify[{i}]"), Text(json.dumps(target, default=str)))
    return table


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
