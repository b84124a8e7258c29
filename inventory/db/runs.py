"""The bookkeeping of sync runs: opening, fencing, finishing and abandoning them.

A run is opened ``running`` (and becomes the account's latest run) before anything is fetched,
and it is finished exactly once, only from ``running``: a run that another process closed as
``abandoned`` is never re-opened.

The fencing token is ``accounts.applied_run_id``, the id of the last run that applied changes.
Run ids only grow, so a run whose id is smaller read an older state than the run that applied:
it applies nothing and is recorded ``superseded``. The check happens inside the transaction that
applies, with the account row locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's writer
transaction, ``BEGIN IMMEDIATE``, already serialises), so it holds whatever happened to the
per-account lock that normally keeps two syncs of one account apart.

Lock order, everywhere: the account row, then its runs. Every function takes a Connection inside
a transaction the caller owns, except ``close_abandoned_runs`` and ``mark_unconfigured``, which
the daemon and ``inventory sync`` call on their own, outside any account's sync.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, insert, or_, select, update

from inventory.db import models
from inventory.db.tables import TABLES

__all__ = [
    "RUN_STATUSES",
    "Fence",
    "abandon_runs",
    "check_fence",
    "close_abandoned_runs",
    "close_dead_runs",
    "count_entities",
    "finish_run",
    "mark_unconfigured",
    "open_run",
    "synced_since",
]

RUN_STATUSES = ("running", "succeeded", "partial", "failed", "superseded", "abandoned")
# Statuses of a run that counts as the account's sync of a cycle (an abort or a crash does not).
_CYCLE_STATUSES = ("succeeded", "partial", "failed")

_accounts = models.table_of(models.Account)
_runs = models.table_of(models.SyncRun)


@dataclass(frozen=True, slots=True)
class Fence:
    """Why a run may not apply: ``run_status`` is its status now (``running`` or closed)."""

    run_status: str
    reason: str


def open_run(
    conn: Connection,
    *,
    account_id: str,
    name: str | None,
    now: datetime,
    host: str,
    pid: int,
) -> int:
    """Insert the run as ``running`` (and the account if new); it becomes the latest run."""
    known = conn.execute(
        select(_accounts.c.name, _accounts.c.configured).where(_accounts.c.id == account_id)
    ).first()
    if known is None:
        conn.execute(
            insert(_accounts).values(id=account_id, name=name, configured=True, first_seen_at=now)
        )
    run_id = int(
        conn.execute(
            insert(_runs)
            .values(account_id=account_id, status="running", started_at=now, host=host, pid=pid)
            .returning(_runs.c.id)
        ).scalar_one()
    )
    # While this run works, the account's latest run is 'running': `status` never shows the
    # previous success as the latest word while a later run is stuck.
    conn.execute(
        update(_accounts)
        .where(_accounts.c.id == account_id)
        .values(
            name=name, configured=True, last_run_id=run_id, last_status="running", last_sync_at=now
        )
    )
    return run_id


def check_fence(conn: Connection, account_id: str, run_id: int) -> Fence | None:
    """Lock the account row; None when the run may apply, else why it may not."""
    applied = conn.execute(
        select(_accounts.c.applied_run_id).where(_accounts.c.id == account_id).with_for_update()
    ).scalar_one_or_none()
    status = conn.execute(
        select(_runs.c.status).where(_runs.c.id == run_id).with_for_update()
    ).scalar_one()
    if status != "running":
        return Fence(
            status,
            f"this run was closed as {status} by another process while it ran "
            "(its lock was lost); it applied nothing",
        )
    if applied is not None and applied > run_id:
        return Fence(
            status,
            f"run {applied}, which started later, already applied a newer state; "
            "this run's older read was not applied",
        )
    return None


def finish_run(
    conn: Connection,
    run_id: int,
    account_id: str,
    values: dict[str, Any],
    *,
    now: datetime,
    applied: bool = False,
    memo: dict[str, Any] | None = None,
) -> bool:
    """Close a ``running`` run with ``values`` (status and figures); False if it was not running.

    ``applied``: the run applied the account's state (or vouched for it, unchanged): it becomes
    the fencing token and the last success, and its ``memo`` replaces the listing memo.
    """
    closed = conn.execute(
        update(_runs)
        .where(_runs.c.id == run_id, _runs.c.status == "running")
        .values(finished_at=now, **values)
    ).rowcount
    if closed != 1:
        return False
    # The latest run speaks for the account: an older run finishing late leaves these alone.
    newer = or_(_accounts.c.last_run_id.is_(None), _accounts.c.last_run_id <= run_id)
    latest: dict[str, Any] = {
        "last_run_id": case((newer, run_id), else_=_accounts.c.last_run_id),
        "last_status": case((newer, values["status"]), else_=_accounts.c.last_status),
        "last_sync_at": case((newer, now), else_=_accounts.c.last_sync_at),
    }
    if applied:
        latest.update(applied_run_id=run_id, last_success_at=now, listing_memo=memo)
    conn.execute(update(_accounts).where(_accounts.c.id == account_id).values(latest))
    return True


def abandon_runs(
    conn: Connection, runs: Sequence[tuple[int, str]], *, now: datetime, message: str
) -> int:
    """Close these (run id, account id) runs as ``abandoned`` if still running; how many."""
    if not runs:
        return 0
    ids = [run_id for run_id, _ in runs]
    accounts = sorted({account_id for _, account_id in runs})
    conn.execute(
        select(_accounts.c.id)
        .where(_accounts.c.id.in_(accounts))
        .order_by(_accounts.c.id)
        .with_for_update()
    ).all()
    closed = conn.execute(
        update(_runs)
        .where(_runs.c.id.in_(ids), _runs.c.status == "running")
        .values(status="abandoned", finished_at=now, error_class="Abandoned", error_message=message)
    ).rowcount
    conn.execute(
        update(_accounts)
        .where(_accounts.c.last_run_id.in_(ids), _accounts.c.last_status == "running")
        .values(last_status="abandoned", last_sync_at=now)
    )
    return int(closed)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned_runs(engine: Engine, *, now: datetime, host: str | None = None) -> int:
    """Close runs left ``running`` by a process of this host that no longer exists."""
    host = host or socket.gethostname()
    with engine.begin() as conn:
        rows = conn.execute(
            select(_runs.c.id, _runs.c.account_id, _runs.c.pid).where(
                _runs.c.status == "running", _runs.c.host == host
            )
        ).all()
        dead = [(r.id, r.account_id) for r in rows if r.pid is None or not _pid_alive(r.pid)]
        return abandon_runs(
            conn,
            dead,
            now=now,
            message="the process running this sync stopped before it finished",
        )


def close_dead_runs(conn: Connection, account_id: str, *, now: datetime) -> int:
    """Close the account's runs still ``running``: the caller holds the account's lock, so
    their processes lost it (or died); how many."""
    open_runs = conn.execute(
        select(_runs.c.id).where(_runs.c.account_id == account_id, _runs.c.status == "running")
    ).scalars()
    return abandon_runs(
        conn,
        [(run_id, account_id) for run_id in open_runs],
        now=now,
        message="the process running this sync stopped (or lost its lock) before it finished",
    )


def synced_since(
    conn: Connection, account_id: str, since: datetime, *, host: str, pid: int
) -> bool:
    """Whether a run counts as the account's sync of the cycle that began at ``since``.

    A run started since then counts. So does one that another process (not ``host``/``pid``)
    began earlier and finished since then: a late sync of the last cycle that another replica
    was still running when this cycle began has read the account in this one, and syncing it
    again at once would spend the budget twice on one account. This process's own such run
    does not count: a fire that found it still running asked for one more sync (an overlap).
    """
    elsewhere = or_(_runs.c.host.is_distinct_from(host), _runs.c.pid.is_distinct_from(pid))
    query = (
        select(_runs.c.id)
        .where(
            _runs.c.account_id == account_id,
            or_(_runs.c.started_at >= since, and_(_runs.c.finished_at >= since, elsewhere)),
            _runs.c.status.in_(_CYCLE_STATUSES),
            or_(_runs.c.error_class.is_(None), _runs.c.error_class != "Aborted"),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def count_entities(conn: Connection, account_id: str) -> dict[str, int]:
    """The account's current rows, by kind (for metrics)."""
    counts: dict[str, int] = {}
    for kind, spec in TABLES.items():
        query = select(func.count()).select_from(spec.current)
        counts[kind] = int(
            conn.execute(query.where(spec.current.c.account_id == account_id)).scalar_one()
        )
    return counts


def mark_unconfigured(engine: Engine, configured: Iterable[str]) -> None:
    """Flag accounts no longer in the configuration; their data stays, nothing is deleted."""
    with engine.begin() as conn:
        conn.execute(
            update(_accounts)
            .where(_accounts.c.configured.is_(True), _accounts.c.id.not_in(list(configured)))
            .values(configured=False)
        )
