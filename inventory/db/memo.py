"""The listing memo: page digests of an account's last clean run, kept on its ``accounts`` row.

A resync whose pages all come back byte for byte as that run read them has nothing to decode,
transform, diff or write: the stored rows already are what those bytes mean. The memo is trusted
only when (a) it was written by a run of the same ``TRANSFORM_REVISION``, and (b) that run is
still the account's latest run that wrote anything (succeeded or partial), so a partial run, a
run by code that does not keep memos, or a rolled-back transaction can never leave it stale.
It is written only by clean runs: succeeded, consistent, nothing rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqlalchemy import Connection, func, select

from inventory.db import models
from inventory.rows import TRANSFORM_REVISION

__all__ = ["ListingMemo", "memo_value", "read_memo"]

_WRITING_STATUSES = ("succeeded", "partial")


@dataclass(frozen=True, slots=True)
class ListingMemo:
    portals: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    # The warnings of the run that read those pages: a run that reads them again repeats them.
    warnings: tuple[str, ...] = ()


def read_memo(conn: Connection, account_id: str) -> ListingMemo:
    """The memo to compare this run's pages with; empty when there is none to trust."""
    accounts, runs = models.table_of(models.Account), models.table_of(models.SyncRun)
    latest = (
        select(func.max(runs.c.id))
        .where(runs.c.account_id == account_id, runs.c.status.in_(_WRITING_STATUSES))
        .scalar_subquery()
    )
    row = conn.execute(
        select(accounts.c.listing_memo, latest).where(accounts.c.id == account_id)
    ).first()
    if row is None:
        return ListingMemo()
    memo, latest_run = row
    if not isinstance(memo, dict) or memo.get("revision") != TRANSFORM_REVISION:
        return ListingMemo()
    if latest_run is None or memo.get("run_id") != latest_run:
        return ListingMemo()
    portals, servers = memo.get("portals"), memo.get("servers")
    if not (_digests(portals) and _digests(servers)):
        return ListingMemo()
    warnings = memo.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        return ListingMemo()
    return ListingMemo(portals=tuple(portals), servers=tuple(servers), warnings=tuple(warnings))


def memo_value(
    run_id: int,
    portals: tuple[str, ...],
    servers: tuple[str, ...],
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "revision": TRANSFORM_REVISION,
        "run_id": run_id,
        "portals": list(portals),
        "servers": list(servers),
        "warnings": list(warnings),
    }


def _digests(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(isinstance(d, str) for d in value)
