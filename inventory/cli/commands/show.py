"""``inventory show portal|server ID``: one entity with its parts, as of an instant.

The queries and rich's tables are imported inside the functions: ``--help`` start-up time.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from inventory.cli.commands import history
from inventory.cli.commands.history import Account, AsJson
from inventory.cli.console import fail, out

__all__ = ["register"]


def show_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="portal or server")],
    entity_id: Annotated[str, typer.Argument(metavar="ID")],
    as_of: Annotated[str | None, typer.Option(help="As of this time (default: now).")] = None,
    account: Account = None,
    as_json: AsJson = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Not for show: its answer is nested; use --json.")
    ] = False,
) -> None:
    """A portal (with its servers and tools) or a server (with tools, prompts, portals) at T."""
    from inventory.reports.queries import show_portal, show_server

    if as_csv:
        fail(
            f"show: a {kind} with its parts is nested, which CSV cannot hold: use --json, "
            "or `inventory report inventory --csv` for flat rows"
        )
    if kind not in ("portal", "server"):
        fail(f"show: {kind!r} is not portal or server")
    now = history.now()
    when = history.instant(as_of, "--as-of", now=now) or now
    show = show_portal if kind == "portal" else show_server
    with history.connection(ctx) as conn:
        account_id = history.account_id(ctx, conn, account)
        found = show(conn, entity_id, as_of=when, account_id=account_id)
    if as_json:
        from inventory.reports.output import rows_json

        sys.stdout.write(rows_json(found) + "\n")
        return
    _print_entity(kind, found)


def _print_entity(kind: str, found: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from inventory.reports.output import cell, rows_table

    fields = Table(title=f"{kind} as of {cell(found['as_of'])} UTC", show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    for name, value in found[kind].items():
        fields.add_row(name, Text(cell(value)))  # data, not rich markup
    out.print(fields)
    if kind == "portal":
        for server in found["servers"]:
            tools = server.pop("tools")
            enabled = sum(1 for t in tools if t["enabled"])
            server["tools"] = f"{enabled}/{len(tools)} enabled"
            disabled = [t["name"] for t in tools if not t["enabled"]]
            server["disabled tools"] = ", ".join(disabled)
        server_columns = [*(found["servers"][0] if found["servers"] else ["server_id"])]
        out.print(rows_table(found["servers"], server_columns, title="servers"))
        return
    for part, columns in (
        ("tools", ("name", "title", "description")),
        ("prompts", ("name", "title", "description")),
        ("portals", ("portal_id", "portal_name", "default_disabled", "on_behalf")),
    ):
        out.print(rows_table(found[part], columns, title=part))


def register(app: typer.Typer) -> None:
    app.command("show")(show_command)
