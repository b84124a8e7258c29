"""Raw API listings → the rows inventory stores, one set per entity kind. Pure: no I/O.

A record that does not fit the published schema (or that PostgreSQL could not store) is
*rejected*: it is reported with a reason, and what was stored for it before stays as it was,
which is why rejections also narrow what the diff may delete (``Coverage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.cloudflare.models import Portal, PortalServer, Server
from inventory.rows import KINDS, OBSERVED, TRANSFORM_REVISION, Key, Kind, Rejection, Row, Snapshot
from inventory.sync.copies import (
    PORTAL_ONLY_KEYS,
    differing,
    embedded_entries,
    embedded_server_ids,
)
from inventory.sync.coverage import Coverage
from inventory.sync.digest import make_row, make_server_row
from inventory.sync.items import item_rows, override_rows
from inventory.sync.notes import Notes
from inventory.sync.validation import id_of, validate

__all__ = [
    "KINDS",
    "OBSERVED",
    "TRANSFORM_REVISION",
    "Key",
    "Kind",
    "Rejection",
    "Row",
    "Snapshot",
    "TransformResult",
    "transform_account",
]

# Top-level children stored in tables of their own, so not repeated in their parent's raw JSON.
_SERVER_CHILDREN = ("tools", "prompts", "updated_tools", "updated_prompts")
_PORTAL_SERVER_FIELDS = frozenset(PortalServer.model_fields)


@dataclass(slots=True)
class TransformResult:
    snapshot: Snapshot
    coverage: Coverage
    rejections: list[Rejection]
    # What an operator should know that rejected nothing (unknown enum values stored as text,
    # embedded copies disagreeing with /servers): the run's ``warnings``, never a failure.
    warnings: list[str] = field(default_factory=list)


def _without(raw: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    drop = set(keys)
    return {k: v for k, v in raw.items() if k not in drop}


def _portal_values(portal: Portal, raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": portal.name,
        "hostname": portal.hostname,
        "description": portal.description,
        "secure_web_gateway": portal.secure_web_gateway,
        "code_mode": portal.code_mode,
        "allow_code_mode": portal.allow_code_mode,
        "created_at": portal.created_at,
        "created_by": portal.created_by,
        "modified_at": portal.modified_at,
        "modified_by": portal.modified_by,
        "raw": _without(raw, ("servers",)),
    }


def _server_values(
    server: Server | PortalServer, raw: Mapping[str, Any], source: str
) -> dict[str, Any]:
    # As sent (validated, not re-encoded by the model): 502 stays 502, big integers exact.
    details = raw.get("error_details") if server.error_details is not None else None
    return {
        "name": server.name,
        "hostname": server.hostname,
        "auth_type": server.auth_type,
        "description": server.description,
        "status": server.status,
        "error": server.error,
        "error_details": details,
        "authentication_status": server.authentication_status,
        "last_synced": server.last_synced,
        "last_successful_sync": server.last_successful_sync,
        "secure_web_gateway": server.secure_web_gateway,
        "is_shared_oauth_callback_enabled": server.is_shared_oauth_callback_enabled,
        "auth_config_summary": server.auth_config_summary,
        "created_at": server.created_at,
        "created_by": server.created_by,
        "modified_at": server.modified_at,
        "modified_by": server.modified_by,
        "source": source,
        "raw": _without(raw, (*_SERVER_CHILDREN, *PORTAL_ONLY_KEYS)),
    }


def _empty_snapshot() -> Snapshot:
    return {kind: {} for kind in KINDS}


def _add_server(
    snapshot: Snapshot,
    server: Server | PortalServer,
    raw: Mapping[str, Any],
    notes: Notes,
) -> None:
    server_id = server.key if isinstance(server, PortalServer) else server.id
    source = "portal" if isinstance(server, PortalServer) else "servers"
    notes.check_enums(server_id, server)
    snapshot["server"][(server_id,)] = make_server_row(_server_values(server, raw, source))
    snapshot["tool"].update(item_rows(server_id, server.tools))
    snapshot["prompt"].update(item_rows(server_id, server.prompts))


def _add_embedded(
    snapshot: Snapshot,
    coverage: Coverage,
    portal: Portal,
    raw: Mapping[str, Any],
    *,
    listed: Mapping[str, Mapping[str, Any]],
    notes: Notes,
) -> None:
    """A portal's attachments and their overrides; a server only portals show, as a server.

    Portals come here in id order, so a server only portals show is stored from the portal with
    the smallest id, whatever order they were listed in. A server /servers lists is stored from
    that listing; an embedded copy that disagrees with it is a warning, not a change.
    """
    for embedded, embedded_raw in embedded_entries(portal, raw):
        server_id = embedded.key
        link_key = (portal.id, server_id)
        extra = {k: v for k, v in embedded_raw.items() if k not in _PORTAL_SERVER_FIELDS}
        snapshot["portal_server"][link_key] = make_row(
            {
                "default_disabled": embedded.default_disabled,
                "on_behalf": embedded.on_behalf,
                "extra": extra or None,
            }
        )
        snapshot["override"].update(override_rows(portal.id, embedded, embedded_raw))
        listed_raw = listed.get(server_id)
        if listed_raw is not None:
            if fields := differing(embedded_raw, listed_raw):
                notes.disagreeing.append((server_id, portal.id, fields))
            continue
        if (server_id,) in snapshot["server"] or server_id in coverage.protected_servers:
            continue
        if coverage.servers_complete:
            _add_server(snapshot, embedded, embedded_raw, notes)
        else:
            # /servers may have listed it in a record we could not read (rejected without an
            # id, or skipped by drift): keep what is stored rather than guess.
            coverage.protected_servers.add(server_id)


def transform_account(
    portal_items: list[dict[str, Any]],
    server_items: list[dict[str, Any]],
    *,
    portals_consistent: bool = True,
    servers_consistent: bool = True,
    gone_portals: Iterable[str] | None = None,
    gone_servers: Iterable[str] | None = None,
) -> TransformResult:
    """Validate and flatten one account's two listings into rows keyed per kind.

    ``gone_portals``/``gone_servers``: the ids confirmed deleted; given, no other portal or
    server the listings do not show may be deleted (see ``Coverage``). The result does not
    depend on the order of either listing or of any list inside a record."""
    snapshot = _empty_snapshot()
    coverage = Coverage(
        portals_complete=portals_consistent,
        servers_complete=servers_consistent,
        gone_portals=set(gone_portals) if gone_portals is not None else None,
        gone_servers=set(gone_servers) if gone_servers is not None else None,
    )
    rejections: list[Rejection] = []
    notes = Notes()
    listed: dict[str, Mapping[str, Any]] = {}

    for raw in server_items:
        server = validate(Server, raw, "server", rejections)
        if server is None:
            server_id = id_of(raw)
            if server_id is None:
                coverage.servers_complete = False
            else:
                coverage.protected_servers.add(server_id)
            continue
        _add_server(snapshot, server, raw, notes)
        listed[server.id] = raw
        snapshot["override"].update(override_rows("", server, raw))

    valid: list[tuple[Portal, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    for raw in portal_items:
        portal = validate(Portal, raw, "portal", rejections)
        if portal is None:
            portal_id = id_of(raw)
            if portal_id is None:
                coverage.portals_complete = False
            else:
                coverage.protected_portals.add(portal_id)
            rejected.append(raw)
            continue
        valid.append((portal, raw))
    for portal, raw in sorted(valid, key=lambda pair: pair[0].id):
        snapshot["portal"][(portal.id,)] = make_row(_portal_values(portal, raw))
        _add_embedded(snapshot, coverage, portal, raw, listed=listed, notes=notes)
    for raw in rejected:
        # Servers only this portal showed us must not vanish because it was rejected.
        coverage.protected_servers |= embedded_server_ids(raw) - {
            key[0] for key in snapshot["server"]
        }
    coverage.listed_portals = {key[0] for key in snapshot["portal"]}
    coverage.listed_servers = {key[0] for key in snapshot["server"]}
    return TransformResult(
        snapshot=snapshot, coverage=coverage, rejections=rejections, warnings=notes.warnings()
    )
