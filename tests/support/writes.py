"""Counting the rows a sync writes, as the database reports them (cursor rowcount)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)


@contextmanager
def count_writes(engine: Engine) -> Iterator[Counter[str]]:
    """Rows inserted, updated or deleted per table while the block runs."""
    counts: Counter[str] = Counter()

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        match = _WRITE.match(statement)
        if match:
            counts[match.group(2)] += max(cursor.rowcount, 0)

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield counts
    finally:
        event.remove(engine, "after_cursor_execute", after)
