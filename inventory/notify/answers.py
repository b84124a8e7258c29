"""What a target's answer does to a batch's events, each write fenced by the lease.

2xx                          delivered (counted, latency observed)
5xx, 429, timeout, connect   tried again after ``backoff``; each event is dead once it is
                             ``max_age`` old (the rest of its batch goes on)
3xx, 4xx                     refused: a batch of several is split into one event each,
                             a single event is dead (logged, counted)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine

from inventory.db.outbox import Lease, OutboxRow, finish_events, retry_events, split_batch
from inventory.notify.metrics import NotifyMetrics
from inventory.notify.post import Answer, backoff
from inventory.settings.notify import NotifyTarget

__all__ = ["Recorder"]

log = structlog.get_logger("inventory.notify")


@dataclass(frozen=True, slots=True)
class Recorder:
    """Records the answers to one target's batches under one lease."""

    engine: Engine
    target: NotifyTarget
    lease: Lease
    metrics: NotifyMetrics | None = None

    def record(self, rows: Sequence[OutboxRow], answer: Answer, now: datetime) -> bool:
        """Record the answer (fenced by the lease); False when the lease was lost."""
        ids = [r.id for r in rows]
        if answer.outcome == "ok":
            return self._delivered(rows, now)
        if answer.outcome == "refused" and len(rows) > 1:
            log.warning(
                "notify batch refused: sending its events one at a time",
                target=self.target.name,
                events=len(rows),
                error=answer.error,
            )
            return split_batch(self.engine, self.lease, ids, [str(uuid.uuid4()) for _ in ids])
        if answer.outcome == "refused":
            return self._dead(rows, now, answer.error or "refused")
        return self._failed(rows, answer, now)

    def _failed(
        self,
        rows: Sequence[OutboxRow],
        answer: Answer,
        now: datetime,
    ) -> bool:
        """A failure worth retrying: tried again after a backoff, or dead at ``max_age``.

        Each event is given up at its own age: the younger ones of the batch are tried again,
        in a batch of their own (their ids are the same; the receiver knows them by those).
        """
        error = answer.error or "failed"
        expired = [r for r in rows if (now - r.created_at).total_seconds() >= self.target.max_age]
        if expired:
            reason = f"{error}; given up after max_age ({self.target.max_age:g} s)"
            if not self._dead(expired, now, reason):
                return False
            rows = [r for r in rows if r not in expired]
            if not rows:
                return True
        wait = backoff(rows[0].attempts + 1, answer.retry_after)
        at = now + timedelta(seconds=wait)
        ids = [r.id for r in rows]
        if not retry_events(
            self.engine, self.lease, ids, at=at, error=error, keep_batch=not expired
        ):
            return False
        if self.metrics is not None:
            self.metrics.retried.labels(self.target.name).inc(len(rows))
        log.warning(
            "notification not delivered; will retry",
            target=self.target.name,
            events=len(rows),
            attempt=rows[0].attempts + 1,
            retry_in_s=round(wait, 3),
            error=answer.error,
        )
        return True

    def _finish(
        self,
        rows: Sequence[OutboxRow],
        now: datetime,
        *,
        state: str,
        error: str | None = None,
    ) -> bool:
        """Record the events ``delivered`` or ``dead``, counted; False if the lease was lost."""
        ids = [r.id for r in rows]
        if not finish_events(self.engine, self.lease, ids, state=state, now=now, error=error):
            return False
        if self.metrics is not None:
            counter = self.metrics.delivered if state == "delivered" else self.metrics.dead
            counter.labels(self.target.name).inc(len(rows))
        return True

    def _delivered(self, rows: Sequence[OutboxRow], now: datetime) -> bool:
        if not self._finish(rows, now, state="delivered"):
            return False
        if self.metrics is not None:
            for row in rows:
                seconds = (now - row.created_at).total_seconds()
                self.metrics.latency.labels(self.target.name).observe(max(seconds, 0.0))
        log.debug("notifications delivered", target=self.target.name, events=len(rows))
        return True

    def _dead(
        self,
        rows: Sequence[OutboxRow],
        now: datetime,
        reason: str,
    ) -> bool:
        if not self._finish(rows, now, state="dead", error=reason):
            return False
        log.error(
            "notification dead: not delivered",
            target=self.target.name,
            event_ids=[r.event_id for r in rows],
            event_types=sorted({str(r.payload.get("type")) for r in rows}),
            error=reason,
        )
        return True
