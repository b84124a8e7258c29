"""``inventory changes`` for people: a plan, as rich lines (``+`` created, ``~`` updated, ``-``
deleted), per portal or server and per sync beneath it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from inventory.reports.fields import ABSENT, FieldChange, show_value
from inventory.reports.plan import EntityPlan, Event, Line, Plan

__all__ = ["plan_lines"]


_SYMBOL_STYLE = {"+": "green", "-": "red", "~": "yellow", "±": "magenta"}
_LINE_SYMBOL = {"created": "+", "restored": "+", "deleted": "-", "updated": "~"}


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _line(indent: int, symbol: str, text: str, *, bold: bool = False) -> Padding:
    """``symbol text``, indented; a long text wraps under itself, not under the symbol."""
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(
        Text(symbol, style=_SYMBOL_STYLE.get(symbol, "")), Text(text, style="bold" if bold else "")
    )
    return Padding(grid, (0, 0, 0, indent), expand=False)


def _field_line(indent: int, change: FieldChange) -> Padding:
    if change.old is ABSENT:
        return _line(indent, "+", f"{change.field}: {show_value(change.new)}")
    if change.new is ABSENT:
        return _line(indent, "-", f"{change.field}: {show_value(change.old)}")
    return _line(
        indent, "~", f"{change.field}: {show_value(change.old)} → {show_value(change.new)}"
    )


def _heading(entity: EntityPlan) -> Padding:
    name = f"{entity.name} " if entity.name else ""
    account = entity.account_name or entity.account_id
    return _line(
        0, entity.symbol, f"{entity.kind} {name}({entity.id}) · account {account}", bold=True
    )


def _event_heading(event: Event) -> Padding:
    parts = [f"@ {_when(event.at)}"]
    if event.run_id is not None:
        parts.append(f"run {event.run_id}")
    if event.modified_by or event.modified_at:
        who = f"by {event.modified_by}" if event.modified_by else "modified"
        when = f" at {_when(event.modified_at)}" if event.modified_at else ""
        parts.append(who + when)
    return Padding(Text(" · ".join(parts), style="dim"), (0, 0, 0, 4), expand=False)


def _with(lines: Sequence[Line]) -> str:
    counts = {k: sum(1 for ln in lines if ln.kind == k) for k in ("tool", "prompt")}
    parts = [f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items() if n]
    return f", with {' and '.join(parts)}" if parts else ""


def plan_lines(plan: Plan, *, since: datetime, until: datetime) -> list[RenderableType]:
    """The plan for people: a heading per portal or server, each sync's changes beneath."""
    count, entities = plan.changes, len(plan.entities)
    out: list[RenderableType] = [
        Text(f"changes from {_when(since)} to {_when(until)} UTC", style="bold"),
        Text(
            f"{count} change{'s' if count != 1 else ''} under {entities} "
            f"portal{'s' if entities != 1 else ''} or server{'s' if entities != 1 else ''}"
            if entities
            else "no changes"
        ),
    ]
    if plan.hidden:
        fields = ", ".join(sorted(plan.hidden))
        total = sum(plan.hidden.values())
        out.append(
            Text(
                f"{total} change{'s' if total != 1 else ''} of {fields} hidden "
                "(--all-fields shows them)",
                style="dim",
            )
        )
    for entity in plan.entities:
        out.append(Text(""))
        out.append(_heading(entity))
        for event in entity.events:
            out.append(_event_heading(event))
            own = next((ln.change for ln in event.lines if not ln.label), None)
            # a server created, restored or deleted with its tools and prompts: counted, not
            # listed (--json lists them)
            counted = [
                ln
                for ln in event.lines
                if own not in (None, "updated")
                and ln.kind in ("tool", "prompt")
                and ln.change == own
            ]
            skip = {id(ln) for ln in counted}
            for line in event.lines:
                symbol = _LINE_SYMBOL[line.change]
                if id(line) in skip:
                    continue
                if not line.label:
                    if line.change != "updated":
                        out.append(_line(6, symbol, line.change + _with(counted)))
                    elif not line.fields:
                        out.append(_line(6, "~", "saved, no field changed"))
                    out.extend(_field_line(6, change) for change in line.fields)
                    continue
                text = line.label
                if line.change == "restored":
                    text += " (restored)"
                if line.summary:
                    text += f": {line.summary}"
                out.append(_line(6, symbol, text))
                out.extend(_field_line(8, change) for change in line.fields)
    return out


# --- tables that fit the width -------------------------------------------------------------
