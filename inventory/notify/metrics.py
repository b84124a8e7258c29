"""Per-target series of the deliverer, in the daemon's registry (inventory.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine

from inventory.db.backlog import outbox_summary

__all__ = ["NotifyMetrics"]

_LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.queued = Counter(
            "inventory_notify_events_queued",
            "Events written to the outbox for the target (in the syncs' transactions)",
            ["target"],
            registry=r,
        )
        self.delivered = Counter(
            "inventory_notify_events_delivered",
            "Events the target accepted (2xx)",
            ["target"],
            registry=r,
        )
        self.retried = Counter(
            "inventory_notify_events_retried",
            "Event deliveries that failed and will be tried again (5xx, 429, timeout, connection)",
            ["target"],
            registry=r,
        )
        self.dead = Counter(
            "inventory_notify_events_dead",
            "Events given up on: refused (4xx, a redirect) or still failing at max_age",
            ["target"],
            registry=r,
        )
        self.dropped = Counter(
            "inventory_notify_events_dropped",
            "Pending events deleted because their target left the configuration",
            ["target"],
            registry=r,
        )
        self.latency = Histogram(
            "inventory_notify_delivery_seconds",
            "Seconds from an event's queueing to its delivery",
            ["target"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self.outbox = Gauge(
            "inventory_notify_events",
            "Events in the outbox now, by state: pending (not yet delivered) or dead (given up;"
            " they stay until deleted). Read from the database at each scrape, all replicas'",
            ["target", "state"],
            registry=r,
        )
        self.outbox_seen: set[str] = set()

    def prepare(self, targets: list[str]) -> None:
        for name in targets:
            for series in (self.queued, self.delivered, self.retried, self.dead):
                series.labels(name)
            for state in ("pending", "dead"):
                self.outbox.labels(name, state)

    def refresh(self, engine: Engine) -> None:
        """Set the outbox gauges from the database (a scrape): what is pending and dead now."""
        with engine.connect() as conn:
            summary = {s["target"]: s for s in outbox_summary(conn)}
        for name in self.outbox_seen | set(summary):  # a target whose events went: zero
            for state in ("pending", "dead"):
                self.outbox.labels(name, state).set(summary.get(name, {}).get(state, 0))
        self.outbox_seen |= set(summary)

    def on_queued(self, target: str, count: int) -> None:
        self.queued.labels(target).inc(count)
