"""``inventory changes`` as a plan: what changed, grouped per portal or server. No I/O.

Input: the versions a period opened or closed (``VersionEvent``), as the history tables hold
them. Output: per entity (a portal or a server, with its name and account), per sync that
changed it, the field changes of the entity and of what hangs under it (a portal's links and
overrides; a server's tools, prompts and server-wide overrides); and the same as rows, one per
field change, for ``--json``/``--csv``.

JSON columns are compared by JSON path (``auth_config_summary.config.scope``), never as two
whole documents; the record JSON (``raw``/``definition``) skips the top-level keys a dedicated
column already shows. ``modified_at``/``modified_by`` are who and when of a change, not field
changes; observation fields (``last_synced``, ``last_successful_sync``) are hidden unless asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inventory.reports.fields import (
    ABSENT,
    FIELDS,
    OBSERVATION_FIELDS,
    FieldChange,
    FieldFilter,
    field_changes,
    json_diff,
    show_value,
)
from inventory.reports.plan_keys import ids_of, label_of, parent_of, summary_of
from inventory.selection import KIND_ORDER

__all__ = [
    "ABSENT",
    "FIELDS",
    "OBSERVATION_FIELDS",
    "PLAN_COLUMNS",
    "EntityPlan",
    "Event",
    "FieldChange",
    "Line",
    "Plan",
    "VersionEvent",
    "build_plan",
    "field_changes",
    "json_diff",
    "referenced",
    "show_value",
]


PLAN_COLUMNS = (
    "at",
    "account_id",
    "account_name",
    "kind",
    "entity_key",
    "entity_name",
    "portal_id",
    "server_id",
    "change",
    "field",
    "old_value",
    "new_value",
    "modified_by",
    "modified_at",
    "run_id",
)


@dataclass(frozen=True, slots=True)
class VersionEvent:
    """A version a period opened (created, restored, updated) or closed (deleted)."""

    kind: str
    account_id: str
    key: tuple[str, ...]  # the key columns after account_id, in the table's order
    change: str  # created | restored | updated | deleted
    at: datetime
    run_id: int | None
    new: Mapping[str, Any] | None  # the version opened (None for deleted)
    old: Mapping[str, Any] | None  # the version before (updated) or the one deleted


@dataclass(slots=True)
class Line:
    """One entity's change within an event: the portal or server itself, or what hangs under it."""

    kind: str
    key: tuple[str, ...]
    change: str
    label: str  # "" for the entity the heading names
    fields: list[FieldChange]
    name: str | None = None
    summary: str = ""  # what a created override sets, e.g. "enabled: false"


@dataclass(slots=True)
class Event:
    """What one sync saw change under one entity."""

    at: datetime
    run_id: int | None
    modified_by: str | None = None
    modified_at: datetime | None = None
    lines: list[Line] = field(default_factory=list)


@dataclass(slots=True)
class EntityPlan:
    account_id: str
    account_name: str | None
    kind: str  # portal | server
    id: str
    name: str | None
    events: list[Event] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        own = [ln.change for ev in self.events for ln in ev.lines if not ln.label]
        first = bool(own) and own[0] in ("created", "restored")
        last = bool(own) and own[-1] == "deleted"
        return "±" if first and last else "+" if first else "-" if last else "~"


@dataclass(slots=True)
class Plan:
    entities: list[EntityPlan]
    rows: list[dict[str, Any]]
    hidden: Counter[str]  # field changes left out because they are observation fields

    @property
    def changes(self) -> int:
        return len(self.rows)


def _machine(value: Any) -> Any:
    return None if value is ABSENT else value


# --- grouping ------------------------------------------------------------------------------


def _own_name(kind: str, event: VersionEvent) -> str | None:
    values = event.new or event.old or {}
    name = values.get("name")
    if kind in ("tool", "prompt", "override") and name is None:
        name = event.key[-1]
    return name if isinstance(name, str) else None


def _shown_fields(
    ev: VersionEvent, fields: FieldFilter, hidden: Counter[str]
) -> list[FieldChange] | None:
    """The field changes of ``ev`` to show; None when the event is not to be shown at all."""
    if ev.change != "updated":
        return None if fields.only else []
    changed = field_changes(ev.kind, ev.old or {}, ev.new or {})
    kept = [c for c in changed if fields.keeps(c)]
    if not fields.only and not fields.all_fields:
        hidden.update(c.column for c in changed if c.column in OBSERVATION_FIELDS and c not in kept)
    # nothing left to show; an update of a portal or server that changed no field at all (only
    # who/when) still shows, as who touched it
    if not kept and (changed or fields.only or ev.kind not in ("portal", "server")):
        return None
    return kept


