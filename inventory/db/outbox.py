"""The notification outbox and the per-target delivery leases (inventory.notify).

Events enter the outbox in the caller's transaction (the sync's): one row per event and target,
``pending``. A deliverer holds a target's lease to deliver its events: a row of
``notify_leases`` with a holder, an expiry and a fencing ``token`` that grows each time another
holder takes it. Every write a deliverer makes (starting a batch, recording its outcome) first
locks the lease row and checks that the token is still the one it was given, the way a sync's
apply checks its run's fencing token: a deliverer whose lease was taken over (it stalled past
the expiry) writes nothing and stops. So one deliverer at a time sends a target's events, in
``id`` order, across replicas on one PostgreSQL (SQLite: ``BEGIN IMMEDIATE`` serialises).

A batch's events get its ``batch_id`` (committed) before the request is sent: after a crash the
next deliverer sends exactly that batch again, with the same ids, before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from inventory.db import models

__all__ = [
    "Lease",
    "OutboxRow",
    "acquire_lease",
    "drop_unconfigured",
    "finish_events",
    "next_batch",
    "prune_finished",
    "release_lease",
    "retry_events",
    "split_batch",
    "start_batch",
    "write_events",
]

_outbox = models.table_of(models.OutboxEvent)
_leases = models.table_of(models.NotifyLease)


@dataclass(frozen=True, slots=True)
class Lease:
    target: str
    holder: str
    token: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    batch_id: str | None


def write_events(conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """Queue events, in order: each row names its target, event_id, event_type and payload."""
    if rows:
        values = [
            {"state": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now, **r}
            for r in rows
        ]
        conn.execute(insert(_outbox), values)


def acquire_lease(
    engine: Engine,
    target: str,
    holder: str,
    *,
    now: datetime,
    ttl: float,
    gone: Callable[[str], bool] = lambda _holder: False,
) -> Lease | None:
    """Take (or renew) the target's lease until ``now + ttl``; None while another holds it.

    ``gone(holder)``: the holder is known to be dead (a process of this host that no longer
    exists), so its lease need not run out first.
    """
    upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        conn.execute(
            upsert(_leases)
            .values(target=target, holder=None, token=0, expires_at=None)
            .on_conflict_do_nothing(index_elements=["target"])
        )
        row = conn.execute(
            select(_leases.c.holder, _leases.c.token, _leases.c.expires_at)
            .where(_leases.c.target == target)
            .with_for_update()
        ).one()
        free = (
            row.holder is None
            or row.expires_at is None
            or row.expires_at <= now
            or (row.holder != holder and gone(row.holder))
        )
        if row.holder != holder and not free:
            return None
        token = row.token if row.holder == holder and not free else row.token + 1
        conn.execute(
            update(_leases)
            .where(_leases.c.target == target)
            .values(holder=holder, token=token, expires_at=now + timedelta(seconds=ttl))
        )
    return Lease(target, holder, token)


def _fenced(conn: Connection, lease: Lease) -> bool:
    """Lock the lease row: True while the lease is still this one (no one took it over)."""
    token = conn.execute(
        select(_leases.c.token).where(_leases.c.target == lease.target).with_for_update()
    ).scalar_one_or_none()
    return token == lease.token


def release_lease(engine: Engine, lease: Lease) -> None:
    with engine.begin() as conn:
        if _fenced(conn, lease):
            conn.execute(
                update(_leases)
                .where(_leases.c.target == lease.target)
                .values(holder=None, expires_at=None)
            )


def next_batch(conn: Connection, target: str, *, limit: int) -> list[OutboxRow]:
    """The target's first pending events in order; a batch already started comes back whole."""
    query = (
        select(
            _outbox.c.id,
            _outbox.c.event_id,
            _outbox.c.payload,
            _outbox.c.created_at,
            _outbox.c.attempts,
            _outbox.c.next_attempt_at,
            _outbox.c.batch_id,
        )
        .where(_outbox.c.target == target, _outbox.c.state == "pending")
        .order_by(_outbox.c.id)
        .limit(limit)
    )
    rows = [OutboxRow(*r) for r in conn.execute(query)]
    if rows and rows[0].batch_id is not None:  # in flight when its sender stopped: as it was
        return [r for r in rows if r.batch_id == rows[0].batch_id]
    return [r for r in rows if r.batch_id is None]


def _update_pending(
    engine: Engine, lease: Lease, ids: Sequence[int], values: dict[str, Any]
) -> bool:
    """Set ``values`` on those of the events still pending, fenced: False (no write) if the
    lease was lost."""
    with engine.begin() as conn:
        if not _fenced(conn, lease):
            return False
        conn.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(list(ids)), _outbox.c.state == "pending")
            .values(values)
        )
    return True


def start_batch(engine: Engine, lease: Lease, ids: Sequence[int], batch_id: str) -> bool:
    """Mark the events as one batch before it is sent; False if the lease was lost."""
    return _update_pending(engine, lease, ids, {"batch_id": batch_id})


def finish_events(
    engine: Engine,
    lease: Lease,
    ids: Sequence[int],
    *,
    state: str,
    now: datetime,
    error: str | None = None,
    attempted: bool = True,
) -> bool:
    """Record the events ``delivered`` or ``dead``; False (no write) if the lease was lost."""
    values = {
        "state": state,
        "finished_at": now,
        # a delivered event keeps the error of its last failed attempt, if any
        "last_error": error if error is not None else _outbox.c.last_error,
        "attempts": _outbox.c.attempts + (1 if attempted else 0),
    }
    return _update_pending(engine, lease, ids, values)


def retry_events(
    engine: Engine,
    lease: Lease,
    ids: Sequence[int],
    *,
    at: datetime,
    error: str,
    keep_batch: bool = True,
) -> bool:
    """One more failed attempt; the batch is tried again at ``at``. False if the lease was lost.

    ``keep_batch=False``: the events leave their batch and are sent in a new one.
    """
    values: dict[str, Any] = {
        "attempts": _outbox.c.attempts + 1,
        "next_attempt_at": at,
        "last_error": error,
    }
    if not keep_batch:
        values["batch_id"] = None
    return _update_pending(engine, lease, ids, values)


def drop_unconfigured(engine: Engine, targets: Iterable[str]) -> dict[str, int]:
    """Delete the pending events of targets no longer configured: how many, by target."""
    names = list(targets)
    gone = _outbox.c.state == "pending"
    if names:
        gone = gone & _outbox.c.target.not_in(names)
    with engine.begin() as conn:
        counts = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                select(_outbox.c.target, func.count()).where(gone).group_by(_outbox.c.target)
            )
        }
        if counts:
            conn.execute(delete(_outbox).where(gone))
    return counts


def prune_finished(engine: Engine, *, before: datetime) -> int:
    """Forget delivered events finished before ``before`` (dead ones stay until deleted)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                delete(_outbox).where(
                    _outbox.c.state == "delivered", _outbox.c.finished_at < before
                )
            ).rowcount
        )


def split_batch(engine: Engine, lease: Lease, ids: Sequence[int], batch_ids: Sequence[str]) -> bool:
    """Give each event a batch of its own (a refused batch is sent again one event at a time)."""
    with engine.begin() as conn:
        if not _fenced(conn, lease):
            return False
        for row_id, batch_id in zip(ids, batch_ids, strict=True):
            conn.execute(update(_outbox).where(_outbox.c.id == row_id).values(batch_id=batch_id))
    return True
