"""``inventory changes | status | timeline | report`` (``register`` adds ``show`` and ``prune``
too): the history, for people.

Each command prints a rich table, or ``--json`` / ``--csv`` for scripts. Times accept ISO 8601
or a duration ago (``24h``, ``7d``); one that cannot be read is one line and exit 2. Each imports
the queries and tables inside its function: SQLAlchemy and rich cost ``--help`` start-up time.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from inventory.cli.commands import history, prune, show
from inventory.cli.commands.history import Account, AsCsv, AsJson
from inventory.cli.console import fail, out, user_errors
from inventory.selection import KIND_ORDER, parse_kinds

__all__ = ["register"]


def changes_command(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601, or 24h, 7d ago; default: 24h).")
    ] = None,
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
    from inventory.reports.fields import FieldFilter
    from inventory.reports.output import rows_csv, rows_json, value_text
    from inventory.reports.plan import PLAN_COLUMNS, build_plan, referenced
    from inventory.reports.plan_text import plan_lines
    from inventory.reports.queries import entity_names, version_events

    history.one_format(as_json, as_csv)
    now = history.now()
    start = history.instant(since or "24h", "--since", now=now) or now
    end = history.instant(until, "--until", now=now) or now
    if start >= end:
        since_text = f"({start:%Y-%m-%d %H:%M:%S})"
        if since is None:  # the user gave only --until: say which --since that was
            since_text = f"24h ago {since_text}, the default,"
        fail(
            f"--since {since_text} is not before --until ({end:%Y-%m-%d %H:%M:%S})"
            + ("" if since else ": give an earlier --since")
        )
    with user_errors():
        kinds = parse_kinds(kind or []) or list(KIND_ORDER)
        fields = FieldFilter(tuple(field or ()), tuple(exclude_field or ()), all_fields)
        fields.check(kinds)
    with history.connection(ctx) as conn:
        known = history.known_accounts(ctx, conn)
        ids = history.account_ids(ctx, conn, account or [])
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


def _status_columns() -> list[Any]:
    from inventory.reports.output import Column

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
    from inventory.db.backlog import outbox_by_account, outbox_summary
    from inventory.reports.output import cell, fitted_table, notes
    from inventory.reports.queries import run_sql_columns
    from inventory.reports.sql import SYNC_STATUS

    history.one_format(as_json, as_csv)
    now = history.now()
    start = history.instant(since, "--since", now=now) or now
    with history.connection(ctx) as conn:
        account_id = history.account_id(ctx, conn, account)
        columns, rows = run_sql_columns(conn, SYNC_STATUS, since=start, account_id=account_id)
        notify = outbox_summary(conn)  # webhook notifications not delivered
        by_account = outbox_by_account(conn) if as_json or as_csv else {}
    if as_json or as_csv:
        # each account's undelivered notifications: totals (both formats), per target (JSON)
        for row in rows:
            targets = by_account.get(row["account_id"], {})
            row["notify_pending"] = sum(c["pending"] for c in targets.values())
            row["notify_dead"] = sum(c["dead"] for c in targets.values())
            row["notify"] = [{"target": t, **c} for t, c in targets.items()]
        columns = [*columns, "notify_pending", "notify_dead", *(["notify"] if as_json else [])]
        history.emit(rows, columns, as_json=as_json, as_csv=as_csv, title="")
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
    for target in notify:  # notifications: what `inventory notify pending` details
        out.print(
            f"notify {target['target']}: {target['pending']} pending, {target['dead']} dead"
            " (inventory notify pending)",
            highlight=False,
        )


def timeline_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="server")],
    entity_id: Annotated[str, typer.Argument(metavar="ID")],
    account: Account = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Every period a server spent in each status, with its error text and duration."""
    from inventory.reports.output import Column, cell, duration_text, fitted_table
    from inventory.reports.queries import status_periods

    if kind not in ("server", "servers"):
        fail(f"timeline: {kind!r} is not server")
    history.one_format(as_json, as_csv)
    with history.connection(ctx) as conn:
        account_id = history.account_id(ctx, conn, account)
        rows = status_periods(conn, server_id=entity_id, account_id=account_id)
        names = {a.id: a.name for a in reversed(history.known_accounts(ctx, conn))}
    if not rows:
        fail(f"no server {entity_id} in the history", 1)
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
        history.emit(rows, columns, as_json=as_json, as_csv=as_csv, title="")
        return
    for account_id in dict.fromkeys(r["account_id"] for r in rows):
        periods = [r for r in rows if r["account_id"] == account_id]
        name = periods[-1]["server_name"]
        title = (
            f"server {name + ' ' if name else ''}({entity_id}) · account "
            f"{names.get(account_id) or account_id}: {len(periods)} "
            f"period{'' if len(periods) == 1 else 's'}"
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
    from inventory.reports.named import REPORTS, run_report_columns

    report = REPORTS.get(name or "")
    if report is None:
        if name is not None:
            known = ", ".join(REPORTS)
            fail(f"report: no report named {name!r} (known: {known})")
        from rich.table import Table

        takes = {"as_of": "--as-of", "period": "--since/--until"}
        listing = Table.grid(padding=(0, 2))
        for known_report in REPORTS.values():
            listing.add_row(
                f"[bold]{known_report.name}[/]",
                known_report.description,
                f"[dim]{takes.get(known_report.times, '')}[/]",
            )
        out.print(listing)
        out.print("[dim]--as-of is now unless given; --since/--until the last 24 hours[/]")
        return
    if as_of is not None and report.times != "as_of":
        fail(f"report {report.name}: --as-of does not apply")
    if (since or until) and report.times != "period":
        fail(f"report {report.name}: --since/--until do not apply")
    if server is not None and ":server_id" not in report.sql:
        fail(f"report {report.name}: --server does not apply")
    history.one_format(as_json, as_csv)
    now = history.now()
    when = history.instant(as_of, "--as-of", now=now)
    start, end = (
        history.instant(since, "--since", now=now),
        history.instant(until, "--until", now=now),
    )
    with history.connection(ctx) as conn:
        account_id = history.account_id(ctx, conn, account)
        names = {a.id: a.name for a in reversed(history.known_accounts(ctx, conn))}
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
    from inventory.reports.named import DEFAULT_PERIOD
    from inventory.reports.output import cell

    if report.times == "as_of":
        title = f"{report.description}, as of {cell(when or now)} UTC"
    elif report.times == "period":
        period = f"{cell(start or now - DEFAULT_PERIOD)} to {cell(end or now)} UTC"
        title = f"{report.description}, {period}"
    else:
        title = report.description
    history.emit(rows, columns, as_json=as_json, as_csv=as_csv, title=title, account_names=names)


def register(app: typer.Typer) -> None:
    """Add the report commands to the ``inventory`` application."""
    app.command("changes")(changes_command)
    show.register(app)
    app.command("status")(status_command)
    app.command("timeline")(timeline_command)
    app.command("report")(report_command)
    prune.register(app)
