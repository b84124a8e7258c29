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
Account = Annotated[str | None, typer.Option("--account", "-a", help="Only this account id.")]
CHANGE_COLUMNS = (
    "at",
    "account_id",
    "kind",
    "entity_key",
    "change",
    "field",
    "old_value",
    "new_value",
    "modified_by",
    "run_id",
)


def _fail(message: str, code: int = 2) -> NoReturn:
    from inventory.cli import fail

    fail(message, code)


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(value: str | None, option: str, *, now: datetime) -> datetime | None:
    from inventory.reports.timespec import TimeSpecError, parse_instant

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
        engine = open_engine(ctx.obj.settings(require_accounts=False))
        try:
            with engine.connect() as conn:
                yield conn
        except EntityNotFoundError as exc:
            _fail(str(exc), 1)
        finally:
            engine.dispose()


def _emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    as_csv: bool,
    title: str,
) -> None:
    from inventory.cli import out
    from inventory.reports.render import rows_csv, rows_json, rows_table

    if as_json and as_csv:
        _fail("give --json or --csv, not both")
    if as_json:
        sys.stdout.write(rows_json([{c: r.get(c) for c in columns} for r in rows]) + "\n")
    elif as_csv:
        sys.stdout.write(rows_csv(rows, columns))
    else:
        out.print(rows_table(rows, columns, title=f"{title} ({len(rows)})"))


def changes_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="From this time (ISO 8601, or 24h, 7d ago).")] = "24h",
    until: Annotated[str | None, typer.Option(help="Up to this time (default: now).")] = None,
    account: Account = None,
    kind: Annotated[
        str | None,
        typer.Option(help="portal, server, portal_server, tool, prompt or override."),
    ] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """What changed, field by field: created, updated, deleted, restored."""
    from inventory.reports.queries import changes

    now = _now()
    start = _instant(since, "--since", now=now)
    end = _instant(until, "--until", now=now) or now
    with _connection(ctx) as conn:
        rows = changes(conn, since=start or now, until=end, account_id=account, kind=kind)
    _emit(rows, CHANGE_COLUMNS, as_json=as_json, as_csv=as_csv, title="changes")


def show_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="portal or server")],
    entity_id: Annotated[str, typer.Argument(metavar="ID")],
    as_of: Annotated[str | None, typer.Option(help="As of this time (default: now).")] = None,
    account: Account = None,
    as_json: AsJson = False,
) -> None:
    """A portal (with its servers and tools) or a server (with tools, prompts, portals) at T."""
    from inventory.reports.queries import show_portal, show_server

    if kind not in ("portal", "server"):
        _fail(f"show: {kind!r} is not portal or server")
    now = _now()
    when = _instant(as_of, "--as-of", now=now) or now
    show = show_portal if kind == "portal" else show_server
    with _connection(ctx) as conn:
        found = show(conn, entity_id, as_of=when, account_id=account)
    if as_json:
        from inventory.reports.render import rows_json

        sys.stdout.write(rows_json(found) + "\n")
        return
    _print_entity(kind, found)


def _print_entity(kind: str, found: dict[str, Any]) -> None:
    from rich.table import Table

    from inventory.cli import out
    from inventory.reports.render import cell, rows_table

    fields = Table(title=f"{kind} as of {cell(found['as_of'])} UTC", show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    for name, value in found[kind].items():
        fields.add_row(name, cell(value))
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


def status_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Count runs from this time.")] = "7d",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Sync health per account: last run, last success, runs and failures, average duration."""
    from inventory.reports.queries import sync_status

    now = _now()
    start = _instant(since, "--since", now=now) or now
    with _connection(ctx) as conn:
        rows = sync_status(conn, since=start)
    columns = list(rows[0]) if rows else ["account_id"]
    _emit(rows, columns, as_json=as_json, as_csv=as_csv, title=f"sync health since {since}")


def timeline_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="server")],
    entity_id: Annotated[str, typer.Argument(metavar="ID")],
    account: Account = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Every period a server spent in each status, with its error text and duration."""
    from inventory.reports.queries import status_periods

    if kind != "server":
        _fail(f"timeline: {kind!r} is not server")
    with _connection(ctx) as conn:
        rows = status_periods(conn, server_id=entity_id, account_id=account)
    if not rows:
        _fail(f"no server {entity_id} in the history", 1)
    columns = ("account_id", "status", "started_at", "ended_at", "duration_seconds", "error")
    _emit(rows, columns, as_json=as_json, as_csv=as_csv, title=f"server {entity_id}")


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
    from inventory.reports.named import REPORTS, run_report

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
    now = _now()
    when = _instant(as_of, "--as-of", now=now)
    start, end = _instant(since, "--since", now=now), _instant(until, "--until", now=now)
    with _connection(ctx) as conn:
        rows = run_report(
            conn,
            report,
            now=now,
            as_of=when,
            since=start,
            until=end,
            account_id=account,
            server_id=server,
        )
    columns = list(rows[0]) if rows else ["result"]
    _emit(rows, columns, as_json=as_json, as_csv=as_csv, title=report.description)


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
    from inventory.reports.prune import prune_history
    from inventory.reports.render import rows_json
    from inventory.reports.timespec import TimeSpecError, parse_duration
    from inventory.service import open_engine

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
