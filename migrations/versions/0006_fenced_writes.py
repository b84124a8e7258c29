"""Fenced writes: accounts.applied_run_id, and history intervals that never run backwards

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00.000000

``accounts.applied_run_id`` is the id of the last run that applied an account's changes (the
fencing token: an older run never applies over it); it starts as the latest run that wrote.

Every history table gets ``CHECK (valid_to >= valid_from)``. A clock that went backwards may
already have written versions that end before they start; those are repaired first, per entity
in the order the versions were written, the way the sync now writes them: a version never
starts before the one before it ended, and one that would end before it started ends one
microsecond after its start (the next version starts there too). How many versions were
repaired is logged. SQLite cannot add a constraint to a table, so each history table is rebuilt
from its own CREATE statement (its partial indexes recreated as they were), with the views
dropped around it and recreated from their stored text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = structlog.get_logger("inventory.migrations")

# history table -> key columns (besides account_id)
HISTORY: dict[str, tuple[str, ...]] = {
    "portals_history": ("id",),
    "servers_history": ("id",),
    "portal_servers_history": ("portal_id", "server_id"),
    "tools_history": ("server_id", "name"),
    "prompts_history": ("server_id", "name"),
    "overrides_history": ("portal_id", "server_id", "item_kind", "name"),
}
CHECK = "valid_to >= valid_from"
_TICK = timedelta(microseconds=1)


def _constraint(table: str) -> str:
    return f"ck_{table}_valid_interval"


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column(
        "accounts",
        sa.Column(
            "applied_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )
    op.execute(
        "UPDATE accounts SET applied_run_id = (SELECT MAX(r.id) FROM sync_runs r "
        "WHERE r.account_id = accounts.id AND r.status IN ('succeeded', 'partial'))"
    )
    repaired = sum(_repair(bind, table, keys) for table, keys in HISTORY.items())
    if repaired:
        log.warning(
            "history versions that ended before they started were repaired", versions=repaired
        )
    else:
        log.debug("no history version ended before it started")  # nothing to tell a user
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(bind, _add_check)
    else:
        for table in HISTORY:
            op.create_check_constraint(op.f(_constraint(table)), table, CHECK)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(bind, _drop_check)
    else:
        for table in HISTORY:
            op.drop_constraint(op.f(_constraint(table)), table, type_="check")
    op.execute("ALTER TABLE accounts DROP COLUMN applied_run_id")


# --- repair ------------------------------------------------------------------------------------


def _repair(bind: sa.Connection, table: str, keys: tuple[str, ...]) -> int:
    """Make every version of an entity that has a backwards interval run forwards; the count."""
    key_cols = ["account_id", *keys]
    history = sa.table(
        table,
        *(sa.column(k) for k in key_cols),
        sa.column("version_id"),
        sa.column("valid_from", sa.DateTime()),
        sa.column("valid_to", sa.DateTime()),
    )
    current = sa.table(
        table.removesuffix("_history"),
        *(sa.column(k) for k in key_cols),
        sa.column("valid_from", sa.DateTime()),
    )
    broken = bind.execute(
        sa.select(*(history.c[k] for k in key_cols))
        .where(history.c.valid_to < history.c.valid_from)
        .distinct()
    ).all()
    repaired = 0
    for entity in broken:
        match = [history.c[k] == v for k, v in zip(key_cols, entity, strict=True)]
        versions = bind.execute(
            sa.select(history.c.version_id, history.c.valid_from, history.c.valid_to)
            .where(*match)
            .order_by(history.c.version_id)
        ).all()
        for version_id, valid_from, valid_to in _forwards(versions):
            repaired += 1
            bind.execute(
                sa.update(history)
                .where(history.c.version_id == version_id)
                .values(valid_from=valid_from, valid_to=valid_to)
            )
            if valid_to is None:  # the open version: the current row carries its start
                cur_match = [current.c[k] == v for k, v in zip(key_cols, entity, strict=True)]
                bind.execute(sa.update(current).where(*cur_match).values(valid_from=valid_from))
    return repaired


def _forwards(
    versions: Sequence[Any],
) -> list[tuple[int, datetime, datetime | None]]:
    """The versions whose interval changes, with their new (valid_from, valid_to)."""
    changed = []
    floor: datetime | None = None
    for version_id, valid_from, valid_to in versions:
        start = valid_from if floor is None or valid_from >= floor else floor
        end = valid_to if valid_to is None or valid_to >= start else start + _TICK
        if (start, end) != (valid_from, valid_to):
            changed.append((version_id, start, end))
        if end is not None:
            floor = end
    return changed


# --- SQLite table rebuild ------------------------------------------------------------------------


def _add_check(table: str, create: str) -> str:
    body = create.rstrip().removesuffix(")").rstrip()
    return f"{body}, \n\tCONSTRAINT {_constraint(table)} CHECK ({CHECK})\n)"


def _drop_check(table: str, create: str) -> str:
    pattern = rf",\s*CONSTRAINT {_constraint(table)} CHECK \({re.escape(CHECK)}\)"
    return re.sub(pattern, "", create)


def _rebuild_sqlite(bind: sa.Connection, edit: Any) -> None:
    """Rebuild each history table from its edited CREATE statement, views dropped meanwhile."""
    views = bind.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid")
    ).all()
    for name, _sql in views:
        bind.exec_driver_sql(f'DROP VIEW "{name}"')
    for table in HISTORY:
        create = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
            {"t": table},
        ).scalar_one()
        indexes = list(
            bind.execute(
                sa.text(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                    "AND sql IS NOT NULL ORDER BY rowid"
                ),
                {"t": table},
            ).scalars()
        )
        new = f"_new_{table}"
        edited = re.sub(
            rf'^CREATE TABLE\s+"?{table}"?', f'CREATE TABLE "{new}"', edit(table, create)
        )
        bind.exec_driver_sql(edited)
        bind.exec_driver_sql(f'INSERT INTO "{new}" SELECT * FROM "{table}"')
        bind.exec_driver_sql(f'DROP TABLE "{table}"')
        bind.exec_driver_sql(f'ALTER TABLE "{new}" RENAME TO "{table}"')
        for index in indexes:
            bind.exec_driver_sql(index)
    for _name, sql in views:
        bind.exec_driver_sql(sql)
