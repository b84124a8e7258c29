"""rate_limit_budgets: the replicas waiting for slots, so that the oldest waiter is served first

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:00:00.000000

Four arrays, one entry per process waiting for the credential's slots: its name for itself (a
random id, never the credential), the rank of its oldest waiting request (the daemon's: its
account's last success, epoch seconds), the slots it still wants, and when the entry stops
counting (a process that stops asking holds nothing back for long). NULL is no waiter, so rows
written before this revision need no default. PostgreSQL only uses them; SQLite stores JSON.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _array(item: Any) -> Any:
    return postgresql.ARRAY(item).with_variant(sa.JSON(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("rate_limit_budgets") as batch:
        batch.add_column(sa.Column("waiter_ids", _array(sa.String(length=32)), nullable=True))
        batch.add_column(sa.Column("waiter_ranks", _array(sa.Float()), nullable=True))
        batch.add_column(sa.Column("waiter_slots", _array(sa.Integer()), nullable=True))
        batch.add_column(
            sa.Column("waiter_ends", _array(sa.DateTime(timezone=True)), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_budgets") as batch:
        batch.drop_column("waiter_ends")
        batch.drop_column("waiter_slots")
        batch.drop_column("waiter_ranks")
        batch.drop_column("waiter_ids")
