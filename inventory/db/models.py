"""The tables: current inventory, its history, and the bookkeeping of sync runs.

Each entity kind has a current table (exactly the live inventory) and a ``<table>_history``
table (every version ever observed). The two share their value columns through a mixin, so
a version row is a current row plus ``valid_from``/``valid_to`` and the runs that opened and
closed it. ``docs/schema.md`` documents all of this for people writing SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from inventory.db.types import JSONValue, UTCDateTime, str32, str64, text_key

__all__ = [
    "Account",
    "Base",
    "NotifyLease",
    "OutboxEvent",
    "Override",
    "OverrideVersion",
    "Portal",
    "PortalServer",
    "PortalServerVersion",
    "PortalVersion",
    "Prompt",
    "PromptVersion",
    "RateLimitBudget",
    "RejectedRecord",
    "Server",
    "ServerAbsence",
    "ServerVersion",
    "SyncRun",
    "Tool",
    "ToolVersion",
    "table_of",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# rate_limit_budgets' arrays; SQLite (never uses the table) stores JSON.
_TIMES = ARRAY(DateTime(timezone=True)).with_variant(JSON(), "sqlite")
_COUNTS = ARRAY(Integer()).with_variant(JSON(), "sqlite")
_IDS = ARRAY(String(32)).with_variant(JSON(), "sqlite")
_RANKS = ARRAY(Float()).with_variant(JSON(), "sqlite")

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONValue}  # noqa: RUF012


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model, typed as a Table (for set-based statements)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# --- bookkeeping ---------------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str32] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    configured: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime]
    last_run_id: Mapped[int | None] = mapped_column(BigIntId)
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_sync_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    # The fencing token: the id of the last run that applied changes (or vouched, unchanged,
    # for what is stored). Run ids only grow, so a run with a smaller id read older state and
    # applies nothing: it is recorded 'superseded'.
    applied_run_id: Mapped[int | None] = mapped_column(BigIntId)
    # The page digests of the last clean run (see inventory.db.memo): a resync whose
    # pages all come back byte for byte the same needs no decoding, diffing or writing.
    listing_memo: Mapped[dict[str, Any] | None]


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_account_started", "account_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    account_id: Mapped[str32] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime]
    observed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    added: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    removed: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any] | None]
    requests: Mapped[int] = mapped_column(default=0)
    pages: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    # Detail requests sent to confirm deletions (and the one probe of a listed id).
    confirmations: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    consistent: Mapped[bool | None]
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # What an operator should know that did not make the run partial: a JSON list of text.
    warnings: Mapped[list[str] | None] = mapped_column(JSONValue)


class ServerAbsence(Base):
    """A stored server only portals showed, absent from every portal of a complete listing.

    Such a server cannot be confirmed gone through ``/servers/{id}``: it is deleted when a
    second consecutive complete sync still finds it in no portal (a shift of the portal listing
    can hide the one portal that holds it). A sync that finds it again, or whose portal listing
    is not complete, clears the row.
    """

    __tablename__ = "server_absences"

    account_id: Mapped[str32] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    server_id: Mapped[str64] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(BigIntId)  # the run that first found it absent


class RateLimitBudget(Base):
    """One credential's rate-limit window, shared by every replica (used on PostgreSQL only).

    Keyed by the credential's fingerprint (``credential_key``), never the credential. Each batch
    of slots handed out is one entry of the two arrays: when it stops counting (``batch_ends``:
    its reservation plus the window and the time to send) and how many slots it holds
    (``batch_slots``); ``slots_used`` is their sum at the last reservation. The ``waiter_*``
    arrays hold one entry per process still waiting for slots: its random id, the rank of its
    oldest waiting request (lowest first), the slots it wants and when the entry stops counting;
    NULL is none. See inventory/db/budget.py.
    """

    __tablename__ = "rate_limit_budgets"

    credential_key: Mapped[str64] = mapped_column(primary_key=True)
    batch_ends: Mapped[list[datetime]] = mapped_column(_TIMES)
    batch_slots: Mapped[list[int]] = mapped_column(_COUNTS)
    slots_used: Mapped[int]
    waiter_ids: Mapped[list[str] | None] = mapped_column(_IDS)
    waiter_ranks: Mapped[list[float] | None] = mapped_column(_RANKS)
    waiter_slots: Mapped[list[int] | None] = mapped_column(_COUNTS)
    waiter_ends: Mapped[list[datetime] | None] = mapped_column(_TIMES)


class RejectedRecord(Base):
    __tablename__ = "rejected_records"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("sync_runs.id"), index=True)
    account_id: Mapped[str32]
    kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)


# --- notifications (inventory.notify, inventory.db.outbox) -----------------------------------


class OutboxEvent(Base):
    """One event for one webhook target, written in the transaction of the change it describes.

    ``id`` orders a target's events; ``batch_id`` is set on the events of a request before it
    is sent (a crash re-sends exactly that batch); ``last_error`` never holds a URL or a secret.
    """

    __tablename__ = "notify_outbox"
    __table_args__ = (
        Index("ix_notify_outbox_target_state", "target", "state", "id"),
        Index("uq_notify_outbox_target_event", "target", "event_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    target: Mapped[str64]
    event_id: Mapped[str64]
    event_type: Mapped[str32]
    account_id: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(BigIntId)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    batch_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class NotifyLease(Base):
    """Which process delivers a target's events; ``token`` grows with each new holder (fencing)."""

    __tablename__ = "notify_leases"

    target: Mapped[str64] = mapped_column(primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255))
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None]


