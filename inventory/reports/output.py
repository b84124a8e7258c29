"""Rows out as a rich table (people), JSON or CSV (scripts); no querying here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from inventory.reports.fields import ABSENT, FieldChange, show_value
from inventory.reports.plan import EntityPlan, Event, Line, Plan

__all__ = [
    "Column",
    "Format",
    "auto_table",
    "cell",
    "duration_text",
    "fit_columns",
    "fitted_table",
    "notes",
    "plan_lines",
    "rows_csv",
    "rows_json",
    "rows_table",
]

Format = Literal["table", "json", "csv"]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def rows_json(value: Any) -> str:
    return json.dumps(_plain(value), indent=2, default=str)


def rows_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
    return buffer.getvalue()


def rows_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None
) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: a value holding "[...]" is shown as it is, not read as markup
        table.add_row(*(Text(cell(row.get(c))) for c in columns))
    return table


# --- the changes plan ----------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class Column:
    """A table column and how it gives way when the terminal is narrow.

    ``drop``: 0 never dropped, otherwise the highest number goes first. ``wrap``: 0 never
    wraps (numbers, times, statuses: shown whole or not at all), else the narrowest it may
    fold to.
    """

    key: str
    header: str
    drop: int = 0
    wrap: int = 0
    justify: Literal["left", "right"] = "left"
    format: Callable[[Any], str] = cell
    style: Callable[[Any], str] | None = None


def _needs(column: Column, texts: Sequence[str]) -> int:
    header = max((cell_len(w) for w in column.header.split()), default=0)
    widest = max((cell_len(line) for t in texts for line in t.splitlines()), default=0)
    if column.wrap:
        return max(header, min(widest, column.wrap))
    return max(header, widest)


def fit_columns(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], width: int
) -> tuple[list[Column], list[Column]]:
    """The columns that fit in ``width`` (dropping by priority), and the ones dropped."""
    texts = {c.key: [c.format(r.get(c.key)) for r in rows] for c in columns}
    kept = list(columns)
    dropped: list[Column] = []

    def total(cols: Sequence[Column]) -> int:
        # SIMPLE_HEAD box without edges: one space between columns, padding 1 each side inside
        return sum(_needs(c, texts[c.key]) for c in cols) + 3 * len(cols) - 3

    while total(kept) > width:
        droppable = [c for c in kept if c.drop]
        if not droppable:
            break
        worst = max(droppable, key=lambda c: (c.drop, kept.index(c)))
        kept.remove(worst)
        dropped.append(worst)
    return kept, dropped


def fitted_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    width: int,
    title: str | None = None,
) -> Table:
    """A table no wider than ``width``: long text wraps, numbers and times never do (nor are
    they cut); when even that does not fit, low-priority columns are left out, and named."""
    kept, dropped = fit_columns(columns, rows, width)
    caption = None
    if dropped:
        names = ", ".join(c.header for c in dropped)
        caption = f"not shown at {width} columns: {names} (--json shows every column)"
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    texts = {c.key: [c.format(r.get(c.key)) for r in rows] for c in kept}
    for column in kept:
        need = _needs(column, texts[column.key])
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold",
            min_width=None if column.wrap else need,
        )
    for i, row in enumerate(rows):
        table.add_row(
            *(Text(texts[c.key][i], style=c.style(row.get(c.key)) if c.style else "") for c in kept)
        )
    return table


def auto_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, width: int, title: str
) -> Table:
    """Any rows, fitted: text wraps (to 8 columns at the least), numbers and times never do;
    only when even that is too wide do the rightmost columns go."""
    specs = []
    for i, name in enumerate(columns):
        values = [r.get(name) for r in rows if r.get(name) is not None]
        plain = all(isinstance(v, int | float | datetime) for v in values)
        number = plain and any(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )
        specs.append(
            Column(
                name,
                name,
                drop=i,
                wrap=0 if plain else 8,
                justify="right" if number else "left",
            )
        )
    return fitted_table(rows, specs, width=width, title=title)


def duration_text(seconds: float | None) -> str:
    """1d 2h 3m 4s, whole seconds, zero parts left out ("1d", "2h 5s"); never cut short."""
    if seconds is None:
        return ""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)


def notes(title: str, entries: Sequence[tuple[str, str]]) -> list[RenderableType]:
    """A titled list under a table: each entry's head, then its text indented (and wrapped
    there), for what is too long for a table cell (error messages)."""
    if not entries:
        return []
    out: list[RenderableType] = [Text(title, style="bold")]
    for head, body in entries:
        out.append(Padding(Text(head), (0, 0, 0, 2), expand=False))
        out.append(Padding(Text(body), (0, 0, 0, 4), expand=False))
    return out
