"""Per-target series of the deliverer, in the daemon's registry (inventory.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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

    def prepare(self, targets: list[str]) -> None:
        for name in targets:
            for series in (self.queued, self.delivered, self.retried, self.dead):
                series.labels(name)

    def on_queued(self, target: str, count: int) -> None:
        self.queued.labels(target).inc(count)
