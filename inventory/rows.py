"""The mirror's rows and the changes to them: what the transform makes, the diff compares and
the database layer writes. Types and constants only, in the core, so that the database layer
need not import the sync that produces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "KINDS",
    "OBSERVED",
    "TRANSFORM_REVISION",
    "ChangeSet",
    "Key",
    "Kind",
    "KindChanges",
    "Rejection",
    "Row",
    "Snapshot",
]

Kind = Literal["portal", "server", "portal_server", "tool", "prompt", "override"]
KINDS: tuple[Kind, ...] = ("portal", "server", "portal_server", "tool", "prompt", "override")
Key = tuple[str, ...]

# Bump whenever the same API record would now give different rows: stored listing memos (page
# digests of the last clean run, see inventory.db.memo) of another revision are then ignored.
TRANSFORM_REVISION = 2

# Observations, not content: Cloudflare moves these every time it re-syncs a server (each
# attempt, each success) while nothing about the server changes. They are left out of a
# server's content hash (the column and the key in ``raw`` alike) and are updated in place.
# ``modified_at``/``modified_by`` are not among them: they move when someone edits the record.
OBSERVED = ("last_synced", "last_successful_sync")


@dataclass(frozen=True, slots=True)
class Row:
    values: dict[str, Any]
    digest: str
    # The row's ``OBSERVED`` values, in that order (servers only): not part of ``digest``.
    observed: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    kind: str
    entity_id: str | None
    reason: str
    raw: str


Snapshot = dict[Kind, dict[Key, Row]]


@dataclass(slots=True)
class KindChanges:
    inserts: dict[Key, Row] = field(default_factory=dict)
    updates: dict[Key, Row] = field(default_factory=dict)
    deletes: list[Key] = field(default_factory=list)
    # Same content, moved observations: updated in place on the row and its open version.
    observations: dict[Key, Row] = field(default_factory=dict)
    # Stored rows the listing could not vouch for (fetch incomplete or record rejected).
    kept: int = 0

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)

    @property
    def writes(self) -> bool:
        """Whether applying these changes writes anything, observations included."""
        return bool(self) or bool(self.observations)


@dataclass(slots=True)
class ChangeSet:
    kinds: dict[Kind, KindChanges]

    def __bool__(self) -> bool:
        return any(self.kinds.values())

    @property
    def writes(self) -> bool:
        """Whether applying these changes writes anything, observations included."""
        return any(c.writes for c in self.kinds.values())

    @classmethod
    def empty(cls) -> ChangeSet:
        return cls(kinds={kind: KindChanges() for kind in KINDS})

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            kind: {
                "added": len(c.inserts),
                "changed": len(c.updates),
                "removed": len(c.deletes),
            }
            for kind, c in self.kinds.items()
        }

    def totals(self) -> tuple[int, int, int]:
        changes = self.kinds.values()
        return (
            sum(len(c.inserts) for c in changes),
            sum(len(c.updates) for c in changes),
            sum(len(c.deletes) for c in changes),
        )
