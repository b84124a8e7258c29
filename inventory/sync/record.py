"""Recording a run's outcome: the fence before an apply, the run's finish, its log line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from inventory.db.runs import check_fence, finish_run
from inventory.notify.record import Notifier, record_run_outcome
from inventory.sync.diff import ChangeSet
from inventory.sync.outcome import AccountResult

__all__ = ["finish", "log_result", "superseded"]

log = structlog.get_logger("inventory.sync")


def superseded(
    conn: Connection,
    result: AccountResult,
    *,
    observed_at: datetime,
    clock: Callable[[], datetime],
) -> bool:
    """Fence the apply (the account row locked): True when this run must apply nothing."""
    assert result.run_id is not None
    fence = check_fence(conn, result.account_id, result.run_id)
    if fence is None:
        return False
    result.status, result.error_class, result.error = "superseded", None, fence.reason
    result.counts, result.rejected = {}, 0
    if fence.run_status == "running":
        finish(conn, result, now=clock(), observed_at=observed_at)
    log.warning(
        "run superseded: nothing applied",
        account_id=result.account_id,
        run_id=result.run_id,
        reason=fence.reason,
    )
    return True


def finish(
    conn: Connection,
    result: AccountResult,
    *,
    now: datetime,
    applied: bool = False,
    changes: ChangeSet | None = None,
    observed_at: datetime | None = None,
    memo: dict[str, Any] | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Close the run from 'running'; a run that ``applied`` also moves the fencing token.

    ``notifier``: sync.failed / sync.recovered go into the outbox in this transaction.
    """
    assert result.run_id is not None
    added, changed, removed = changes.totals() if changes is not None else (0, 0, 0)
    if changes is not None:
        result.observed = sum(len(c.observations) for c in changes.kinds.values())
    values = {
        "status": result.status,
        "observed_at": observed_at,
        "added": added,
        "changed": changed,
        "removed": removed,
        "rejected": result.rejected,
        "counts": result.counts or None,
        "requests": result.requests,
        "pages": result.pages,
        "retries": result.retries,
        "confirmations": result.confirmations,
        "consistent": result.consistent,
        "error_class": result.error_class,
        "error_message": result.error,
        "warnings": result.warnings or None,
    }
    finished = finish_run(
        conn, result.run_id, result.account_id, values, now=now, applied=applied, memo=memo
    )
    if finished:
        record_run_outcome(conn, notifier, result)  # notifications: sync.failed/recovered
        return
    if applied:  # cannot happen under the fence's lock; never let it commit if it does
        raise RuntimeError(f"run {result.run_id} was closed while it applied")
    log.warning(
        "the run was already closed by another process; its outcome is not recorded",
        account_id=result.account_id,
        run_id=result.run_id,
        status=result.status,
    )


def log_result(result: AccountResult) -> None:
    """The canonical line of an account's sync."""
    if result.status == "skipped":
        log.debug("account skipped", account_id=result.account_id, reason=result.error)
        return
    added = sum(c["added"] for c in result.counts.values())
    changed = sum(c["changed"] for c in result.counts.values())
    removed = sum(c["removed"] for c in result.counts.values())
    level = "info" if result.status in ("succeeded", "superseded") else "warning"
    getattr(log, level)(
        "account synced",
        account_id=result.account_id,
        account=result.name,
        run_id=result.run_id,
        status=result.status,
        added=added,
        changed=changed,
        removed=removed,
        rejected=result.rejected,
        requests=result.requests,
        retries=result.retries,
        confirmations=result.confirmations,
        unchanged=result.unchanged,
        observed=result.observed,
        duration_s=round(result.duration, 3),
        error=result.error,
    )
    for warning in result.warnings:
        log.warning("sync warning", account_id=result.account_id, warning=warning)
