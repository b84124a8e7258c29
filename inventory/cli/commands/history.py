"""What the history commands share: times as typed, a read-only connection, accounts by name,
and rows out as a table, JSON or CSV.

Heavy modules (SQLAlchemy through the queries, rich through the tables) are imported inside the
functions that use them: `inventory changes --help` starts without them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inventory.cli.console import fail, out, user_errors
from inventory.cli.options import options
from inventory.errors import EntityNotFoundError, TimeSpecError
from inventory.selection import KnownAccount, resolve_accounts
from inventory.timespec import parse_instant

if TYPE_CHECKING:  # a hint only: SQLAlchemy costs `--help` start-up time
    from sqlalchemy import Connection

__all__ = [
    "Account",
    "AsCsv",
    "AsJson",
    "account_id",
    "account_ids",
    "connection",
    "emit",
    "instant",
    "known_accounts",
    "now",
    "one_format",
]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV.")]
# A list, so that a second --account is refused rather than silently taking the place of the first.
Account = Annotated[
    list[str] | None, typer.Option("--account", "-a", help="Only this account (id or name).")
]


def now() -> datetime:
    return datetime.now(UTC)


def instant(value: str | None, option: str, *, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, now=now, option=option)
    except TimeSpecError as exc:
        fail(str(exc))


@contextmanager
def connection(ctx: typer.Context) -> Iterator[Connection]:
    from inventory.daemon.service import open_engine

    with user_errors():
        engine = open_engine(options(ctx).settings(require_accounts=False), read_only=True)
        try:
            with engine.connect() as conn:
                yield conn
        except EntityNotFoundError as exc:
            fail(str(exc), 1)
        finally:
            engine.dispose()


def known_accounts(ctx: typer.Context, conn: Connection) -> list[KnownAccount]:
    """Accounts a user may name: the configured ones first (their names), then the database's."""
    from inventory.reports.queries import known_accounts as stored_accounts

    settings = options(ctx).settings(require_accounts=False)
    configured = [KnownAccount(a.id, a.name) for a in settings.accounts]
    return [*configured, *stored_accounts(conn)]


def account_ids(ctx: typer.Context, conn: Connection, wanted: Sequence[str]) -> list[str]:
    """The ids the ``--account`` values name (an id or a name); an unknown one is exit 2."""
    if not wanted:
        return []
    return resolve_accounts(wanted, known_accounts(ctx, conn))


def account_id(ctx: typer.Context, conn: Connection, wanted: Sequence[str] | None) -> str | None:
    """The one account ``--account`` names, if given; given twice is exit 2."""
    if not wanted:
        return None
    if len(wanted) > 1:
        fail(f"--account: this command takes one account, not {len(wanted)} ({', '.join(wanted)})")
    return account_ids(ctx, conn, wanted)[0]


def one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        fail("give --json or --csv, not both")


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    as_csv: bool,
    title: str,
    account_names: dict[str, str | None] | None = None,
) -> None:
    """Rows as JSON or CSV (always the same columns, header even when empty), or a table."""
    from inventory.reports.output import auto_table, rows_csv, rows_json

    one_format(as_json, as_csv)
    if as_json:
        sys.stdout.write(rows_json([{c: r.get(c) for c in columns} for r in rows]) + "\n")
    elif as_csv:
        sys.stdout.write(rows_csv(rows, columns))
    else:
        headers: dict[str, str] = {}
        if account_names and "account_id" in columns:
            # people read the account's name where it has one; scripts get the id
            rows = [
                {**r, "account_id": account_names.get(r["account_id"]) or r["account_id"]}
                for r in rows
            ]
            headers["account_id"] = "account"
        table = auto_table(
            rows, columns, width=out.width, title=f"{title} ({len(rows)})", headers=headers
        )
        out.print(table)
