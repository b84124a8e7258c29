"""``inventory changes | show | status | timeline | report | prune``: the history, for people.

Each command prints a rich table, or ``--json`` / ``--csv`` for scripts. Times accept ISO 8601
or a duration ago (``24h``, ``7d``); one that cannot be read is one line and exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer

__all__ = ["register"]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV.")]
Account = Annotated[
    str | None, typer.Option("--account", "-a", help="Only this account (id or name).")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    from inventory.cli import fail

    fail(message, code)


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(value: str | None, option: str, *, now: datetime) -> datetime | None:
    from inventory.timespec import TimeSpecError, parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value, now=now, option=option)
    except TimeSpecError as exc:
        _fail(str(exc))


@contextmanager
def _connection(ctx: typer.Context) -> Iterator[Any]:
    from inventory.cli import user_errors
    from inventory.reports.queries import EntityNotFoundError
    from inventory.service import open_engine

    with user_errors():
        engine = open_engine(ctx.obj.settings(require_accounts=False), read_only=True)
        try:
            with engine.connect() as conn:
                yield conn
        except EntityNotFoundError as exc:
            _fail(str(exc), 1)
        finally:
            engine.dispose()


def _known_accounts(ctx: typer.Context, conn: Any) -> list[Any]:
    """Accounts a user may name: the configured ones first (their names), then the database's."""
    from inventory.reports.queries import known_accounts
    from inventory.selection import KnownAccount

    settings = ctx.obj.settings(require_accounts=False)
    configured = [KnownAccount(a.id, a.name) for a in settings.accounts]
    return [*configured, *known_accounts(conn)]


def _account_ids(ctx: typer.Context, conn: Any, wanted: Sequence[str]) -> list[str]:
    """The ids the ``--account`` values name (an id or a name); an unknown one is exit 2."""
    from inventory.selection import resolve_accounts

    if not wanted:
        return []
    return resolve_accounts(wanted, _known_accounts(ctx, conn))


def _account_id(ctx: typer.Context, conn: Any, wanted: str | None) -> str | None:
    return _account_ids(ctx, conn, [wanted])[0] if wanted is not None else None


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        _fail("give --json or --csv, not both")


def _emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    as_csv: bool,
    title: str,
    account_names: dict[str, str | None] | None = None,
) -> None:
    """Rows as JSON or CSV (always the same columns, header even when empty), or a table."""
    from inventory.cli import out
    from inventory.reports.render import auto_table, rows_csv, rows_json

    _one_format(as_json, as_csv)
    if as_json:
        sys.stdout.write(rows_json([{c: r.get(c) for c in columns} for r in rows]) + "\n")
    elif as_csv:
        sys.stdout.write(rows_csv(rows, columns))
    else:
        if account_names and "account_id" in columns:
            # people read the account's name where it has one; scripts get the id
            rows = [
                {**r, "account_id": account_names.get(r["account_id"]) or r["account_id"]}
                for r in rows
            ]
        out.print(auto_table(rows, columns, width=out.width, title=f"{title} ({len(rows)})"))


def changes_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="From this time (ISO 8601, or 24h, 7d ago).")] = "24h",
    until: Annotated[str | None, typer.Option(help="Up to this time (default: now).")] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="Only this account, id or name (repeatable)."),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these kinds (repeatable): portal, server, portal_server (links), tool, "
            "prompt, override; singular or plural."
        ),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(help="Only changes of this field or JSON path below it (repeatable)."),
    ] = None,
    exclude_field: Annotated[
        list[str] | None, typer.Option(help="Leave out this field or JSON path (repeatable).")
    ] = None,
    all_fields: Annotated[
        bool, typer.Option(help="Show observation fields too (last_synced, ...).")
    ] = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """What changed, as a plan: per portal or server, each sync's field changes beneath it."""
    from inventory.cli import out, user_errors
    from inventory.reports.plan import PLAN_COLUMNS, FieldFilter, build_plan, referenced, value_text
    from inventory.reports.queries import entity_names, version_events
    from inventory.reports.render import plan_lines, rows_csv, rows_json
    from inventory.selection import KIND_ORDER, parse_kinds

    _one_format(as_json, as_csv)
    now = _now()
    start = _instant(since, "--since", now=now) or now
    end = _instant(until, "--until", now=now) or now
    if start >= end:
        _fail(
            f"--since ({start:%Y-%m-%d %H:%M:%S}) is not before --until ({end:%Y-%m-%d %H:%M:%S})"
        )
    with user_errors():
        kinds = parse_kinds(kind or []) or list(KIND_ORDER)
        fields = FieldFilter(tuple(field or ()), tuple(exclude_field or ()), all_fields)
        fields.check(kinds)
    with _connection(ctx) as conn:
        known = _known_accounts(ctx, conn)
        ids = _account_ids(ctx, conn, account or [])
        events = version_events(conn, since=start, until=end, account_ids=ids, kinds=kinds)
        names = entity_names(conn, referenced(events), until=end)
    account_names: dict[str, str | None] = {}
    for acct in known:
        account_names.setdefault(acct.id, acct.name)
        account_names[acct.id] = account_names[acct.id] or acct.name
    plan = build_plan(events, names=names, account_names=account_names, fields=fields)
    if as_json:
        sys.stdout.write(rows_json(plan.rows) + "\n")
    elif as_csv:
        texts = [{k: value_text(v) for k, v in row.items()} for row in plan.rows]
        sys.stdout.write(rows_csv(texts, PLAN_COLUMNS))
    else:
        for line in plan_lines(plan, since=start, until=end):
            out.print(line)


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
        _fail(
            f"show: a {kind} with its parts is nested, which CSV cannot hold: use --json, "
            "or `inventory report inventory --csv` for flat rows"
        )
    if kind not in ("portal", "server"):
        _fail(f"show: {kind!r} is not portal or server")
    now = _now()
    when = _instant(as_of, "--as-of", now=now) or now
    show = show_portal if kind == "portal" else show_server
    with _connection(ctx) as conn:
        account_id = _account_id(ctx, conn, account)
        found = show(conn, entity_id, as_of=when, account_id=account_id)
    if as_json:
        from inventory.reports.render import rows_json

        sys.stdout.write(rows_json(found) + "\n")
        return
    _print_entity(kind, found)


