"""History fidelity: observations out of server hashes, exact error_details, sync_runs.warnings

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:30:00.000000

- ``sync_runs.warnings``: what an operator should know that did not make a run partial (a plain
  ADD/DROP COLUMN, so the report views stay as they are).
- ``error_details`` of every server row and version is repaired from its ``raw``: the code
  before this revision stored ``502`` as ``502.0`` and rounded integers past 2**53.
- Every server row's and version's ``content_hash`` is recomputed without the observations
  ``last_synced``/``last_successful_sync`` (columns and ``raw`` alike), as the code now computes
  it. Nothing else is written: no version begins or ends, so ``inventory changes`` is unchanged.
  Consecutive versions that differed only in those observations now carry equal hashes.

The hash below is frozen with this revision on purpose (it is what ``inventory.sync.transform``
computes today); a later change of the hash needs a revision of its own.

Downgrade drops the column and keeps the repaired values and hashes: the code before this
revision then sees each server as changed once, and writes one version for it.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from inventory.db.types import JSONValue, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OBSERVED = ("last_synced", "last_successful_sync")
TEXT = (
    "name",
    "hostname",
    "auth_type",
    "description",
    "status",
    "error",
    "authentication_status",
    "created_by",
    "modified_by",
    "source",
)
BOOLEAN = ("secure_web_gateway", "is_shared_oauth_callback_enabled")
TIMESTAMP = ("created_at", "modified_at")
JSON_COLUMNS = ("error_details", "auth_config_summary", "raw")
BATCH = 2000


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"not JSON-serialisable: {type(value).__name__}"
    raise TypeError(msg)


def _digest(values: Mapping[str, Any]) -> str:
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_default)
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _text(value: object) -> str:
    # Compared as JSON text: 502 == 502.0 in Python, yet only one of them is what was sent.
    return json.dumps(value, sort_keys=True)


def _table(name: str, keys: tuple[str, ...]) -> sa.TableClause:
    columns: list[sa.ColumnClause[Any]] = [
        *(sa.column(k, sa.String()) for k in keys if k != "version_id"),
        *([sa.column("version_id", sa.BigInteger())] if "version_id" in keys else []),
        sa.column("content_hash", sa.String()),
        *(sa.column(c, sa.Text()) for c in TEXT),
        *(sa.column(c, sa.Boolean()) for c in BOOLEAN),
        *(sa.column(c, UTCDateTime()) for c in TIMESTAMP),
        *(sa.column(c, JSONValue) for c in JSON_COLUMNS),
    ]
    return sa.table(name, *columns)


def _repaired(row: Mapping[str, Any]) -> tuple[Any, str]:
    """The row's error_details as ``raw`` has them, and its content hash without observations."""
    raw = row["raw"] if isinstance(row["raw"], dict) else {}
    details = raw.get("error_details")
    details = details if isinstance(details, dict) else None
    values: dict[str, Any] = {name: row[name] for name in (*TEXT, *BOOLEAN, *TIMESTAMP)}
    values["error_details"] = details
    values["auth_config_summary"] = row["auth_config_summary"]
    values["raw"] = {k: v for k, v in raw.items() if k not in OBSERVED}
    return details, _digest(values)


def _batches(conn: sa.Connection, table: sa.TableClause, order: str) -> Iterator[list[Any]]:
    """All rows, a batch at a time, by ``order`` (an integer key) or all at once."""
    if order != "version_id":
        yield list(conn.execute(sa.select(table)).mappings())
        return
    last = 0
    while True:
        query = (
            sa.select(table)
            .where(table.c.version_id > last)
            .order_by(table.c.version_id)
            .limit(BATCH)
        )
        rows = list(conn.execute(query).mappings())
        if not rows:
            return
        yield rows
        last = rows[-1]["version_id"]


def _rehash(conn: sa.Connection, name: str, keys: tuple[str, ...]) -> None:
    table = _table(name, keys)
    match = sa.and_(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
    stmt = (
        sa.update(table)
        .where(match)
        .values(
            error_details=sa.bindparam("v_error_details", type_=JSONValue),
            content_hash=sa.bindparam("v_content_hash"),
        )
    )
    for rows in _batches(conn, table, keys[-1]):
        params = []
        for row in rows:
            details, digest = _repaired(row)
            if digest != row["content_hash"] or _text(details) != _text(row["error_details"]):
                params.append(
                    {
                        **{f"k_{k}": row[k] for k in keys},
                        "v_error_details": details,
                        "v_content_hash": digest,
                    }
                )
        if params:
            conn.execute(stmt, params)


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column(
            "warnings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    conn = op.get_bind()
    _rehash(conn, "servers", ("account_id", "id"))
    _rehash(conn, "servers_history", ("version_id",))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would trip over the report views.
    op.execute("ALTER TABLE sync_runs DROP COLUMN warnings")
