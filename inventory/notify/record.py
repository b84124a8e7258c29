"""The sync's two hooks: events into the outbox, in the transaction of what they describe.

``recording_changes`` wraps the load of an account's changes (inside the sync's apply
transaction): it reads what it needs before the load, derives the events after it and writes
one outbox row per event and interested target. ``record_run_outcome`` runs where a run is
closed (same transaction): ``sync.failed`` when the account's failures in a row reach a target's
``failed_runs``, ``sync.recovered`` at the first success after that. With no target configured
neither reads nor writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

import structlog
from sqlalchemy import Connection, select

from inventory.db import models
from inventory.db.exposure import failure_streak, read_reach_inputs, read_restored, read_rows
from inventory.db.outbox import write_events
from inventory.notify.events import (
    Event,
    Reach,
    entity_events,
    exposure_events,
    new_event,
    reachable,
    summary_event,
)
from inventory.rows import ChangeSet, Kind, Snapshot
from inventory.settings.notify import NotifyTarget

__all__ = ["Notifier", "RunOutcome", "record_run_outcome", "recording_changes"]

log = structlog.get_logger("inventory.notify")
_EXPOSING: tuple[Kind, ...] = ("portal_server", "tool", "prompt", "override")
_accounts = models.table_of(models.Account)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RunOutcome(Protocol):
    """What the hook needs of a finished run (inventory.sync.AccountResult)."""

    @property
    def account_id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def run_id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def error_class(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


class Notifier:
    """The configured targets (read at each use: a SIGHUP may change them) and a metric hook."""

    def __init__(
        self,
        targets: Callable[[], Sequence[NotifyTarget]],
        *,
        on_queued: Callable[[str, int], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.targets = targets
        self.on_queued = on_queued
        self.clock = clock

    def interested(self, account_id: str, name: str | None) -> list[NotifyTarget]:
        return [t for t in self.targets() if t.covers(account_id, name)]

    def write(
        self,
        conn: Connection,
        targets: Sequence[NotifyTarget],
        events: Sequence[Event],
        name: str | None,
    ) -> None:
        rows = []
        queued: dict[str, int] = {}
        for event in events:
            for target in targets:
                if target.wants(event.type, event.account_id, name):
                    rows.append(
                        {
                            "target": target.name,
                            "event_id": event.id,
                            "event_type": event.type,
                            "account_id": event.account_id,
                            "run_id": event.payload.get("run_id"),
                            "payload": event.payload,
                        }
                    )
                    queued[target.name] = queued.get(target.name, 0) + 1
        write_events(conn, rows, now=self.clock())
        if self.on_queued is not None:
            for target_name, count in queued.items():
                self.on_queued(target_name, count)


def read_reach(conn: Connection, account_id: str) -> Reach:
    """What is reachable through the account's portals now (in the caller's transaction)."""
    found = read_reach_inputs(conn, account_id)
    return Reach(
        items=reachable(found.links, found.items, found.overrides),
        portal_names=found.portal_names,
        server_names=found.server_names,
    )


@contextmanager
def recording_changes(
    conn: Connection,
    notifier: Notifier | None,
    *,
    account: tuple[str, str | None],
    changes: ChangeSet,
    snapshot: Snapshot,
    run_id: int,
    observed_at: datetime,
) -> Iterator[None]:
    """Wrap the load of ``changes``: their events are written after it, in its transaction."""
    targets = notifier.interested(*account) if notifier is not None else []
    if notifier is None or not targets or not changes:
        yield
        return
    account_id = account[0]
    first = (
        conn.execute(
            select(_accounts.c.applied_run_id).where(_accounts.c.id == account_id)
        ).scalar_one_or_none()
        is None
    )
    exposing = any(changes.kinds[kind] for kind in _EXPOSING)
    if first:
        yield
        events = [
            summary_event(
                changes, read_reach(conn, account_id), account, run_id=run_id, at=observed_at
            )
        ]
    else:
        before = read_reach(conn, account_id) if exposing else None
        old = read_rows(
            conn,
            account_id,
            {
                k: [*c.updates, *c.deletes]
                for k, c in changes.kinds.items()
                if c.updates or c.deletes
            },
        )
        restored = read_restored(
            conn, account_id, {k: list(c.inserts) for k, c in changes.kinds.items() if c.inserts}
        )
        yield
        events = entity_events(
            changes, old, snapshot, restored, account, run_id=run_id, at=observed_at
        )
        if before is not None:
            after = read_reach(conn, account_id)
            events += exposure_events(before, after, account, run_id=run_id, at=observed_at)
    notifier.write(conn, targets, events, account[1])


def record_run_outcome(conn: Connection, notifier: Notifier | None, result: RunOutcome) -> None:
    """Where a run is closed: sync.failed / sync.recovered for the targets whose count it hits."""
    if notifier is None or result.run_id is None:
        return
    if result.status == "failed" and result.error_class != "Aborted":
        event_type = "sync.failed"
    elif result.status == "succeeded":
        event_type = "sync.recovered"
    else:
        return
    targets = [t for t in notifier.targets() if t.wants(event_type, result.account_id, result.name)]
    if not targets:
        return
    limit = max(t.failed_runs for t in targets) + 1
    streak = failure_streak(conn, result.account_id, before=result.run_id, limit=limit)
    if event_type == "sync.failed":
        streak += 1
        chosen = [t for t in targets if streak == t.failed_runs]
    else:
        chosen = [t for t in targets if streak >= t.failed_runs]
    if not chosen:
        return
    event = new_event(
        event_type,
        (result.account_id, result.name),
        run_id=result.run_id,
        at=notifier.clock(),
        failed_runs=streak,
        status=result.status,
        error_class=result.error_class if event_type == "sync.failed" else None,
        error=result.error if event_type == "sync.failed" else None,
    )
    notifier.write(conn, chosen, [event], result.name)
    log.info(event_type.replace(".", " "), account_id=result.account_id, failed_runs=streak)
