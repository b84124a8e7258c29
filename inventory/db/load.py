"""Reading stored state and applying a ChangeSet: the only module that writes inventory rows.

Every function takes a Connection inside a transaction that the caller owns; none commits.
Writes are set-based (one executemany per kind and operation), so their cost follows the
number of changes, and an unchanged inventory writes nothing.

Time only goes forward per entity: a version never starts before the one it follows began or
ended. When the clock went backwards (or another host's clock ran ahead), the changed entity's
new instant is the previous one plus a microsecond, and a warning says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, select, union_all, update

from inventory.db import models
from inventory.db.bulk import insert_rows
from inventory.db.tables import TABLES, KindTables
from inventory.rows import KINDS, OBSERVED, ChangeSet, Key, Kind, KindChanges, Rejection, Row
from inventory.storable import storable_text

__all__ = [
    "apply_changes",
    "read_observed",
    "read_stored",
    "record_rejections",
]

log = structlog.get_logger("inventory.load")
_TICK = timedelta(microseconds=1)


def read_stored(conn: Connection, account_id: str) -> dict[Kind, dict[Key, str]]:
    """Every stored row's key and content hash for one account."""
    stored: dict[Kind, dict[Key, str]] = {}
    for kind in KINDS:
        spec = TABLES[kind]
        cols = [spec.current.c[name] for name in spec.keys]
        query = select(*cols, spec.current.c.content_hash).where(
            spec.current.c.account_id == account_id
        )
        stored[kind] = {tuple(r[:-1]): r[-1] for r in conn.execute(query)}
    return stored


# Kinds whose rows carry observations (transform.OBSERVED), which are not content.
OBSERVING_KINDS: tuple[Kind, ...] = ("server",)


def read_observed(conn: Connection, account_id: str) -> dict[Kind, dict[Key, tuple[Any, ...]]]:
    """Every stored row's observations (``transform.OBSERVED``) for one account, by kind."""
    observed: dict[Kind, dict[Key, tuple[Any, ...]]] = {}
    for kind in OBSERVING_KINDS:
        spec = TABLES[kind]
        cols = [spec.current.c[name] for name in (*spec.keys, *OBSERVED)]
        query = select(*cols).where(spec.current.c.account_id == account_id)
        width = len(spec.keys)
        observed[kind] = {tuple(r[:width]): tuple(r[width:]) for r in conn.execute(query)}
    return observed


def _key_match(table: Table, keys: Iterable[str]) -> Any:
    return and_(
        table.c.account_id == bindparam("k_account_id"),
        *(table.c[name] == bindparam(f"k_{name}") for name in keys),
    )


def _key_params(account_id: str, keys: tuple[str, ...], key: Key) -> dict[str, Any]:
    params = {f"k_{name}": value for name, value in zip(keys, key, strict=True)}
    params["k_account_id"] = account_id
    return params


def _full_row(
    account_id: str, keys: tuple[str, ...], key: Key, row: Row, stamp: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        **dict(zip(keys, key, strict=True)),
        **row.values,
        "content_hash": row.digest,
        **stamp,
    }


def _close_versions(
    conn: Connection,
    spec: KindTables,
    params: list[dict[str, Any]],
    *,
    run_id: int,
    ended_by: str,
) -> None:
    """Close the open versions; each param carries its key and its instant (``v_valid_from``)."""
    history = spec.history
    stmt = (
        update(history)
        .where(_key_match(history, spec.keys), history.c.valid_to.is_(None))
        .values(valid_to=bindparam("v_valid_from"), ended_run_id=run_id, ended_by=ended_by)
    )
    conn.execute(stmt, params)


def _later_instants(
    conn: Connection,
    account_id: str,
    spec: KindTables,
    change: KindChanges,
    observed_at: datetime,
) -> dict[Key, datetime]:
    """Changed entities with a version that began or ended after ``observed_at``: their instant.

    Normally none: each arm reads an empty range of its own index (valid_from, valid_to).
    """
    history = spec.history
    cols = [history.c.account_id, *(history.c[name] for name in spec.keys)]
    query = union_all(
        select(*cols, history.c.valid_from.label("at")).where(history.c.valid_from > observed_at),
        select(*cols, history.c.valid_to.label("at")).where(history.c.valid_to > observed_at),
    )
    rows = conn.execute(query).all()
    if not rows:
        return {}
    deletes = set(change.deletes)
    later: dict[Key, datetime] = {}
    for row in rows:
        key = tuple(row[1:-1])
        if row[0] == account_id and (
            key in change.updates or key in change.inserts or key in deletes
        ):
            at = row[-1] + _TICK
            later[key] = max(later.get(key, at), at)
    return later


