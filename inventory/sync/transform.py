"""Raw API listings → the rows inventory stores, one set per entity kind. Pure: no I/O.

A record that does not fit the published schema (or that PostgreSQL could not store) is
*rejected*: it is reported with a reason, and what was stored for it before stays as it was,
which is why rejections also narrow what the diff may delete (``Coverage``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from inventory.cloudflare.models import AUTH_TYPES, STATUSES, Portal, PortalServer, Server
from inventory.rows import KINDS, OBSERVED, TRANSFORM_REVISION, Key, Kind, Rejection, Row, Snapshot
from inventory.storable import ESCAPED_NUL, NUL_IN_JSON_REASON, json_has_nul

__all__ = [
    "KINDS",
    "OBSERVED",
    "TRANSFORM_REVISION",
    "Coverage",
    "Key",
    "Kind",
    "Rejection",
    "Row",
    "Snapshot",
    "TransformResult",
    "content_hash",
    "server_digest",
    "transform_account",
]

M = TypeVar("M", bound=BaseModel)

MAX_RECORD_BYTES = 2_000_000
MAX_NAME_KEY = 200
# Top-level children stored in tables of their own, so not repeated in their parent's raw JSON.
_SERVER_CHILDREN = ("tools", "prompts", "updated_tools", "updated_prompts")
_PORTAL_SERVER_FIELDS = frozenset(PortalServer.model_fields)
_OVERRIDE_TEXT = (
    "alias",
    "description",
    "portal_alias",
    "portal_description",
    "server_alias",
    "server_description",
)
# Keys of an embedded server that belong to its portal, not to the server.
_PORTAL_ONLY_KEYS = (
    "server_id",
    "default_disabled",
    "on_behalf",
    "updated_tools",
    "updated_prompts",
)
# Keys left out when an embedded copy is compared with the /servers copy of the same server.
_NOT_COMPARED = frozenset(("id", *_PORTAL_ONLY_KEYS, *OBSERVED))
_CAPABILITIES = frozenset(("tools", "prompts"))
_MAX_LISTED = 5


@dataclass(slots=True)
class Coverage:
    """Which stored rows the listing vouches for, so which absent ones may be deleted.

    A portal or server row goes only if its listing was complete and, when ``gone_portals`` /
    ``gone_servers`` are given (the sync always gives them), its absence was confirmed: a detail
    request answered "not found", or (a server only portals showed) the two-sync rule held. A
    child row (link, override, tool, prompt) goes when its parent is listed (the parent's record
    says what it holds) or is itself confirmed gone.
    """

    portals_complete: bool = True
    servers_complete: bool = True
    protected_portals: set[str] = field(default_factory=set)
    protected_servers: set[str] = field(default_factory=set)
    gone_portals: set[str] | None = None  # None: not gated by confirmation (plain unit use)
    gone_servers: set[str] | None = None
    listed_portals: set[str] = field(default_factory=set)  # in the snapshot just built
    listed_servers: set[str] = field(default_factory=set)

    def may_delete(self, kind: Kind, key: Key) -> bool:
        if kind in ("portal", "portal_server") or (kind == "override" and key[0]):
            return self._may_delete_under_portal(kind, key[0])
        server_id = key[1] if kind == "override" else key[0]
        if not self.servers_complete or server_id in self.protected_servers:
            return False
        if kind != "server" and server_id in self.listed_servers:
            return True
        if self.gone_servers is None:
            return True
        # A portal hidden by a shifting listing may hold the server: its portals must be whole.
        return self.portals_complete and server_id in self.gone_servers

    def _may_delete_under_portal(self, kind: Kind, portal_id: str) -> bool:
        if not self.portals_complete or portal_id in self.protected_portals:
            return False
        if kind != "portal" and portal_id in self.listed_portals:
            return True
        return self.gone_portals is None or portal_id in self.gone_portals


@dataclass(slots=True)
class TransformResult:
    snapshot: Snapshot
    coverage: Coverage
    rejections: list[Rejection]
    # What an operator should know that rejected nothing (unknown enum values stored as text,
    # embedded copies disagreeing with /servers): the run's ``warnings``, never a failure.
    warnings: list[str] = field(default_factory=list)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"not JSON-serialisable: {type(value).__name__}"
    raise TypeError(msg)


def content_hash(values: Mapping[str, Any]) -> str:
    """Order-independent digest of a row's values: equal content, equal hash."""
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_default)
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _row(values: dict[str, Any]) -> Row:
    return Row(values=values, digest=content_hash(values))


