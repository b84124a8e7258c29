"""``inventory doctor | sync``: check the accounts, then sync them once.

Each imports its machinery (SQLAlchemy, httpx) when it runs: the other commands start faster.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from inventory.cli.console import err, out, user_errors
from inventory.cli.options import options
from inventory.errors import ConfigError, SelectionError
from inventory.selection import KnownAccount, resolve_accounts

if TYPE_CHECKING:
    from inventory.settings import AccountConfig

__all__ = ["register"]


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
    from inventory.cli.doctor import doctor_lines, run_doctor

    with user_errors():
        settings = options(ctx).settings()
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
    from inventory.cli.render import results_json, results_summary
    from inventory.daemon.service import run_sync

    with user_errors():
        settings = options(ctx).settings()
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


def _select_accounts(accounts: list[AccountConfig], wanted: list[str]) -> list[AccountConfig]:
    """The configured accounts ``--account`` names, by id or name; an unknown one is exit 2."""
    if not wanted:
        return accounts
    by_id = {a.id: a for a in accounts}
    try:
        ids = resolve_accounts(wanted, [KnownAccount(a.id, a.name) for a in accounts])
    except SelectionError as exc:
        raise ConfigError(str(exc).replace("known account", "configured account")) from None
    return [by_id[i] for i in ids]


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
    app.command("sync")(sync_command)
