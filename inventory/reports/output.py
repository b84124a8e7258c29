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

__all__ = [
    "Column",
    "Format",
    "auto_table",
    "cell",
    "duration_text",
    "fit_columns",
    "fitted_table",
    "notes",
    "rows_csv",
    "rows_json",
    "rows_table",
    "value_text",
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
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    width: int,
    title: str,
    headers: Mapping[str, str] | None = None,
) -> Table:
    """Any rows, fitted: text wraps (to 8 columns at the least), numbers and times never do;
    only when even that is too wide do the rightmost columns go. ``headers``: a column's
    heading where it is not its name."""
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
                (headers or {}).get(name, name),
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


def value_text(value: Any) -> str | None:
    """A row's value as CSV holds it: text as is, times ISO 8601, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