def _print_entity(kind: str, found: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from inventory.cli import out
    from inventory.reports.render import cell, rows_table

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


def _status_columns() -> list[Any]:
    from inventory.reports.render import Column

    return [
        Column("account", "account", wrap=32),
        Column("last_status", "last run"),
        Column("last_sync_at", "last sync", drop=1),
        Column("last_success_at", "last success", drop=2),
        Column("runs", "runs", drop=3, justify="right"),
        Column("failures", "failed", drop=1, justify="right"),
        Column("superseded", "superseded", drop=5, justify="right"),
        Column("avg_duration_seconds", "avg", drop=4, justify="right"),
    ]


def status_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Count runs from this time.")] = "7d",
    account: Account = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Sync health per account: last run, last success, runs and failures, average duration."""
    from inventory.cli import out
    from inventory.reports.queries import run_sql_columns
    from inventory.reports.render import cell, fitted_table, notes
    from inventory.reports.sql import SYNC_STATUS

    _one_format(as_json, as_csv)
    now = _now()
    start = _instant(since, "--since", now=now) or now
    with _connection(ctx) as conn:
        account_id = _account_id(ctx, conn, account)
        columns, rows = run_sql_columns(conn, SYNC_STATUS, since=start, account_id=account_id)
    if as_json or as_csv:
        _emit(rows, columns, as_json=as_json, as_csv=as_csv, title="")
        return
    for row in rows:
        row["account"] = row["account_name"] or row["account_id"]
        if row["avg_duration_seconds"] is not None:
            row["avg_duration_seconds"] = f"{row['avg_duration_seconds']:.1f}s"
    table = fitted_table(
        rows,
        _status_columns(),
        width=out.width,
        title=f"sync health since {cell(start)} UTC ({len(rows)} account"
        f"{'' if len(rows) == 1 else 's'})",
    )
    out.print(table)
    failed = [r for r in rows if r["last_failure_at"] is not None]
    entries = [
        (
            f"{r['account']}, {cell(r['last_failure_at'])}:",
            ": ".join(str(p) for p in (r["last_error_class"], r["last_error_message"]) if p),
        )
        for r in failed
    ]
    for line in notes("last failure of each account:", entries):
        out.print(line)


def timeline_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="server")],
    entity_id: Annotated[str, typer.Argument(metavar="ID")],
    account: Account = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Every period a server spent in each status, with its error text and duration."""
    from inventory.cli import out
    from inventory.reports.queries import status_periods
    from inventory.reports.render import Column, cell, duration_text, fitted_table

    if kind not in ("server", "servers"):
        _fail(f"timeline: {kind!r} is not server")
    _one_format(as_json, as_csv)
    with _connection(ctx) as conn:
        account_id = _account_id(ctx, conn, account)
        rows = status_periods(conn, server_id=entity_id, account_id=account_id)
        names = {a.id: a.name for a in reversed(_known_accounts(ctx, conn))}
    if not rows:
        _fail(f"no server {entity_id} in the history", 1)
    columns = (
        "account_id",
        "server_id",
        "server_name",
        "status",
        "started_at",
        "ended_at",
        "ended_by",
        "duration_seconds",
        "error",
    )
    if as_json or as_csv:
        _emit(rows, columns, as_json=as_json, as_csv=as_csv, title="")
        return
    for account_id in dict.fromkeys(r["account_id"] for r in rows):
        periods = [r for r in rows if r["account_id"] == account_id]
        name = periods[-1]["server_name"]
        title = (
            f"server {name + ' ' if name else ''}({entity_id}) · account "
            f"{names.get(account_id) or account_id}: {len(periods)} periods"
        )
        for period in periods:
            period["until"] = cell(period["ended_at"]) if period["ended_at"] else "now"
            period["ended"] = period["ended_by"] or "ongoing"
        table = fitted_table(
            periods,
            [
                Column("status", "status"),
                Column("started_at", "from"),
                Column("until", "until", drop=4, format=str),
                Column("duration_seconds", "lasted", justify="right", format=duration_text),
                Column("ended", "ended", drop=3),
                Column("error", "error", drop=2, wrap=20),
            ],
            width=out.width,
            title=title,
        )
        out.print(table)


def report_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Report name; none lists them.")] = None,
    as_of: Annotated[str | None, typer.Option(help="As of this time (default: now).")] = None,
    since: Annotated[str | None, typer.Option(help="Period start (default: 24h).")] = None,
    until: Annotated[str | None, typer.Option(help="Period end (default: now).")] = None,
    account: Account = None,
    server: Annotated[str | None, typer.Option(help="Only this server id.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """A named report; `inventory report` lists them."""
    from inventory.cli import out
    from inventory.reports.named import REPORTS, run_report_columns

    report = REPORTS.get(name or "")
    if report is None:
        if name is not None:
            known = ", ".join(REPORTS)
            _fail(f"report: no report named {name!r} (known: {known})")
        for known_report in REPORTS.values():
            out.print(f"[bold]{known_report.name}[/]  {known_report.description}")
        return
    if as_of is not None and report.times != "as_of":
        _fail(f"report {report.name}: --as-of does not apply")
    if (since or until) and report.times != "period":
        _fail(f"report {report.name}: --since/--until do not apply")
    if server is not None and ":server_id" not in report.sql:
        _fail(f"report {report.name}: --server does not apply")
    _one_format(as_json, as_csv)
    now = _now()
    when = _instant(as_of, "--as-of", now=now)
    start, end = _instant(since, "--since", now=now), _instant(until, "--until", now=now)
    with _connection(ctx) as conn:
        account_id = _account_id(ctx, conn, account)
        names = {a.id: a.name for a in reversed(_known_accounts(ctx, conn))}
        columns, rows = run_report_columns(
            conn,
            report,
            now=now,
            as_of=when,
            since=start,
            until=end,
            account_id=account_id,
            server_id=server,
        )
    _emit(
        rows,
        columns,
        as_json=as_json,
        as_csv=as_csv,
        title=report.description,
        account_names=names,
    )


def prune_command(
    ctx: typer.Context,
    history_older_than: Annotated[
        str | None,
        typer.Option(
            help="Remove versions closed longer ago than this, e.g. 180d "
            "(default: the history_retention setting)."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Remove closed history versions and finished runs older than a duration."""
    from inventory.cli import out, user_errors
    from inventory.db.retention import prune_history
    from inventory.reports.render import rows_json
    from inventory.service import open_engine
    from inventory.timespec import TimeSpecError, parse_duration

    with user_errors():
        settings = ctx.obj.settings(require_accounts=False)
    if history_older_than is not None:
        try:
            older_than = parse_duration(history_older_than, option="--history-older-than")
        except TimeSpecError as exc:
            _fail(str(exc))
    elif settings.history_retention is not None:
        older_than = timedelta(seconds=settings.history_retention)
    else:
        _fail("prune: give --history-older-than (e.g. 180d) or set history_retention")
    with user_errors():
        engine = open_engine(settings)
        try:
            result = prune_history(engine, older_than=older_than, now=_now())
        finally:
            engine.dispose()
    if as_json:
        sys.stdout.write(
            rows_json(
                {
                    "cutoff": result.cutoff,
                    "versions": result.versions,
                    "runs": result.runs,
                    "rejected_records": result.rejected_records,
                }
            )
            + "\n"
        )
        return
    removed = ", ".join(f"{n} from {t}" for t, n in result.versions.items() if n) or "no versions"
    out.print(
        f"pruned history closed before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC: {removed}; "
        f"{result.runs} run(s), {result.rejected_records} rejected record(s)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the report commands to the ``inventory`` application."""
    app.command("changes")(changes_command)
    app.command("show")(show_command)
    app.command("status")(status_command)
    app.command("timeline")(timeline_command)
    app.command("report")(report_command)
    app.command("prune")(prune_command)