def server_digest(values: Mapping[str, Any]) -> str:
    """A server row's content hash: its values less the ``OBSERVED`` ones, in columns and raw."""
    content = {k: v for k, v in values.items() if k not in OBSERVED}
    raw = content.get("raw")
    if isinstance(raw, Mapping):
        content["raw"] = {k: v for k, v in raw.items() if k not in OBSERVED}
    return content_hash(content)


def _server_row(values: dict[str, Any]) -> Row:
    observed = tuple(values[name] for name in OBSERVED)
    return Row(values=values, digest=server_digest(values), observed=observed)


def _plainly_storable(raw: object) -> bool:
    """True when the record is certainly storable; False means: ask ``_storable_problem``.

    orjson encodes about ten times faster than json.dumps and refuses what we refuse
    (lone surrogates) or may not know (over 254 levels deep, integers past 64 bits): all of
    those take the exact path. The spaced text the size limit counts is never more than
    twice as long as orjson's compact text, and both write NUL as ``\\u0000``.
    """
    try:
        blob = orjson.dumps(raw)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return False
    return 2 * len(blob) <= MAX_RECORD_BYTES and ESCAPED_NUL.encode() not in blob


def _storable_problem(raw: object) -> tuple[str | None, str]:
    """Why the database could not hold this record as it is (or None), and its JSON text."""
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except RecursionError:
        # Neither we (hashing) nor PostgreSQL (jsonb) can take a record nested this deep.
        return "nested too deeply to store (about 1,000 levels or more)", '"(not kept)"'
    if len(text) > MAX_RECORD_BYTES:
        excerpt = {"truncated": True, "characters": len(text), "start": text[:10_000]}
        reason = f"record is {len(text):,} characters, over the {MAX_RECORD_BYTES:,} limit"
        return reason, json.dumps(excerpt, ensure_ascii=True)
    if json_has_nul(text):
        # kept as ASCII JSON: it may hold a lone surrogate too
        return NUL_IN_JSON_REASON, json.dumps(raw, ensure_ascii=True, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Kept as ASCII JSON: the surrogate as a \ud800 escape, everything else intact.
        reason = "contains a lone surrogate, which is not valid Unicode"
        return reason, json.dumps(raw, ensure_ascii=True, default=str)
    return None, text


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _id_of(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def _validate(model: type[M], raw: object, kind: str, rejections: list[Rejection]) -> M | None:
    problem, text = (None, None) if _plainly_storable(raw) else _storable_problem(raw)
    if problem is None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problem = _describe(exc)
    if text is None:
        text = _storable_problem(raw)[1]
    rejections.append(Rejection(kind=kind, entity_id=_id_of(raw), reason=problem, raw=text))
    return None


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
        "raw": _without(raw, (*_SERVER_CHILDREN, *_PORTAL_ONLY_KEYS)),
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _keyed(entries: list[tuple[str | None, dict[str, Any]]]) -> dict[str, Row]:
    """Give each entry a stable key: its name, or a digest when the name cannot serve.

    Order in the payload never matters: identical duplicates collapse into one, and different
    items sharing a name are told apart by their content.
    """
    by_name: dict[str | None, dict[str, dict[str, Any]]] = {}
    for name, values in entries:
        usable = name if name and len(name) <= MAX_NAME_KEY else None
        digest = content_hash(values)
        by_name.setdefault(usable, {}).setdefault(digest, values)
    rows: dict[str, Row] = {}
    for name, variants in by_name.items():
        for digest, values in variants.items():
            if name is not None and len(variants) == 1:
                key, derived = name, False
            elif name is not None:
                key, derived = f"{name}~{digest[:12]}", True
            else:
                key, derived = f"~{digest[:16]}", True
            # ``derived_key`` follows from the key itself, so the content digest can stand.
            rows[key] = Row(values={**values, "derived_key": derived}, digest=digest)
    return rows


def _item_rows(server_id: str, items: list[dict[str, Any]]) -> dict[Key, Row]:
    entries = [
        (
            _text(item.get("name")),
            {
                "title": _text(item.get("title")),
                "description": _text(item.get("description")),
                "definition": item,
            },
        )
        for item in items
    ]
    return {(server_id, key): row for key, row in _keyed(entries).items()}


def _override_rows(
    portal_id: str, server: Server | PortalServer, raw: Mapping[str, Any]
) -> dict[Key, Row]:
    rows: dict[Key, Row] = {}
    server_id = server.key if isinstance(server, PortalServer) else server.id
    for item_kind, field_name in (("tool", "updated_tools"), ("prompt", "updated_prompts")):
        raws = raw.get(field_name) or []
        entries = []
        for model, item_raw in zip(getattr(server, field_name), raws, strict=True):
            columns = {
                "enabled": model.enabled,
                **{name: getattr(model, name, None) for name in _OVERRIDE_TEXT},
                "raw": item_raw,
            }
            entries.append((model.name, columns))
        for key, row in _keyed(entries).items():
            rows[(portal_id, server_id, item_kind, key)] = row
    return rows


def _embedded_server_ids(raw: object) -> set[str]:
    servers = raw.get("servers") if isinstance(raw, dict) else None
    found: set[str] = set()
    for item in servers if isinstance(servers, list) else []:
        if isinstance(item, dict):
            for name in ("server_id", "id"):
                value = item.get(name)
                if isinstance(value, str) and value:
                    found.add(value)
    return found


def _empty_snapshot() -> Snapshot:
    return {kind: {} for kind in KINDS}


class _Notes:
    """Warnings gathered while transforming, reported once per kind with a few examples."""

    def __init__(self) -> None:
        self.unknown: dict[tuple[str, str], list[str]] = {}
        self.disagreeing: list[tuple[str, str, list[str]]] = []

    def check_enums(self, server_id: str, server: Server | PortalServer) -> None:
        for name, value, known in (
            ("status", server.status, STATUSES),
            ("auth_type", server.auth_type, AUTH_TYPES),
        ):
            if value not in known:
                self.unknown.setdefault((name, value), []).append(server_id)

    def warnings(self) -> list[str]:
        found = [
            f"{name} {value!r} is not in the published schema; stored as text for "
            f"{_listed(sorted(ids), 'server')}"
            for (name, value), ids in sorted(self.unknown.items())
        ]
        if self.disagreeing:
            examples = [
                f"{server_id} in portal {portal_id}: {', '.join(fields)}"
                for server_id, portal_id, fields in sorted(self.disagreeing)
            ]
            found.append(
                "embedded copies disagree with /servers, whose copy is stored: "
                + _listed(examples, "server")
            )
        return found


def _listed(items: list[str], noun: str) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''} ({shown}{more})"


def _add_server(
    snapshot: Snapshot,
    server: Server | PortalServer,
    raw: Mapping[str, Any],
    notes: _Notes,
) -> None:
    server_id = server.key if isinstance(server, PortalServer) else server.id
    source = "portal" if isinstance(server, PortalServer) else "servers"
    notes.check_enums(server_id, server)
    snapshot["server"][(server_id,)] = _server_row(_server_values(server, raw, source))
    snapshot["tool"].update(_item_rows(server_id, server.tools))
    snapshot["prompt"].update(_item_rows(server_id, server.prompts))


def _differing(embedded: Mapping[str, Any], listed: Mapping[str, Any]) -> list[str]:
    """Fields both copies of a server carry with different values, observations aside. Tools
    and prompts (stored from /servers) are compared by count only: comparing every definition
    of every embedded copy would cost more than the rest of the transform."""
    found = []
    for k, v in embedded.items():
        if k in _NOT_COMPARED or k not in listed:
            continue
        other = listed[k]
        if k in _CAPABILITIES:
            differs = isinstance(v, list) and isinstance(other, list) and len(v) != len(other)
        else:
            differs = other != v and not _same_items(v, other)
        if differs:
            found.append(k)
    return sorted(found)


def _same_items(a: object, b: object) -> bool:
    """Two lists that hold the same items in another order."""
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
        return False
    return sorted(map(_canonical, a)) == sorted(map(_canonical, b))


def _canonical(raw: object) -> str:
    return json.dumps(raw, sort_keys=True, default=str)


def _embedded_entries(
    portal: Portal, raw: Mapping[str, Any]
) -> list[tuple[PortalServer, Mapping[str, Any]]]:
    """The portal's embedded servers, one per server: of repeated ones, the same one whatever
    the order they come in (the least by canonical JSON)."""
    entries = list(zip(portal.servers, raw.get("servers") or [], strict=True))
    by_key: dict[str, tuple[PortalServer, Mapping[str, Any]]] = {}
    repeated = False
    for embedded, embedded_raw in entries:
        chosen = by_key.get(embedded.key)
        if chosen is None:
            by_key[embedded.key] = (embedded, embedded_raw)
            continue
        repeated = True
        if _canonical(embedded_raw) < _canonical(chosen[1]):
            by_key[embedded.key] = (embedded, embedded_raw)
    return list(by_key.values()) if repeated else entries


def _add_embedded(
    snapshot: Snapshot,
    coverage: Coverage,
    portal: Portal,
    raw: Mapping[str, Any],
    *,
    listed: Mapping[str, Mapping[str, Any]],
    notes: _Notes,
) -> None:
    """A portal's attachments and their overrides; a server only portals show, as a server.

    Portals come here in id order, so a server only portals show is stored from the portal with
    the smallest id, whatever order they were listed in. A server /servers lists is stored from
    that listing; an embedded copy that disagrees with it is a warning, not a change.
    """
    for embedded, embedded_raw in _embedded_entries(portal, raw):
        server_id = embedded.key
        link_key = (portal.id, server_id)
        extra = {k: v for k, v in embedded_raw.items() if k not in _PORTAL_SERVER_FIELDS}
        snapshot["portal_server"][link_key] = _row(
            {
                "default_disabled": embedded.default_disabled,
                "on_behalf": embedded.on_behalf,
                "extra": extra or None,
            }
        )
        snapshot["override"].update(_override_rows(portal.id, embedded, embedded_raw))
        listed_raw = listed.get(server_id)
        if listed_raw is not None:
            if fields := _differing(embedded_raw, listed_raw):
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
    notes = _Notes()
    listed: dict[str, Mapping[str, Any]] = {}

    for raw in server_items:
        server = _validate(Server, raw, "server", rejections)
        if server is None:
            server_id = _id_of(raw)
            if server_id is None:
                coverage.servers_complete = False
            else:
                coverage.protected_servers.add(server_id)
            continue
        _add_server(snapshot, server, raw, notes)
        listed[server.id] = raw
        snapshot["override"].update(_override_rows("", server, raw))

    valid: list[tuple[Portal, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    for raw in portal_items:
        portal = _validate(Portal, raw, "portal", rejections)
        if portal is None:
            portal_id = _id_of(raw)
            if portal_id is None:
                coverage.portals_complete = False
            else:
                coverage.protected_portals.add(portal_id)
            rejected.append(raw)
            continue
        valid.append((portal, raw))
    for portal, raw in sorted(valid, key=lambda pair: pair[0].id):
        snapshot["portal"][(portal.id,)] = _row(_portal_values(portal, raw))
        _add_embedded(snapshot, coverage, portal, raw, listed=listed, notes=notes)
    for raw in rejected:
        # Servers only this portal showed us must not vanish because it was rejected.
        coverage.protected_servers |= _embedded_server_ids(raw) - {
            key[0] for key in snapshot["server"]
        }
    coverage.listed_portals = {key[0] for key in snapshot["portal"]}
    coverage.listed_servers = {key[0] for key in snapshot["server"]}
    return TransformResult(
        snapshot=snapshot, coverage=coverage, rejections=rejections, warnings=notes.warnings()
    )
