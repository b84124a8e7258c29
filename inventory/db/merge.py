"""A one-off repair: merge consecutive server versions that differ only in observations.

Before migration 0007 every re-sync by Cloudflare (``last_synced`` moving) wrote a new server
version. Since 0007 their content hashes leave the observations out, so such a run of versions
carries one hash; merging it keeps the first version (its ``valid_from``, ``run_id`` and
``change``), extends it to where the last one ended, gives it the observations last seen (the
last version's ``last_synced``, ``last_successful_sync`` and ``raw``), and deletes the rest.
A current row whose open version was merged takes the kept version's ``valid_from``/``run_id``.
Nothing is written unless ``apply`` is true; the counts are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, update

from inventory.db import models
from inventory.rows import OBSERVED

__all__ = ["MergeReport", "merge_observation_versions"]


@dataclass(frozen=True, slots=True)
class MergeReport:
    versions: int  # server versions read
    merged: int  # versions folded into an earlier one (deleted when applied)
    entities: int  # servers whose history had any
    applied: bool


@dataclass(slots=True)
class _Run:
    head: Any
    last: Any
    dropped: list[int]


def _runs(conn: Connection) -> Iterator[_Run]:
    """Runs of consecutive versions of one server with one content hash, each unbroken."""
    h = models.table_of(models.ServerVersion)
    query = select(
        h.c.version_id, h.c.account_id, h.c.id, h.c.content_hash, h.c.valid_from, h.c.valid_to,
        h.c.run_id, h.c.ended_run_id, h.c.ended_by, h.c.change,
    ).order_by(h.c.account_id, h.c.id, h.c.valid_from, h.c.version_id)  # fmt: skip
    run: _Run | None = None
    for row in conn.execute(query):
        joins = (
            run is not None
            and (row.account_id, row.id) == (run.last.account_id, run.last.id)
            and row.content_hash == run.last.content_hash
            and row.change == "updated"
            and run.last.ended_by == "updated"
            and run.last.valid_to == row.valid_from
        )
        if run is not None and joins:
            run.dropped.append(row.version_id)
            run.last = row
            continue
        if run is not None:
            yield run
        run = _Run(head=row, last=row, dropped=[])
    if run is not None:
        yield run


def merge_observation_versions(conn: Connection, *, apply: bool = False) -> MergeReport:
    """Count (and with ``apply``, merge) versions that differ from the one before only in
    observations. Runs in the caller's transaction."""
    h = models.table_of(models.ServerVersion)
    current = models.table_of(models.Server)
    versions = merged = entities = 0
    merges: list[_Run] = []
    for run in _runs(conn):
        versions += 1 + len(run.dropped)
        if run.dropped:
            merged += len(run.dropped)
            entities += 1
            merges.append(run)
    if apply and merges:
        observed = _observed(conn, {run.last.version_id for run in merges})
        # the dropped versions go first: the kept one may become the open version
        dropped = [{"v": v} for run in merges for v in run.dropped]
        conn.execute(delete(h).where(h.c.version_id == bindparam("v")), dropped)
        conn.execute(
            update(h)
            .where(h.c.version_id == bindparam("v"))
            .values(
                valid_to=bindparam("valid_to"),
                ended_run_id=bindparam("ended_run_id"),
                ended_by=bindparam("ended_by"),
                **{n: bindparam(f"o_{n}") for n in (*OBSERVED, "raw")},
            ),
            [
                {
                    "v": run.head.version_id,
                    "valid_to": run.last.valid_to,
                    "ended_run_id": run.last.ended_run_id,
                    "ended_by": run.last.ended_by,
                    **{f"o_{n}": observed[run.last.version_id][n] for n in (*OBSERVED, "raw")},
                }
                for run in merges
            ],
        )
        still_open = [run for run in merges if run.last.valid_to is None]
        if still_open:
            conn.execute(
                update(current)
                .where(and_(current.c.account_id == bindparam("a"), current.c.id == bindparam("s")))
                .values(valid_from=bindparam("valid_from"), run_id=bindparam("run_id")),
                [
                    {
                        "a": run.head.account_id,
                        "s": run.head.id,
                        "valid_from": run.head.valid_from,
                        "run_id": run.head.run_id,
                    }
                    for run in still_open
                ],
            )
    return MergeReport(versions=versions, merged=merged, entities=entities, applied=apply)


def _observed(conn: Connection, version_ids: set[int]) -> dict[int, dict[str, Any]]:
    h = models.table_of(models.ServerVersion)
    found: dict[int, dict[str, Any]] = {}
    ids = sorted(version_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(h.c.version_id, *(h.c[n] for n in (*OBSERVED, "raw"))).where(
            h.c.version_id.in_(chunk)
        )
        for row in conn.execute(query).mappings():
            found[row["version_id"]] = dict(row)
    return found
