"""The pure middle: what is stored, what was seen → the changes to apply. No I/O.

Rows are compared by content hash only, so an unchanged entity costs nothing to write, and
the order in which the API lists things never shows up as a change. A row whose hash is as
stored but whose observations (``transform.OBSERVED``: Cloudflare's sync times) moved is an
*observation*: updated in place, never a new version.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from inventory.rows import KINDS, ChangeSet, Key, Kind, KindChanges, Snapshot
from inventory.sync.coverage import Coverage

__all__ = ["ChangeSet", "KindChanges", "diff_snapshot", "portal_only_absences"]


def diff_snapshot(
    stored: Mapping[Kind, Mapping[Key, str]],
    seen: Snapshot,
    coverage: Coverage,
    observed: Mapping[Kind, Mapping[Key, tuple[Any, ...]]] | None = None,
) -> ChangeSet:
    """Compare stored content hashes with the rows just seen.

    A stored row missing from ``seen`` is deleted only where ``coverage`` says the listing
    was complete and nothing that would have contained it was rejected. ``observed`` holds
    the stored observations of the kinds that have them; a row of the same hash whose
    observations differ is an observation, not an update.
    """
    kinds: dict[Kind, KindChanges] = {}
    for kind in KINDS:
        before = stored.get(kind, {})
        now = seen.get(kind, {})
        seen_before = (observed or {}).get(kind, {})
        changes = KindChanges()
        for key, row in now.items():
            digest = before.get(key)
            if digest is None:
                changes.inserts[key] = row
            elif digest != row.digest:
                changes.updates[key] = row
            elif row.observed and seen_before.get(key, row.observed) != row.observed:
                changes.observations[key] = row
        for key in before.keys() - now.keys():
            if coverage.may_delete(kind, key):
                changes.deletes.append(key)
            else:
                changes.kept += 1
        changes.deletes.sort()
        kinds[kind] = changes
    return ChangeSet(kinds=kinds)


def portal_only_absences(
    portal_only: Collection[str], pending: Collection[str], coverage: Coverage
) -> tuple[set[str], set[str]]:
    """Stored servers only portals showed → (gone now, absent now).

    Such a server cannot be confirmed through ``/servers/{id}``, so it goes only when two
    consecutive syncs with a complete portal listing found it in no portal: ``pending`` are the
    ones the previous such sync found absent. A sync whose portal listing is not complete breaks
    the chain (nothing is absent now, so nothing stays pending).
    """
    if not coverage.portals_complete:
        return set(), set()
    absent = {
        server_id
        for server_id in portal_only
        if server_id not in coverage.listed_servers and server_id not in coverage.protected_servers
    }
    return absent & set(pending), absent
