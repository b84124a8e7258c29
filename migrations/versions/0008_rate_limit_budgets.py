"""rate_limit_budgets: one rate-limit window per credential fingerprint, shared by replicas

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:00:00.000000

A new table on both databases; only PostgreSQL deployments use it (a SQLite database has one
daemon, whose in-process limiter is enough), so SQLite stores the arrays as JSON. It holds the
credential's fingerprint, never the credential.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_budgets",
        sa.Column("credential_key", sa.String(length=64), nullable=False),
        sa.Column(
            "batch_ends",
            postgresql.ARRAY(sa.DateTime(timezone=True)).with_variant(sa.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "batch_slots",
            postgresql.ARRAY(sa.Integer()).with_variant(sa.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("slots_used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("credential_key", name=op.f("pk_rate_limit_budgets")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_budgets")
