"""The reads notifications need inside a sync's transaction (inventory.notify.record).

What is reachable through an account's portals, the stored rows a change replaces, which
inserted keys had versions before, and how many runs of an account failed in a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, tuple_

from inventory.db import models
from inventory.db.tables import TABLES
from inventory.rows import Key, Kind

__all__ = ["ReachInputs", "failure_streak", "read_reach_inputs", "read_restored", "read_rows"]

_CHUNK = 500
_runs = models.table_of(models.SyncRun)


@dataclass(slots=True)
class ReachInputs:
    """What decides reachability (inventory.notify.events.reachable), with the names."""

    links: list[tuple[str, str, bool | None]]  # (portal_id, server_id, default_disabled)
    items: list[tuple[str, str, str]]  # (server_id, item_kind, name)
    overrides: list[
        tuple[str, str, str, str, bool | None]
    ]  # (portal_id, server_id, kind, name, enabled)
    portal_names: dict[str, str]
    server_names: dict[str, str]


def read_reach_inputs(conn: Connection, account_id: str) -> ReachInputs:
    links = TABLES["portal_server"].current
    overrides = TABLES["override"].current
    portals = TABLES["portal"].current
    servers = TABLES["server"].current
    items: list[tuple[str, str, str]] = []
    for kind in ("tool", "prompt"):
        table = TABLES[kind].current
        query = select(table.c.server_id, table.c.name).where(table.c.account_id == account_id)
        items.extend((server_id, kind, name) for server_id, name in conn.execute(query))
    link_query = select(links.c.portal_id, links.c.server_id, links.c.default_disabled)
    override_query = select(
        overrides.c.portal_id,
        overrides.c.server_id,
        overrides.c.item_kind,
        overrides.c.name,
        overrides.c.enabled,
    )
    return ReachInputs(
        links=[
            (r[0], r[1], r[2])
            for r in conn.execute(link_query.where(links.c.account_id == account_id))
        ],
        items=items,
        overrides=[
            (r[0], r[1], r[2], r[3], r[4])
            for r in conn.execute(override_query.where(overrides.c.account_id == account_id))
        ],
        portal_names={
            r[0]: r[1]
            for r in conn.execute(
                select(portals.c.id, portals.c.name).where(portals.c.account_id == account_id)
            )
        },
        server_names={
            r[0]: r[1]
            for r in conn.execute(
                select(servers.c.id, servers.c.name).where(servers.c.account_id == account_id)
            )
        },
    )


def _chunks(keys: Sequence[Key]) -> Iterable[Sequence[Key]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def read_rows(
    conn: Connection, account_id: str, wanted: Mapping[Kind, Sequence[Key]]
) -> dict[Kind, dict[Key, dict[str, Any]]]:
    """The stored current rows of these keys, as column → value."""
    rows: dict[Kind, dict[Key, dict[str, Any]]] = {}
    for kind, keys in wanted.items():
        spec = TABLES[kind]
        cols = [spec.current.c[name] for name in spec.keys]
        found: dict[Key, dict[str, Any]] = {}
        for chunk in _chunks(list(keys)):
            query = select(spec.current).where(
                spec.current.c.account_id == account_id, tuple_(*cols).in_(list(chunk))
            )
            for row in conn.execute(query):
                values = dict(row._mapping)
                found[tuple(values[name] for name in spec.keys)] = values
        rows[kind] = found
    return rows


def read_restored(
    conn: Connection, account_id: str, inserted: Mapping[Kind, Sequence[Key]]
) -> dict[Kind, set[Key]]:
    """The inserted keys that had a version before (they were deleted and are back)."""
    restored: dict[Kind, set[Key]] = {}
    for kind, keys in inserted.items():
        spec = TABLES[kind]
        cols = [spec.history.c[name] for name in spec.keys]
        found: set[Key] = set()
        for chunk in _chunks(list(keys)):
            query = (
                select(*cols)
                .where(spec.history.c.account_id == account_id, tuple_(*cols).in_(list(chunk)))
                .distinct()
            )
            found.update(tuple(r) for r in conn.execute(query))
        restored[kind] = found
    return restored


def failure_streak(conn: Connection, account_id: str, *, before: int, limit: int) -> int:
    """How many of the account's runs before run ``before`` failed in a row (at most ``limit``).

    Only ``failed`` and ``succeeded`` runs count; a failure that was a shutdown's abort
    (error_class ``Aborted``), partial, superseded and abandoned runs are passed over.
    """
    query = (
        select(_runs.c.status)
        .where(
            _runs.c.account_id == account_id,
            _runs.c.id < before,
            _runs.c.status.in_(["failed", "succeeded"]),
            (_runs.c.error_class.is_(None)) | (_runs.c.error_class != "Aborted"),
        )
        .order_by(_runs.c.id.desc())
        .limit(limit)
    )
    streak = 0
    for (status,) in conn.execute(query):
        if status != "failed":
            break
        streak += 1
    return streak