# --- shared columns of current and history tables --------------------------------------------


class _Tracked:
    """What every current row and every version row carries."""

    account_id: Mapped[str32] = mapped_column(primary_key=True, sort_order=-10)
    content_hash: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime]
    run_id: Mapped[int] = mapped_column(BigIntId)


class _Version:
    """A history row: a current row plus its validity interval and the runs at its ends."""

    version_id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    account_id: Mapped[str32]
    content_hash: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    run_id: Mapped[int] = mapped_column(BigIntId)
    ended_run_id: Mapped[int | None] = mapped_column(BigIntId)
    # 'created' or 'updated' for how the version began; 'updated' or 'deleted' for how it ended.
    change: Mapped[str] = mapped_column(String(16))
    ended_by: Mapped[str | None] = mapped_column(String(16))

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__tablename__  # type: ignore[attr-defined]
        keys = ["account_id", *cls._key_columns]  # type: ignore[attr-defined]
        open_only = text("valid_to IS NULL")
        return (
            # Time only goes forward per entity (the sync never closes a version before it began).
            CheckConstraint("valid_to >= valid_from", name="valid_interval"),
            # At most one open version per entity: the database guards the history's shape.
            Index(
                f"uq_{table}_open",
                *keys,
                unique=True,
                sqlite_where=open_only,
                postgresql_where=open_only,
            ),
            Index(f"ix_{table}_key", *keys, "valid_from"),
            Index(f"ix_{table}_valid_from", "valid_from"),
            Index(f"ix_{table}_valid_to", "valid_to"),
        )


class _PortalFields:
    name: Mapped[str] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    secure_web_gateway: Mapped[bool | None]
    code_mode: Mapped[str | None] = mapped_column(Text)
    allow_code_mode: Mapped[bool | None]
    created_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(Text)
    modified_at: Mapped[datetime | None]
    modified_by: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]


class _ServerFields:
    name: Mapped[str] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(Text)
    # A value the spec does not list is stored as it comes, up to these widths (schema.py).
    auth_type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None]
    authentication_status: Mapped[str | None] = mapped_column(Text)
    last_synced: Mapped[datetime | None]
    last_successful_sync: Mapped[datetime | None]
    secure_web_gateway: Mapped[bool | None]
    is_shared_oauth_callback_enabled: Mapped[bool | None]
    auth_config_summary: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(Text)
    modified_at: Mapped[datetime | None]
    modified_by: Mapped[str | None] = mapped_column(Text)
    # 'servers' when /mcp/servers listed it, 'portal' when only a portal embedded it.
    source: Mapped[str] = mapped_column(String(16))
    raw: Mapped[dict[str, Any]]


