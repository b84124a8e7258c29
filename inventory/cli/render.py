"""A sync's results as a table (people) or JSON (scripts); no business logic here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.table import Table

from inventory.reports.output import Column, fit_columns, fitted_table, notes

if TYPE_CHECKING:  # not imported at run time: `config check` would load SQLAlchemy for a hint
    from inventory.sync.outcome import AccountResult

__all__ = ["results_json", "results_summary", "results_table"]

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
    """+added ~changed -removed, the parts that are not zero ("·": nothing changed)."""
    if not counts:
        return "-"
    parts = [
        f"{sign}{counts[part]}"
        for sign, part in (("+", "added"), ("~", "changed"), ("-", "removed"))
        if counts[part]
    ]
    return " ".join(parts) or "·"


def _changes(counts: Mapping[str, Mapping[str, int]]) -> str:
    parts = [
        f"{label} {_cell(counts.get(kind))}"
        for kind, label in KIND_COLUMNS
        if _cell(counts.get(kind)) not in ("-", "·")
    ]
    return "\n".join(parts) if parts else ("no change" if counts else "-")


def results_summary(results: Sequence[AccountResult], *, width: int = 200) -> list[RenderableType]:
    """The sync summary table, then each failed or partial account's error below it."""
    entries = [(f"{r.name or r.account_id} ({r.status}):", r.error) for r in results if r.error]
    return [results_table(results, width=width), *notes("why:", entries)]


def results_table(results: Sequence[AccountResult], *, width: int = 200) -> Table:
    """The sync summary, fitted to ``width``: a column per kind when they fit, else one
    "changes" column, a line per kind; counts are never cut."""
    rows = [
        {
            "account": r.name or r.account_id,
            "status": r.status,
            **{kind: _cell(r.counts.get(kind)) for kind, _ in KIND_COLUMNS},
            "changes": _changes(r.counts),
            "rejected": str(r.rejected),
            "requests": str(r.requests),
            "time": f"{r.duration:.1f}s",
        }
        for r in results
    ]
    head = [
        # an id stays whole (32 columns) unless nothing else can give way
        Column("account", "account", wrap=32),
        Column("status", "status", style=lambda status: STATUS_STYLE.get(status, "")),
    ]
    tail = [
        Column("rejected", "rejected", drop=2, justify="right"),
        Column("requests", "requests", drop=4, justify="right"),
        Column("time", "time", drop=3, justify="right"),
    ]
    wide = [
        *head,
        *(Column(kind, label, justify="right") for kind, label in KIND_COLUMNS),
        *tail,
    ]
    title = "sync summary (+added ~changed -removed)"
    kept, _dropped = fit_columns(wide, rows, width)
    # a column per kind only while the rejected column still fits beside them
    if all(c in kept for c in wide if c.key not in ("requests", "time")):
        table = fitted_table(rows, wide, width=width, title=title)
    else:
        narrow = [*head, Column("changes", "changes", format=str), *tail]
        table = fitted_table(rows, narrow, width=width, title=title)
    return table


def results_json(results: Sequence[AccountResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, default=str)
