"""notify_outbox and notify_leases (webhook notifications); the exposure view heeds default_disabled

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 13:00:00.000000

``notify_outbox`` holds one row per event and webhook target, written in the transaction of the
changes the event describes; ``notify_leases`` says which process delivers a target's events
(see inventory/db/outbox.py). Neither holds a URL or a secret.

The ``exposure`` view's ``tool_enabled`` now means reachable through the portal, as the
notifications define it: the portal's override for the tool says, else the server-wide one,
else the attachment's ``default_disabled`` (it was ignored: a tool of a server attached
disabled by default showed as enabled).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON(none_as_null=True).with_variant(
    sa.dialects.postgresql.JSONB(none_as_null=True), "postgresql"
)

_EXPOSURE = """
SELECT p.account_id, p.id AS portal_id, p.name AS portal_name, p.hostname AS portal_hostname,
       p.code_mode, p.allow_code_mode,
       CASE WHEN p.code_mode IS NOT NULL THEN p.code_mode <> 'off'
            ELSE COALESCE(p.allow_code_mode, FALSE) END AS code_mode_on,
       NOT COALESCE(p.secure_web_gateway, FALSE) AS skips_gateway,
       ps.server_id, s.name AS server_name, s.auth_type, s.status AS server_status,
       ps.default_disabled, t.name AS tool_name,
       CASE WHEN t.name IS NOT NULL THEN {enabled} END AS tool_enabled
FROM portals p
LEFT JOIN portal_servers ps ON ps.account_id = p.account_id AND ps.portal_id = p.id
LEFT JOIN servers s ON s.account_id = ps.account_id AND s.id = ps.server_id
LEFT JOIN tools t ON t.account_id = s.account_id AND t.server_id = s.id
LEFT JOIN overrides po ON po.account_id = t.account_id AND po.portal_id = p.id
     AND po.server_id = t.server_id AND po.item_kind = 'tool' AND po.name = t.name
LEFT JOIN overrides so ON so.account_id = t.account_id AND so.portal_id = ''
     AND so.server_id = t.server_id AND so.item_kind = 'tool' AND so.name = t.name"""
_REACHABLE = "COALESCE(po.enabled, so.enabled, NOT COALESCE(ps.default_disabled, FALSE))"
_BEFORE = "COALESCE(po.enabled, so.enabled, TRUE)"


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_outbox")),
    )
    op.create_index(
        "ix_notify_outbox_target_state", "notify_outbox", ["target", "state", "id"], unique=False
    )
    op.create_index(
        "uq_notify_outbox_target_event", "notify_outbox", ["target", "event_id"], unique=True
    )
    op.create_table(
        "notify_leases",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_notify_leases")),
    )
    op.execute("DROP VIEW exposure")
    op.execute(f"CREATE VIEW exposure AS {_EXPOSURE.format(enabled=_REACHABLE)}")


def downgrade() -> None:
    op.execute("DROP VIEW exposure")
    op.execute(f"CREATE VIEW exposure AS {_EXPOSURE.format(enabled=_BEFORE)}")
    op.drop_table("notify_leases")
    op.drop_index("uq_notify_outbox_target_event", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_target_state", table_name="notify_outbox")
    op.drop_table("notify_outbox")
