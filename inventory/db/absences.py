"""What the deletion check needs from the database: stored ids, and portal-only absences.

Stored portals and servers that a listing no longer shows are the candidates the sync confirms
through the detail routes before anything is deleted
(``inventory.cloudflare.confirm``). A server only
portals showed (``source = 'portal'``) cannot be confirmed that way; ``server_absences`` keeps
which of those the last complete sync found in no portal (see ``models.ServerAbsence``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import Connection, delete, insert, select

from inventory.db import models

__all__ = ["StoredIds", "read_absences", "read_stored_ids", "write_absences"]


class StoredIds:
    """The account's stored portal ids, and each stored server's source."""

    __slots__ = ("portals", "server_sources")

    def __init__(self, portals: set[str], server_sources: dict[str, str]) -> None:
        self.portals = portals
        self.server_sources = server_sources

    @property
    def listed_servers(self) -> set[str]:
        """Servers stored from ``/servers``: the ones a detail request can confirm."""
        return {s for s, source in self.server_sources.items() if source == "servers"}

    @property
    def portal_only_servers(self) -> set[str]:
        return {s for s, source in self.server_sources.items() if source != "servers"}


def read_stored_ids(conn: Connection, account_id: str) -> StoredIds:
    portals, servers = models.table_of(models.Portal), models.table_of(models.Server)
    portal_ids = conn.execute(select(portals.c.id).where(portals.c.account_id == account_id))
    sources = conn.execute(
        select(servers.c.id, servers.c.source).where(servers.c.account_id == account_id)
    )
    return StoredIds({str(p) for (p,) in portal_ids}, {str(s): str(src) for s, src in sources})


def read_absences(conn: Connection, account_id: str) -> dict[str, int]:
    """Portal-only servers the previous complete sync found in no portal -> that run's id."""
    table = models.table_of(models.ServerAbsence)
    rows = conn.execute(
        select(table.c.server_id, table.c.run_id).where(table.c.account_id == account_id)
    )
    return {str(server_id): int(run_id) for server_id, run_id in rows}


def write_absences(
    conn: Connection,
    account_id: str,
    absent: Collection[str],
    *,
    before: Mapping[str, int],
    run_id: int,
) -> None:
    """Replace the account's absences with ``absent``, keeping when each was first seen."""
    table = models.table_of(models.ServerAbsence)
    if set(absent) == set(before):
        return
    conn.execute(delete(table).where(table.c.account_id == account_id))
    if absent:
        conn.execute(
            insert(table),
            [
                {"account_id": account_id, "server_id": s, "run_id": before.get(s, run_id)}
                for s in sorted(absent)
            ],
        )
