"""accounts.listing_memo: page digests of the last clean run, for the unchanged-resync fast path

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:00:00.000000

A plain ADD/DROP COLUMN on both databases (no table rebuild, so the report views stay as they are).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "listing_memo",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would trip over the report views.
    op.execute("ALTER TABLE accounts DROP COLUMN listing_memo")
