"""Each entity kind's tables: the current one, its history, and the key columns after
``account_id``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from inventory.db import models
from inventory.rows import Kind

__all__ = ["TABLES", "KindTables"]


@dataclass(frozen=True, slots=True)
class KindTables:
    current: Table
    history: Table
    keys: tuple[str, ...]


def _tables(current: type[models.Base], history: type[models.Base]) -> KindTables:
    table = models.table_of(current)
    keys = tuple(c.name for c in table.primary_key.columns if c.name != "account_id")
    return KindTables(current=table, history=models.table_of(history), keys=keys)


TABLES: dict[Kind, KindTables] = {
    "portal": _tables(models.Portal, models.PortalVersion),
    "server": _tables(models.Server, models.ServerVersion),
    "portal_server": _tables(models.PortalServer, models.PortalServerVersion),
    "tool": _tables(models.Tool, models.ToolVersion),
    "prompt": _tables(models.Prompt, models.PromptVersion),
    "override": _tables(models.Override, models.OverrideVersion),
}
