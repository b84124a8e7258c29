"""What the outbox holds, read for people and for metrics: per target (``status``, the
``notify_*`` gauges), per account and target (``status --json``), and the events themselves
(``notify pending``). Read-only; the writes are inventory.db.outbox's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from inventory.db import models

__all__ = ["list_events", "outbox_by_account", "outbox_summary"]

_outbox = models.table_of(models.OutboxEvent)


def outbox_summary(conn: Connection) -> list[dict[str, Any]]:
    """Per target: pending and dead events, the oldest pending one's age basis, the last error."""
    rows = conn.execute(
        select(
            _outbox.c.target,
            _outbox.c.state,
            func.count(),
            func.min(_outbox.c.created_at),
        )
        .where(_outbox.c.state.in_(["pending", "dead"]))
        .group_by(_outbox.c.target, _outbox.c.state)
        .order_by(_outbox.c.target, _outbox.c.state)
    ).all()
    summary: dict[str, dict[str, Any]] = {}
    for target, state, count, oldest in rows:
        entry = summary.setdefault(
            target, {"target": target, "pending": 0, "dead": 0, "oldest_pending": None}
        )
        entry[state] = int(count)
        if state == "pending":
            entry["oldest_pending"] = oldest
    return list(summary.values())


def outbox_by_account(conn: Connection) -> dict[str | None, dict[str, dict[str, int]]]:
    """Pending and dead events by account, then target: ``{account: {target: {pending, dead}}}``."""
    rows = conn.execute(
        select(_outbox.c.account_id, _outbox.c.target, _outbox.c.state, func.count())
        .where(_outbox.c.state.in_(["pending", "dead"]))
        .group_by(_outbox.c.account_id, _outbox.c.target, _outbox.c.state)
        .order_by(_outbox.c.account_id, _outbox.c.target)
    ).all()
    counts: dict[str | None, dict[str, dict[str, int]]] = {}
    for account_id, target, state, count in rows:
        entry = counts.setdefault(account_id, {}).setdefault(target, {"pending": 0, "dead": 0})
        entry[state] = int(count)
    return counts


def list_events(
    conn: Connection,
    *,
    states: Sequence[str],
    targets: Sequence[str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = select(
        _outbox.c.target,
        _outbox.c.event_id,
        _outbox.c.event_type,
        _outbox.c.account_id,
        _outbox.c.state,
        _outbox.c.attempts,
        _outbox.c.created_at,
        _outbox.c.next_attempt_at,
        _outbox.c.last_error,
    ).where(_outbox.c.state.in_(list(states)))
    if targets:  # filtered here, not after the limit: the limit counts these targets' events
        query = query.where(_outbox.c.target.in_(list(targets)))
    query = query.order_by(_outbox.c.target, _outbox.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]
