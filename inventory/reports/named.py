"""The named reports of ``inventory report NAME``: which SQL, and which times it takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection

from inventory.reports import sql
from inventory.reports.queries import Row, run_sql_columns

__all__ = ["DEFAULT_PERIOD", "REPORTS", "NamedReport", "run_report", "run_report_columns"]

Times = Literal["as_of", "period", "now"]
DEFAULT_PERIOD = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class NamedReport:
    name: str
    description: str
    sql: str
    times: Times  # as_of: --as-of T (default now); period: --since/--until; now: neither
    exposure: bool = False  # reads the `exposure` view, which a CTE replaces AS OF T


REPORTS: dict[str, NamedReport] = {
    r.name: r
    for r in (
        NamedReport("inventory", "every entity", sql.INVENTORY_AS_OF, "as_of"),
        NamedReport(
            "exposure",
            "every portal x attached server x tool, and what it exposes",
            sql.EXPOSURE,
            "as_of",
            True,
        ),
        NamedReport("code-mode", "portals with code mode on", sql.CODE_MODE, "as_of", True),
        NamedReport(
            "no-gateway", "portals that skip the Secure Web Gateway", sql.NO_GATEWAY, "as_of", True
        ),
        NamedReport(
            "unauthenticated",
            "unauthenticated servers and the portals exposing them",
            sql.UNAUTHENTICATED,
            "as_of",
            True,
        ),
        NamedReport(
            "enabled-tools", "tools enabled through each portal", sql.ENABLED_TOOLS, "as_of", True
        ),
        NamedReport("in-error", "servers in error now, and since when", sql.IN_ERROR, "now"),
        NamedReport(
            "capability-changes",
            "tools and prompts that appeared or disappeared",
            sql.CAPABILITY_CHANGES,
            "period",
        ),
        NamedReport("sync-failures", "failed and abandoned sync runs", sql.SYNC_FAILURES, "period"),
        NamedReport(
            "sync-runs",
            "every sync run and its status (superseded and running included)",
            sql.SYNC_RUNS,
            "period",
        ),
    )
}


def run_report(
    conn: Connection,
    report: NamedReport,
    *,
    now: datetime,
    as_of: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: str | None = None,
    server_id: str | None = None,
) -> list[Row]:
    return run_report_columns(
        conn,
        report,
        now=now,
        as_of=as_of,
        since=since,
        until=until,
        account_id=account_id,
        server_id=server_id,
    )[1]


def run_report_columns(
    conn: Connection,
    report: NamedReport,
    *,
    now: datetime,
    as_of: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: str | None = None,
    server_id: str | None = None,
) -> tuple[list[str], list[Row]]:
    """The report's column names (from its SQL: there even when no row is) and its rows."""
    query = report.sql
    if report.exposure and as_of is not None:
        query = f"{sql.AS_OF_CTE}\n{query}"
    return run_sql_columns(
        conn,
        query,
        as_of=as_of or now,
        since=since or now - DEFAULT_PERIOD,
        until=until or now,
        account_id=account_id,
        server_id=server_id,
    )
