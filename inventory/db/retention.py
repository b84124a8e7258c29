"""Retention: remove old closed versions and the old runs nothing kept refers to.

Only versions whose ``valid_to`` is before the cutoff go, so a query about an instant at or
after the cutoff (AS OF, changes since) answers as before. Current rows and open versions are
never touched, and a deleted version that a restore follows is kept, so the restore still
reads as one. A run row goes once it finished before the cutoff and no kept row names it
(``run_id``/``ended_run_id`` of any version or current row, an account's ``last_run_id``);
its rejected records go with it (they reference it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Table, delete, or_, select

from inventory.db import models
from inventory.db.tables import TABLES

__all__ = ["PruneResult", "prune_history"]

_CHUNK = 500  # ids per DELETE … IN (…): well under SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff: datetime
    versions: dict[str, int] = field(default_factory=dict)  # history table -> rows removed
    runs: int = 0
    rejected_records: int = 0

    @property
    def total(self) -> int:
        return sum(self.versions.values()) + self.runs + self.rejected_records


def prune_history(engine: Engine, *, older_than: timedelta, now: datetime) -> PruneResult:
    """Remove what closed before ``now - older_than``, in one transaction."""
    if older_than <= timedelta(0):
        msg = "older_than must be a positive duration"
        raise ValueError(msg)
    try:
        cutoff = now - older_than
    except OverflowError:  # before the year 1: nothing is that old
        cutoff = datetime.min.replace(tzinfo=UTC)
    versions: dict[str, int] = {}
    with engine.begin() as conn:
        for spec in TABLES.values():
            versions[spec.history.name] = _prune_versions(conn, spec.history, spec.keys, cutoff)
        runs, rejected = _prune_runs(conn, cutoff)
    return PruneResult(cutoff=cutoff, versions=versions, runs=runs, rejected_records=rejected)


def _prune_versions(
    conn: Connection, history: Table, keys: tuple[str, ...], cutoff: datetime
) -> int:
    # A deleted version followed by a later one (a restore) stays: without it the restore
    # would read as a creation.
    later = history.alias("later")
    restored = (
        select(later.c.version_id)
        .where(
            later.c.account_id == history.c.account_id,
            *(later.c[k] == history.c[k] for k in keys),
            later.c.valid_from >= history.c.valid_to,
        )
        .exists()
    )
    stmt = delete(history).where(
        history.c.valid_to.is_not(None),
        history.c.valid_to < cutoff,
        or_(history.c.ended_by != "deleted", ~restored),
    )
    return conn.execute(stmt).rowcount


def _referenced_runs(conn: Connection, below: int) -> set[int]:
    # One pass per column: the tables have no run_id index, and the distinct run ids are few.
    referenced: set[int] = set()
    columns = []
    for spec in TABLES.values():
        columns += [spec.history.c.run_id, spec.history.c.ended_run_id, spec.current.c.run_id]
    columns.append(models.table_of(models.Account).c.last_run_id)
    for column in columns:
        query = select(column).where(column.is_not(None), column <= below).distinct()
        referenced.update(int(v) for v in conn.scalars(query))
    return referenced


def _prune_runs(conn: Connection, cutoff: datetime) -> tuple[int, int]:
    runs = models.table_of(models.SyncRun)
    rejected = models.table_of(models.RejectedRecord)
    old = list(
        conn.scalars(
            select(runs.c.id).where(
                runs.c.status != "running",
                runs.c.finished_at.is_not(None),
                runs.c.finished_at < cutoff,
            )
        )
    )
    if not old:
        return 0, 0
    kept = _referenced_runs(conn, max(old))
    doomed = sorted(set(old) - kept)
    removed_runs = removed_rejected = 0
    for start in range(0, len(doomed), _CHUNK):
        chunk = doomed[start : start + _CHUNK]
        removed_rejected += conn.execute(
            delete(rejected).where(rejected.c.run_id.in_(chunk))
        ).rowcount
        removed_runs += conn.execute(delete(runs).where(runs.c.id.in_(chunk))).rowcount
    return removed_runs, removed_rejected
