"""Warnings gathered while transforming: nothing rejected, but an operator should know. Pure."""

from __future__ import annotations

from inventory.cloudflare.models import AUTH_TYPES, STATUSES, PortalServer, Server

__all__ = ["Notes"]

_MAX_LISTED = 5


class Notes:
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
