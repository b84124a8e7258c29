"""What a sync committed → notification events. Pure: plain values in, plain values out.

Entity events (``<kind>.created|updated|deleted|restored``) come from the ChangeSet the sync
applies, with the stored rows it replaces for the old values; ``server.status_changed`` from a
server update whose status moved. Exposure events compare what was reachable through each portal
before and after the load (``reachable``). Kinds are named for people: an attachment
(``portal_server``) is a ``link``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inventory.rows import ChangeSet, Key, Kind, Snapshot

__all__ = [
    "KIND_NAMES",
    "Event",
    "Exposure",
    "Reach",
    "entity_events",
    "exposure_events",
    "reachable",
    "summary_event",
]

KIND_NAMES: dict[str, str] = {
    "portal": "portal",
    "server": "server",
    "portal_server": "link",
    "tool": "tool",
    "prompt": "prompt",
    "override": "override",
}
# Columns that are not the entity's fields, and JSON columns that repeat the typed ones.
_NOT_FIELDS = frozenset({"content_hash", "valid_from", "run_id", "account_id"})
_JSON_FIELDS = frozenset({"raw", "definition", "extra", "error_details", "auth_config_summary"})
_AUDIT = ("modified_by", "modified_at")
# (portal_id, server_id, item_kind, name): one tool or prompt reachable through one portal
Exposure = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    account_id: str
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.payload["id"])


@dataclass(slots=True)
class Reach:
    """An account's reachable items, with the names the events show."""

    items: set[Exposure] = field(default_factory=set)
    portal_names: dict[str, str] = field(default_factory=dict)
    server_names: dict[str, str] = field(default_factory=dict)


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def new_event(
    event_type: str,
    account: tuple[str, str | None],
    *,
    run_id: int | None,
    at: datetime,
    **body: Any,
) -> Event:
    payload = {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": at.isoformat(),
        "account": {"id": account[0], "name": account[1]},
        "run_id": run_id,
        **jsonable(body),
    }
    return Event(event_type, account[0], payload)


def reachable(
    links: Iterable[tuple[str, str, bool | None]],
    items: Iterable[tuple[str, str, str]],
    overrides: Iterable[tuple[str, str, str, str, bool | None]],
) -> set[Exposure]:
    """What is reachable through each portal.

    ``links``: (portal_id, server_id, default_disabled); ``items``: (server_id, item_kind, name)
    for tools and prompts; ``overrides``: (portal_id or '' for server-wide, server_id, item_kind,
    name, enabled). An item of an attached server is reachable when the portal's override says
    ``enabled``, else the server-wide override does, else unless the link is default_disabled.
    """
    by_server: dict[str, list[tuple[str, str]]] = {}
    for server_id, kind, name in items:
        by_server.setdefault(server_id, []).append((kind, name))
    says = {(p, s, k, n): e for p, s, k, n, e in overrides if e is not None}
    found: set[Exposure] = set()
    for portal_id, server_id, default_disabled in links:
        for kind, name in by_server.get(server_id, ()):
            enabled = says.get((portal_id, server_id, kind, name))
            if enabled is None:
                enabled = says.get(("", server_id, kind, name))
            if enabled is None:
                enabled = not default_disabled
            if enabled:
                found.add((portal_id, server_id, kind, name))
    return found


def exposure_events(
    before: Reach, after: Reach, account: tuple[str, str | None], *, run_id: int, at: datetime
) -> list[Event]:
    events: list[Event] = []
    for event_type, items, names in (
        ("exposure.removed", before.items - after.items, before),
        ("exposure.added", after.items - before.items, after),
    ):
        for portal_id, server_id, kind, name in sorted(items):
            portal = names.portal_names.get(portal_id) or after.portal_names.get(portal_id)
            server = names.server_names.get(server_id) or after.server_names.get(server_id)
            events.append(
                new_event(
                    event_type,
                    account,
                    run_id=run_id,
                    at=at,
                    entity={
                        "kind": kind,
                        "id": f"{portal_id}/{server_id}/{name}",
                        "name": name,
                        "portal": {"id": portal_id, "name": portal},
                        "server": {"id": server_id, "name": server},
                    },
                )
            )
    return events


