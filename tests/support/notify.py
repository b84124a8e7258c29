"""Notify test helpers: a target, a clock the test moves, events queued and their states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from inventory.db import models
from inventory.db.outbox import write_events
from inventory.settings.notify import NotifyTarget

__all__ = ["SECRET", "T0", "Clock", "queue", "states", "target"]

SECRET = "whsec_delivery_5f2b9c1e"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def target(url: str, name: str = "sec", **extra: Any) -> NotifyTarget:
    values: dict[str, Any] = {
        "name": name,
        "url": url,
        "secret": SECRET,
        "batch_window": 0,
        "timeout": "1s",
        **extra,
    }
    return NotifyTarget.model_validate(values)


def queue(
    engine: Engine, name: str, count: int, *, now: datetime = T0, first: int = 0
) -> list[str]:
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(first, first + count)]
    rows = [
        {
            "target": name,
            "event_id": event_id,
            "event_type": "tool.created",
            "account_id": "a" * 32,
            "run_id": 1,
            "payload": {"id": event_id, "type": "tool.created", "seq": n},
        }
        for n, event_id in enumerate(ids, first)
    ]
    with engine.begin() as conn:
        write_events(conn, rows, now=now)
    return ids


def states(engine: Engine, name: str = "sec") -> dict[str, tuple[str, int, str | None]]:
    outbox = models.table_of(models.OutboxEvent)
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.event_id, outbox.c.state, outbox.c.attempts, outbox.c.last_error)
            .where(outbox.c.target == name)
            .order_by(outbox.c.id)
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