def build_plan(
    events: Iterable[VersionEvent],
    *,
    names: Mapping[tuple[str, str, str], str | None],
    account_names: Mapping[str, str | None],
    fields: FieldFilter | None = None,
) -> Plan:
    """Group version events per portal or server, per sync; the rows for scripts beside.

    ``names``: (account_id, "portal"|"server", id) → the name to show (the latest known).
    """
    fields = fields or FieldFilter()
    hidden: Counter[str] = Counter()
    groups: dict[tuple[str, str, str], EntityPlan] = {}
    by_event: dict[tuple[str, str, str, datetime, int | None], Event] = {}
    per_account: dict[str, dict[tuple[str, str], str | None]] = {}
    for (account_id, kind, entity_id), name in names.items():
        per_account.setdefault(account_id, {})[(kind, entity_id)] = name
    ordered = sorted(
        events,
        key=lambda e: (e.at, e.run_id or 0, e.account_id, KIND_ORDER.index(e.kind), e.key),
    )
    for ev in ordered:
        parent_kind, parent_id = parent_of(ev.kind, ev.key)
        acct_names = per_account.get(ev.account_id, {})
        kept = _shown_fields(ev, fields, hidden)
        if kept is None:
            continue
        group_key = (ev.account_id, parent_kind, parent_id)
        group = groups.get(group_key)
        if group is None:
            name = names.get(group_key)
            group = EntityPlan(
                account_id=ev.account_id,
                account_name=account_names.get(ev.account_id),
                kind=parent_kind,
                id=parent_id,
                name=name,
            )
            groups[group_key] = group
        event = by_event.get((*group_key, ev.at, ev.run_id))
        if event is None:
            event = Event(at=ev.at, run_id=ev.run_id)
            by_event[(*group_key, ev.at, ev.run_id)] = event
            group.events.append(event)
        if ev.kind == parent_kind and ev.new is not None:
            event.modified_by = ev.new.get("modified_by")
            event.modified_at = ev.new.get("modified_at")
        if ev.kind == parent_kind and ev.change != "deleted":
            group.name = _own_name(ev.kind, ev) or group.name
        event.lines.append(
            Line(
                kind=ev.kind,
                key=ev.key,
                change=ev.change,
                label=label_of(ev.kind, ev.key, acct_names, parent_kind),
                fields=kept,
                name=_own_name(ev.kind, ev),
                summary=summary_of(ev.kind, ev.new) if ev.change in ("created", "restored") else "",
            )
        )
    entities = sorted(
        groups.values(),
        key=lambda g: (
            g.account_name or "~",
            g.account_id,
            KIND_ORDER.index(g.kind),
            g.name or "",
            g.id,
        ),
    )
    for group in entities:
        for event in group.events:
            own = [ln for ln in event.lines if not ln.label]
            # an update of the entity itself that changed nothing shown, beside other lines:
            # its who/when heads the event, it needs no line of its own
            if len(event.lines) > len(own):
                event.lines = [
                    ln for ln in event.lines if ln.label or ln.change != "updated" or ln.fields
                ]
            event.lines.sort(key=lambda ln: (bool(ln.label), KIND_ORDER.index(ln.kind), ln.key))
    return Plan(entities=entities, rows=list(_rows(entities)), hidden=hidden)


def _rows(entities: Sequence[EntityPlan]) -> Iterator[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for group in entities:
        for event in group.events:
            for line in event.lines:
                portal_id, server_id, _item = ids_of(line.kind, line.key)
                own = not line.label
                base = {
                    "at": event.at,
                    "account_id": group.account_id,
                    "account_name": group.account_name,
                    "kind": line.kind,
                    "entity_key": "/".join(line.key),
                    "entity_name": group.name if own else line.name,
                    "portal_id": portal_id,
                    "server_id": server_id,
                    "change": line.change,
                    "modified_by": event.modified_by if line.change != "deleted" else None,
                    "modified_at": event.modified_at if line.change != "deleted" else None,
                    "run_id": event.run_id,
                }
                if not line.fields:
                    rows.append({**base, "field": None, "old_value": None, "new_value": None})
                for change in line.fields:
                    rows.append(
                        {
                            **base,
                            "field": change.field,
                            "old_value": _machine(change.old),
                            "new_value": _machine(change.new),
                        }
                    )
    rows.sort(
        key=lambda r: (r["at"], r["account_id"], r["kind"], r["entity_key"], r["field"] or "")
    )
    yield from ({c: r[c] for c in PLAN_COLUMNS} for r in rows)


def referenced(events: Iterable[VersionEvent]) -> set[tuple[str, str, str]]:
    """The portals and servers a plan of ``events`` names: (account_id, kind, id)."""
    wanted: set[tuple[str, str, str]] = set()
    for ev in events:
        wanted.add((ev.account_id, *parent_of(ev.kind, ev.key)))
        if ev.kind in ("portal_server", "override"):
            wanted.add((ev.account_id, "server", ev.key[1]))
    return wanted