def _entity(
    kind: Kind, key: Key, values: Mapping[str, Any], lookup: Mapping[Kind, Mapping[Key, Any]]
) -> dict[str, Any]:
    entity: dict[str, Any] = {"kind": KIND_NAMES[kind], "id": "/".join(key)}
    if kind in ("portal", "server"):
        entity["name"] = values.get("name")
    elif kind in ("tool", "prompt"):
        entity.update(name=key[1], server_id=key[0])
    elif kind == "portal_server":
        # named as it is keyed: "<portal's name>/<server's name>" (an id where a name is missing)
        portal = lookup.get("portal", {}).get((key[0],)) or {}
        server = lookup.get("server", {}).get((key[1],)) or {}
        name = f"{portal.get('name') or key[0]}/{server.get('name') or key[1]}"
        entity.update(name=name, portal_id=key[0], server_id=key[1])
    else:
        entity.update(name=key[3], item_kind=key[2], portal_id=key[0] or None, server_id=key[1])
    return entity


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Fields old → new; a JSON column only when no typed field explains the change."""
    names = [n for n in new if n not in _NOT_FIELDS]
    typed = {
        n: {"old": jsonable(old.get(n)), "new": jsonable(new[n])}
        for n in names
        if n not in _JSON_FIELDS and n not in _AUDIT and jsonable(old.get(n)) != jsonable(new[n])
    }
    structured = {
        n: {"old": jsonable(old.get(n)), "new": jsonable(new[n])}
        for n in names
        if n in _JSON_FIELDS and n != "raw" and jsonable(old.get(n)) != jsonable(new[n])
    }
    if typed or structured:
        return {**typed, **structured}
    audit = {
        n: {"old": jsonable(old.get(n)), "new": jsonable(new[n])}
        for n in _AUDIT
        if n in new and jsonable(old.get(n)) != jsonable(new[n])
    }
    if audit:  # only who changed it and when moved (a child of it changed, say)
        return audit
    if "raw" in new and jsonable(old.get("raw")) != jsonable(new["raw"]):
        return {"raw": {"old": jsonable(old.get("raw")), "new": jsonable(new["raw"])}}
    return {}


def _who(
    kind: Kind, key: Key, values: Mapping[str, Any], lookup: Mapping[Kind, Mapping[Key, Any]]
) -> dict[str, Any]:
    """modified_by/at where the API gives them; else the portal or server that carried it."""
    if kind in ("portal", "server"):
        return {name: jsonable(values.get(name)) for name in _AUDIT}
    if kind == "portal_server" or (kind == "override" and key[0]):
        carrier_kind: Kind = "portal"
        carrier_key: Key = (key[0],)
    else:
        carrier_kind, carrier_key = "server", (key[0] if kind in ("tool", "prompt") else key[1],)
    carrier = lookup.get(carrier_kind, {}).get(carrier_key) or {}
    return {
        "carried_by": {
            "kind": carrier_kind,
            "id": carrier_key[0],
            "name": carrier.get("name"),
            **{name: jsonable(carrier.get(name)) for name in _AUDIT},
        }
    }


def entity_events(
    changes: ChangeSet,
    old: Mapping[Kind, Mapping[Key, Mapping[str, Any]]],
    snapshot: Snapshot,
    restored: Mapping[Kind, set[Key]],
    account: tuple[str, str | None],
    *,
    run_id: int,
    at: datetime,
) -> list[Event]:
    """One event per created, updated, deleted or restored entity, plus status changes.

    ``old``: the stored rows of the updated and deleted keys, read before the load;
    ``restored``: inserted keys that had versions before (deleted, now back).
    """
    lookup: dict[Kind, dict[Key, Mapping[str, Any]]] = {
        kind: {**old.get(kind, {}), **{k: r.values for k, r in rows.items()}}
        for kind, rows in snapshot.items()
    }
    events: list[Event] = []
    for kind, change in changes.kinds.items():
        name = KIND_NAMES[kind]
        for key, row in change.inserts.items():
            verb = "restored" if key in restored.get(kind, ()) else "created"
            events.append(
                new_event(
                    f"{name}.{verb}",
                    account,
                    run_id=run_id,
                    at=at,
                    entity=_entity(kind, key, row.values, lookup),
                    **_who(kind, key, row.values, lookup),
                )
            )
        for key, row in change.updates.items():
            before = old.get(kind, {}).get(key, {})
            fields = _field_changes(before, row.values)
            body = {
                "entity": _entity(kind, key, row.values, lookup),
                **_who(kind, key, row.values, lookup),
            }
            events.append(
                new_event(f"{name}.updated", account, run_id=run_id, at=at, changes=fields, **body)
            )
            if kind == "server" and before.get("status") != row.values.get("status"):
                events.append(
                    new_event(
                        "server.status_changed",
                        account,
                        run_id=run_id,
                        at=at,
                        changes={
                            "status": {
                                "old": before.get("status"),
                                "new": row.values.get("status"),
                            },
                            "error": {"old": before.get("error"), "new": row.values.get("error")},
                        },
                        **body,
                    )
                )
        for key in change.deletes:
            before = old.get(kind, {}).get(key, {})
            events.append(
                new_event(
                    f"{name}.deleted",
                    account,
                    run_id=run_id,
                    at=at,
                    entity=_entity(kind, key, before, lookup),
                    **_who(kind, key, before, lookup),
                )
            )
    return events


def summary_event(
    changes: ChangeSet,
    reach: Reach | None,
    account: tuple[str, str | None],
    *,
    run_id: int,
    at: datetime,
) -> Event:
    """The first sync of an account: one event with what it found, not one per entity."""
    counts = {KIND_NAMES[kind]: len(c.inserts) for kind, c in changes.kinds.items()}
    body: dict[str, Any] = {"counts": counts}
    if reach is not None:
        body["reachable"] = len(reach.items)
    return new_event("sync.first", account, run_id=run_id, at=at, **body)
