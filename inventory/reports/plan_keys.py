"""What a version's key says in a plan: the portal or server it is shown under, its ids, its
label, and what a created override sets. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inventory.reports.fields import show_value

__all__ = ["ids_of", "label_of", "parent_of", "summary_of"]


def parent_of(kind: str, key: tuple[str, ...]) -> tuple[str, str]:
    """The portal or server a change is shown under."""
    if kind in ("portal", "server"):
        return kind, key[0]
    if kind == "portal_server":
        return "portal", key[0]
    if kind in ("tool", "prompt"):
        return "server", key[0]
    portal_id, server_id = key[0], key[1]  # override
    return ("portal", portal_id) if portal_id else ("server", server_id)


def ids_of(kind: str, key: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """portal_id, server_id and item name of a key (as the `changes` view gives them)."""
    if kind == "portal":
        return key[0], None, None
    if kind == "server":
        return None, key[0], None
    if kind == "portal_server":
        return key[0], key[1], None
    if kind in ("tool", "prompt"):
        return None, key[0], key[1]
    return key[0] or None, key[1], key[3]


def _server_label(server_id: str, names: Mapping[tuple[str, str], str | None]) -> str:
    name = names.get(("server", server_id))
    return f"server {server_id}" + (f" ({name})" if name else "")


def label_of(
    kind: str, key: tuple[str, ...], names: Mapping[tuple[str, str], str | None], under: str
) -> str:
    if kind in ("portal", "server"):
        return ""
    if kind == "portal_server":
        return f"link to {_server_label(key[1], names)}"
    if kind in ("tool", "prompt"):
        return f"{kind} {key[1]}"
    _portal_id, server_id, item_kind, name = key
    if under == "portal":
        return f"{item_kind} override {name} on {_server_label(server_id, names)}"
    return f"server-wide {item_kind} override {name}"


def summary_of(kind: str, values: Mapping[str, Any] | None) -> str:
    if kind != "override" or not values:
        return ""
    shown = [
        f"{n}: {show_value(values[n])}"
        for n in ("enabled", "alias", "portal_alias", "server_alias")
        if values.get(n) is not None
    ]
    return ", ".join(shown)
