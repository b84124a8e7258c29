"""Rows of a server's tools and prompts and of a portal's overrides, keyed by name. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inventory.cloudflare.models import PortalServer, Server
from inventory.rows import Key, Row
from inventory.sync.digest import content_hash

__all__ = ["MAX_NAME_KEY", "item_rows", "override_rows"]

MAX_NAME_KEY = 200
_OVERRIDE_TEXT = (
    "alias",
    "description",
    "portal_alias",
    "portal_description",
    "server_alias",
    "server_description",
)


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


def item_rows(server_id: str, items: list[dict[str, Any]]) -> dict[Key, Row]:
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


def override_rows(
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