def apply_changes(
    conn: Connection,
    account_id: str,
    changes: ChangeSet,
    *,
    run_id: int,
    observed_at: datetime,
) -> None:
    """Write the changes and their history: at most three rows per changed entity.

    An observation (same content, moved sync times) rewrites the observed columns and ``raw``
    of the current row and of its open version, in place: no version begins or ends, and the
    current row still equals its open version.
    """
    stamp = {"valid_from": observed_at, "run_id": run_id}
    for kind, change in changes.kinds.items():
        spec = TABLES[kind]
        if change.observations:
            _observe(conn, spec, account_id, change.observations)
        if not change:
            continue
        later = _later_instants(conn, account_id, spec, change, observed_at)
        if later:
            log.warning(
                "the clock went backwards: versions start a microsecond after the previous one",
                account_id=account_id,
                kind=kind,
                versions=len(later),
                behind_s=round((max(later.values()) - observed_at).total_seconds(), 6),
            )
        stamps = {key: {"valid_from": at, "run_id": run_id} for key, at in later.items()}
        if change.deletes:
            params = [
                {
                    **_key_params(account_id, spec.keys, key),
                    "v_valid_from": stamps.get(key, stamp)["valid_from"],
                }
                for key in change.deletes
            ]
            _close_versions(conn, spec, params, run_id=run_id, ended_by="deleted")
            conn.execute(delete(spec.current).where(_key_match(spec.current, spec.keys)), params)
        if change.updates:
            params = [
                {
                    **_key_params(account_id, spec.keys, key),
                    "v_valid_from": stamps.get(key, stamp)["valid_from"],
                }
                for key in change.updates
            ]
            _close_versions(conn, spec, params, run_id=run_id, ended_by="updated")
            value_names = [*next(iter(change.updates.values())).values, "content_hash"]
            stmt = (
                update(spec.current)
                .where(_key_match(spec.current, spec.keys))
                .values({name: bindparam(f"v_{name}") for name in [*value_names, *stamp]})
            )
            conn.execute(
                stmt,
                [
                    {
                        **p,
                        **{f"v_{k}": v for k, v in row.values.items()},
                        "v_content_hash": row.digest,
                        "v_run_id": run_id,
                    }
                    for p, row in zip(params, change.updates.values(), strict=True)
                ],
            )
            _insert_versions(conn, spec, account_id, change.updates, stamp, stamps, "updated")
        if change.inserts:
            rows = [
                _full_row(account_id, spec.keys, key, row, stamps.get(key, stamp))
                for key, row in change.inserts.items()
            ]
            insert_rows(conn, spec.current, rows)
            _insert_versions(conn, spec, account_id, change.inserts, stamp, stamps, "created")


def _observe(conn: Connection, spec: KindTables, account_id: str, rows: Mapping[Key, Row]) -> None:
    names = [*OBSERVED, "raw"]
    params = [
        {
            **_key_params(account_id, spec.keys, key),
            **{f"v_{name}": row.values[name] for name in names},
        }
        for key, row in rows.items()
    ]
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
    current, history = spec.current, spec.history
    conn.execute(update(current).where(_key_match(current, spec.keys)).values(values), params)
    open_version = and_(_key_match(history, spec.keys), history.c.valid_to.is_(None))
    conn.execute(update(history).where(open_version).values(values), params)


def _insert_versions(
    conn: Connection,
    spec: KindTables,
    account_id: str,
    rows: Mapping[Key, Row],
    stamp: Mapping[str, Any],
    stamps: Mapping[Key, Mapping[str, Any]],
    change: str,
) -> None:
    versions = [
        {**_full_row(account_id, spec.keys, key, row, stamps.get(key, stamp)), "change": change}
        for key, row in rows.items()
    ]
    insert_rows(conn, spec.history, versions)


def record_rejections(
    conn: Connection, account_id: str, run_id: int, rejections: Iterable[Rejection]
) -> int:
    rows = [
        {
            "run_id": run_id,
            "account_id": account_id,
            "kind": r.kind,
            "entity_id": storable_text(r.entity_id),
            "reason": storable_text(r.reason),
            "raw": r.raw,
        }
        for r in rejections
    ]
    if rows:
        conn.execute(insert(models.table_of(models.RejectedRecord)), rows)
    return len(rows)
