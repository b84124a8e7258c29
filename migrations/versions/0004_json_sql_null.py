"""Absent JSON values are SQL NULL, not the JSON value null

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:30:00.000000

Until now a Python None in a JSON column was stored as the JSON value ``null``, so
``WHERE error_details IS NULL`` found nothing. The column types now store SQL NULL
(``none_as_null``); this turns the values already stored into SQL NULL too. Content hashes
are computed from the values, not from their storage, so no version changes. The
downgrade keeps SQL NULL: the old code reads both the same way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every nullable JSON column (the NOT NULL ones never held None).
COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("listing_memo",),
    "sync_runs": ("counts",),
    "servers": ("error_details", "auth_config_summary"),
    "servers_history": ("error_details", "auth_config_summary"),
    "portal_servers": ("extra",),
    "portal_servers_history": ("extra",),
}


def upgrade() -> None:
    json_null = "'null'::jsonb" if op.get_bind().dialect.name == "postgresql" else "'null'"
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = {json_null}")


def downgrade() -> None:
    pass
