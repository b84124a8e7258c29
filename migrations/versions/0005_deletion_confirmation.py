"""sync_runs.confirmations and server_absences: deletions confirmed before they are recorded

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00.000000

A plain ADD/DROP COLUMN on both databases (no table rebuild, so the report views stay as they are)
and a new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("confirmations", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "server_absences",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_server_absences_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "server_id", name=op.f("pk_server_absences")),
    )


def downgrade() -> None:
    op.drop_table("server_absences")
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would trip over the report views.
    op.execute("ALTER TABLE sync_runs DROP COLUMN confirmations")
