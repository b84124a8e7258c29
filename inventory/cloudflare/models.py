"""Typed models of the API objects, after Cloudflare's published OpenAPI schema.

Every model accepts unknown fields (the API drifts); the caller keeps the raw dict as it came.
Constraints are those the schema states; a record that breaks one is quarantined, not stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
)

from inventory.storable import NUL_REASON, has_nul

__all__ = [
    "AUTH_TYPES",
    "STATUSES",
    "ErrorDetails",
    "OverrideItem",
    "Portal",
    "PortalOverrideItem",
    "PortalServer",
    "Server",
    "ServerOverrideItem",
]

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+(?:-[a-z0-9_]+)*$"),
]
# The spec caps names at 350 and descriptions at 512; a longer value is a broken record.
Name = Annotated[str, StringConstraints(max_length=350)]
Description = Annotated[str, StringConstraints(max_length=512)]
# The values the spec lists. A value Cloudflare adds later is stored as text, not rejected
# (inventory.sync.transform reports it as a warning of the run); the bounds are the columns' widths
# (a longer value still rejects the record: the report views depend on those columns).
STATUSES = frozenset(("waiting", "ready", "stale", "error"))
AUTH_TYPES = frozenset(("oauth", "bearer", "unauthenticated"))
Status = Annotated[str, StringConstraints(min_length=1, max_length=16)]
AuthType = Annotated[str, StringConstraints(min_length=1, max_length=32)]
# Unknown enum values of informational fields are kept as text rather than rejected.
LooseText = Annotated[str, StringConstraints(max_length=4096)]
# A JSON number: an integer stays an integer (exactly, however large), anything else a float.
Number = Annotated[StrictInt | float, Field(union_mode="left_to_right")]


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    @field_validator("*", mode="before")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; say so here rather than failing the whole transaction.
        if has_nul(value):
            raise ValueError(NUL_REASON)
        return value


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Timestamps(_ApiModel):
    created_at: datetime | None = None
    created_by: LooseText | None = None
    modified_at: datetime | None = None
    modified_by: LooseText | None = None

    @field_validator("created_at", "modified_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


class ErrorDetails(_ApiModel):
    cause: str | None = None
    is_upstream: bool | None = None
    mcp_code: Number | None = None
    retryable: bool | None = None
    status_code: Number | None = None


class OverrideItem(_ApiModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    enabled: bool | None = None


class ServerOverrideItem(OverrideItem):
    """An entry of a server's own ``updated_tools`` / ``updated_prompts``."""

    alias: LooseText | None = None
    description: str | None = None


class PortalOverrideItem(OverrideItem):
    """An entry of ``updated_tools`` / ``updated_prompts`` of a server inside a portal."""

    portal_alias: LooseText | None = None
    portal_description: str | None = None
    server_alias: LooseText | None = None
    server_description: str | None = None


class _ServerFields(_Timestamps):
    id: Identifier
    name: Name
    hostname: Annotated[str, StringConstraints(max_length=2048)]
    auth_type: AuthType
    description: Description | None = None
    status: Status = "waiting"
    error: str | None = None
    error_details: ErrorDetails | None = None
    authentication_status: LooseText | None = None
    last_synced: datetime | None = None
    last_successful_sync: datetime | None = None
    secure_web_gateway: bool | None = None
    is_shared_oauth_callback_enabled: bool | None = None
    auth_config_summary: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    prompts: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("last_synced", "last_successful_sync", mode="after")
    @classmethod
    def _utc_sync(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    # ``check_fields=False``: the override lists are declared by the subclasses, in two shapes.
    @field_validator(
        "tools", "prompts", "updated_tools", "updated_prompts", mode="before", check_fields=False
    )
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Server(_ServerFields):
    """An item of ``/mcp/servers``."""

    updated_tools: list[ServerOverrideItem] = Field(default_factory=list)
    updated_prompts: list[ServerOverrideItem] = Field(default_factory=list)


class PortalServer(_ServerFields):
    """A server as embedded in a portal, with the portal-specific fields."""

    server_id: Identifier | None = None
    default_disabled: bool | None = None
    on_behalf: bool | None = None
    updated_tools: list[PortalOverrideItem] = Field(default_factory=list)
    updated_prompts: list[PortalOverrideItem] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """The server's id: ``server_id`` where the API sends it, else ``id``."""
        return self.server_id or self.id


class Portal(_Timestamps):
    """An item of ``/mcp/portals``."""

    id: Identifier
    name: Name
    hostname: Annotated[str, StringConstraints(max_length=2048)]
    description: Description | None = None
    secure_web_gateway: bool | None = None
    code_mode: LooseText | None = None
    allow_code_mode: bool | None = None
    servers: list[PortalServer] = Field(default_factory=list)

    @field_validator("servers", mode="before")
    @classmethod
    def _null_servers(cls, value: Any) -> Any:
        return [] if value is None else value