class _PortalServerFields:
    default_disabled: Mapped[bool | None]
    on_behalf: Mapped[bool | None]
    # Fields of the embedded server that are neither documented server fields nor the above.
    extra: Mapped[dict[str, Any] | None]


class _ItemFields:
    """A tool or a prompt: the MCP object as JSON, with its common fields lifted out."""

    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # True when ``name`` is a derived stable key rather than the MCP name as sent: the item
    # had no usable name, or several different items shared one.
    derived_key: Mapped[bool] = mapped_column(Boolean)
    definition: Mapped[dict[str, Any]]


class _OverrideFields:
    derived_key: Mapped[bool] = mapped_column(Boolean)
    enabled: Mapped[bool | None]
    alias: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    portal_alias: Mapped[str | None] = mapped_column(Text)
    portal_description: Mapped[str | None] = mapped_column(Text)
    server_alias: Mapped[str | None] = mapped_column(Text)
    server_description: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]


# --- current tables ----------------------------------------------------------------------------


class Portal(_Tracked, _PortalFields, Base):
    __tablename__ = "portals"
    id: Mapped[str64] = mapped_column(primary_key=True)


class Server(_Tracked, _ServerFields, Base):
    __tablename__ = "servers"
    __table_args__ = (Index("ix_servers_status", "status"),)
    id: Mapped[str64] = mapped_column(primary_key=True)


class PortalServer(_Tracked, _PortalServerFields, Base):
    __tablename__ = "portal_servers"
    __table_args__ = (Index("ix_portal_servers_server", "account_id", "server_id"),)
    portal_id: Mapped[str64] = mapped_column(primary_key=True)
    server_id: Mapped[str64] = mapped_column(primary_key=True)


class Tool(_Tracked, _ItemFields, Base):
    __tablename__ = "tools"
    server_id: Mapped[str64] = mapped_column(primary_key=True)
    name: Mapped[text_key] = mapped_column(primary_key=True)


class Prompt(_Tracked, _ItemFields, Base):
    __tablename__ = "prompts"
    server_id: Mapped[str64] = mapped_column(primary_key=True)
    name: Mapped[text_key] = mapped_column(primary_key=True)


class Override(_Tracked, _OverrideFields, Base):
    """``updated_tools``/``updated_prompts``: per portal-server, or server-wide (portal_id '')."""

    __tablename__ = "overrides"
    portal_id: Mapped[str64] = mapped_column(primary_key=True)
    server_id: Mapped[str64] = mapped_column(primary_key=True)
    item_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[text_key] = mapped_column(primary_key=True)


# --- history tables ----------------------------------------------------------------------------


class PortalVersion(_Version, _PortalFields, Base):
    __tablename__ = "portals_history"
    _key_columns = ("id",)
    id: Mapped[str64]


class ServerVersion(_Version, _ServerFields, Base):
    __tablename__ = "servers_history"
    _key_columns = ("id",)
    id: Mapped[str64]


class PortalServerVersion(_Version, _PortalServerFields, Base):
    __tablename__ = "portal_servers_history"
    _key_columns = ("portal_id", "server_id")
    portal_id: Mapped[str64]
    server_id: Mapped[str64]


class ToolVersion(_Version, _ItemFields, Base):
    __tablename__ = "tools_history"
    _key_columns = ("server_id", "name")
    server_id: Mapped[str64]
    name: Mapped[text_key]


class PromptVersion(_Version, _ItemFields, Base):
    __tablename__ = "prompts_history"
    _key_columns = ("server_id", "name")
    server_id: Mapped[str64]
    name: Mapped[text_key]


class OverrideVersion(_Version, _OverrideFields, Base):
    __tablename__ = "overrides_history"
    _key_columns = ("portal_id", "server_id", "item_kind", "name")
    portal_id: Mapped[str64]
    server_id: Mapped[str64]
    item_kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[text_key]
