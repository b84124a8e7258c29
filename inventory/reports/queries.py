"""Running the report SQL: bound parameters, and rows that look the same from both databases.

SQLite hands views' timestamps back as text and booleans as 0/1; PostgreSQL as timestamptz
and bool. Rows leave here as dicts of aware UTC datetimes, bools, numbers and strings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from inventory.db.types import UTCDateTime
from inventory.errors import InventoryError
from inventory.reports import sql

__all__ = [
    "EntityNotFoundError",
    "Row",
    "changes",
    "inventory_as_of",
    "run_sql",
    "show_portal",
    "show_server",
    "status_periods",
    "sync_status",
]

Row = dict[str, Any]
_PARAM = re.compile(r"(?<![:\w]):(\w+)")
_INSTANTS = frozenset({"as_of", "since", "until"})
_TIMESTAMPS = frozenset(
    {
        "at",
        "modified_at",
        "valid_from",
        "valid_to",
        "started_at",
        "ended_at",
        "observed_at",
        "finished_at",
        "in_error_since",
        "last_sync_at",
        "last_success_at",
        "last_failure_at",
    }
)
_BOOLEANS = frozenset(
    {
        "configured",
        "code_mode_on",
        "skips_gateway",
        "allow_code_mode",
        "secure_web_gateway",
        "default_disabled",
        "on_behalf",
        "enabled",
        "tool_enabled",
    }
)


class EntityNotFoundError(InventoryError):
    """No such portal or server at the instant asked for (or several, and no account given)."""


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _TIMESTAMPS:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if name in _BOOLEANS:
        return bool(value)
    return value


def run_sql(conn: Connection, query: str, **params: Any) -> list[Row]:
    """Run report SQL, binding the parameters it names (missing optional ones as NULL)."""
    names = dict.fromkeys(_PARAM.findall(query))
    stmt = text(query).bindparams(
        *(bindparam(n, type_=UTCDateTime()) for n in names if n in _INSTANTS)
    )
    values = {n: params.get(n) for n in names}
    result = conn.execute(stmt, values)
    return [{k: _value(k, v) for k, v in row.items()} for row in result.mappings()]


def changes(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    account_id: str | None = None,
    kind: str | None = None,
) -> list[Row]:
    return run_sql(conn, sql.CHANGES, since=since, until=until, account_id=account_id, kind=kind)


def inventory_as_of(
    conn: Connection, *, as_of: datetime, account_id: str | None = None
) -> list[Row]:
    return run_sql(conn, sql.INVENTORY_AS_OF, as_of=as_of, account_id=account_id)


def _one(rows: list[Row], what: str, as_of: datetime) -> Row:
    if not rows:
        raise EntityNotFoundError(f"no {what} at {as_of.isoformat()}")
    if len(rows) > 1:
        accounts = ", ".join(r["account_id"] for r in rows)
        msg = f"{what} exists in several accounts ({accounts}): give --account"
        raise EntityNotFoundError(msg)
    return rows[0]


def show_portal(
    conn: Connection, portal_id: str, *, as_of: datetime, account_id: str | None = None
) -> Row:
    """The portal as of ``as_of``, with its servers and each server's tools."""
    found = run_sql(conn, sql.PORTAL_AS_OF, portal_id=portal_id, account_id=account_id, as_of=as_of)
    portal = _one(found, f"portal {portal_id}", as_of)
    params = {"account_id": portal["account_id"], "portal_id": portal_id, "as_of": as_of}
    servers = run_sql(conn, sql.PORTAL_SERVERS_AS_OF, **params)
    tools = run_sql(conn, sql.PORTAL_TOOLS_AS_OF, **params)
    for server in servers:
        server["tools"] = [
            {"name": t["tool_name"], "enabled": t["enabled"]}
            for t in tools
            if t["server_id"] == server["server_id"]
        ]
    return {"as_of": as_of, "portal": portal, "servers": servers}


def show_server(
    conn: Connection, server_id: str, *, as_of: datetime, account_id: str | None = None
) -> Row:
    """The server as of ``as_of``, with its tools, prompts and the portals exposing it."""
    found = run_sql(conn, sql.SERVER_AS_OF, server_id=server_id, account_id=account_id, as_of=as_of)
    server = _one(found, f"server {server_id}", as_of)
    params = {"account_id": server["account_id"], "server_id": server_id, "as_of": as_of}
    items = run_sql(conn, sql.SERVER_ITEMS_AS_OF, **params)
    return {
        "as_of": as_of,
        "server": server,
        "tools": [i for i in items if i["item_kind"] == "tool"],
        "prompts": [i for i in items if i["item_kind"] == "prompt"],
        "portals": run_sql(conn, sql.SERVER_PORTALS_AS_OF, **params),
    }


def status_periods(
    conn: Connection, *, server_id: str | None = None, account_id: str | None = None
) -> list[Row]:
    return run_sql(conn, sql.STATUS_PERIODS, server_id=server_id, account_id=account_id)


def sync_status(conn: Connection, *, since: datetime) -> list[Row]:
    return run_sql(conn, sql.SYNC_STATUS, since=since)
