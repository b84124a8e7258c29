"""Tables and JSON for people and scripts; no business logic here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rich.table import Table
from rich.text import Text

from inventory.sync import AccountResult

__all__ = ["config_table", "results_json", "results_table"]

KIND_COLUMNS = (
    ("portal", "portals"),
    ("server", "servers"),
    ("portal_server", "links"),
    ("tool", "tools"),
    ("prompt", "prompts"),
    ("override", "overrides"),
)
STATUS_STYLE = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "superseded": "cyan",
    "skipped": "dim",
}


def _cell(counts: Mapping[str, int] | None) -> str:
    if not counts:
        return "-"
    added, changed, removed = counts["added"], counts["changed"], counts["removed"]
    if not (added or changed or removed):
        return "·"
    return f"+{added} ~{changed} -{removed}"


def results_table(results: Sequence[AccountResult]) -> Table:
    table = Table(title="sync summary (added ~changed -removed)", title_justify="left")
    table.add_column("account")
    table.add_column("status")
    for _kind, label in KIND_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("rejected", justify="right")
    table.add_column("requests", justify="right")
    table.add_column("time", justify="right")
    table.add_column("error", overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.name or r.account_id,
            f"[{style}]{r.status}[/]" if style else r.status,
            *(_cell(r.counts.get(kind)) for kind, _ in KIND_COLUMNS),
            str(r.rejected),
            str(r.requests),
            f"{r.duration:.1f}s",
            r.error or "",
        )
    return table


def results_json(results: Sequence[AccountResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, default=str)


def config_table(redacted: Mapping[str, Any]) -> Table:
    table = Table(title="effective configuration", title_justify="left", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in redacted.items():
        if name == "accounts":
            continue
        table.add_row(name, Text("" if value is None else str(value)))
    # Numbered as in error messages; Text, so that "[[accounts]]" is not read as markup.
    for i, account in enumerate(redacted.get("accounts") or []):
        table.add_row(f"accounts[{i}]", Text(json.dumps(account, default=str)))
    return table
