"""Running the report SQL: bound parameters, and rows that look the same from both databases.

SQLite hands views' timestamps back as text and booleans as 0/1; PostgreSQL as timestamptz
and bool. Rows leave here as dicts of aware UTC datetimes, bools, numbers and strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, select, text

from inventory.db import models
from inventory.db.tables import TABLES, KindTables
from inventory.db.types import UTCDateTime
from inventory.errors import EntityNotFoundError
from inventory.reports import sql
from inventory.reports.plan import VersionEvent
from inventory.selection import KIND_ORDER, KnownAccount

__all__ = [
    "EntityNotFoundError",
    "Row",
    "changes",
    "entity_names",
    "inventory_as_of",
    "known_accounts",
    "run_sql",
    "run_sql_columns",
    "show_portal",
    "show_server",
    "status_periods",
    "sync_status",
    "version_events",
]

Row = dict[str, Any]
_TABLES: dict[str, KindTables] = {k: v for k, v in TABLES.items()}  # noqa: C416
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


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _TIMESTAMPS:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if name in _BOOLEANS:
        return bool(value)
    return value


def run_sql_columns(conn: Connection, query: str, **params: Any) -> tuple[list[str], list[Row]]:
    """Run report SQL, binding the parameters it names (missing optional ones as NULL); the
    column names come from the query, so an empty answer still has them."""
    names = dict.fromkeys(_PARAM.findall(query))
    stmt = text(query).bindparams(
        *(bindparam(n, type_=UTCDateTime()) for n in names if n in _INSTANTS)
    )
    values = {n: params.get(n) for n in names}
    result = conn.execute(stmt, values)
    columns = list(result.keys())
    return columns, [{k: _value(k, v) for k, v in row.items()} for row in result.mappings()]


def run_sql(conn: Connection, query: str, **params: Any) -> list[Row]:
    return run_sql_columns(conn, query, **params)[1]


def known_accounts(conn: Connection) -> list[KnownAccount]:
    """Every account the database has seen, with the name it was last configured with."""
    accounts = models.table_of(models.Account)
    rows = conn.execute(select(accounts.c.id, accounts.c.name).order_by(accounts.c.id))
    return [KnownAccount(r.id, r.name) for r in rows]


def version_events(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    account_ids: Sequence[str] = (),
    kinds: Sequence[str] = KIND_ORDER,
) -> list[VersionEvent]:
    """The versions opened in [since, until) and those a deletion closed in it, each update
    with the version before it (which an update closes at the instant it opens)."""
    events: list[VersionEvent] = []
    for kind in kinds:
        spec = _TABLES[kind]
        h = spec.history
        earlier = h.alias("earlier")
        restored = exists().where(
            earlier.c.account_id == h.c.account_id,
            *(earlier.c[k] == h.c[k] for k in spec.keys),
            earlier.c.valid_from < h.c.valid_from,
        )
        only = [h.c.account_id.in_(account_ids)] if account_ids else []
        opened = select(h, restored.label("is_restore")).where(
            h.c.valid_from >= since, h.c.valid_from < until, *only
        )
        closed = select(h).where(
            h.c.valid_to >= since,
            h.c.valid_to < until,
            h.c.ended_by.in_(("updated", "deleted")),
            *only,
        )
        before: dict[tuple[Any, ...], Row] = {}
        for row in conn.execute(closed).mappings():
            values = dict(row)
            key = tuple(str(values[k]) for k in spec.keys)
            if values["ended_by"] == "updated":
                before[(values["account_id"], key, values["valid_to"])] = values
                continue
            events.append(
                VersionEvent(
                    kind=kind,
                    account_id=values["account_id"],
                    key=key,
                    change="deleted",
                    at=values["valid_to"],
                    run_id=values["ended_run_id"],
                    new=None,
                    old=values,
                )
            )
        for row in conn.execute(opened).mappings():
            values = dict(row)
            key = tuple(str(values[k]) for k in spec.keys)
            if values["change"] == "updated":
                change = "updated"
                old = before.get((values["account_id"], key, values["valid_from"]))
            else:
                change = "restored" if values.pop("is_restore") else "created"
                old = None
            events.append(
                VersionEvent(
                    kind=kind,
                    account_id=values["account_id"],
                    key=key,
                    change=change,
                    at=values["valid_from"],
                    run_id=values["run_id"],
                    new=values,
                    old=old,
                )
            )
    return events


def entity_names(
    conn: Connection, wanted: Iterable[tuple[str, str, str]], *, until: datetime
) -> dict[tuple[str, str, str], str | None]:
    """(account_id, "portal"|"server", id) → the name of its latest version before ``until``
    (or of any version, for one first seen later)."""
    found: dict[tuple[str, str, str], str | None] = {}
    by_kind: dict[str, set[str]] = {}
    for _account, kind, entity_id in wanted:
        by_kind.setdefault(kind, set()).add(entity_id)
    for kind, ids in by_kind.items():
        h = _TABLES[kind].history
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            query = (
                select(h.c.account_id, h.c.id, h.c.name, h.c.valid_from)
                .where(h.c.id.in_(chunk))
                .order_by(h.c.valid_from)
            )
            for row in conn.execute(query):
                if row.valid_from < until or (row.account_id, kind, row.id) not in found:
                    found[(row.account_id, kind, row.id)] = row.name
    return found


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
