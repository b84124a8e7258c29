"""The daemon's Prometheus metrics, in a registry of its own (no global state, one per daemon).

Every series is labelled by account id, but for the per-credential ones (labelled by the
credential's fingerprint, ``credential_key``, never the credential): accounts that share a token
share its rate-limit budget, and those series show how it is spent. ``inventory_account_info``
gives each id its configured name (join with ``* on(account) group_left(name)
inventory_account_info``), and ``inventory_build_info`` the version. Counters count what this
process did; the last-success gauge is refreshed from the database, so every replica reports it
whichever replica synced.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from inventory.cloudflare.client import RequestStats
from inventory.notify.metrics import NotifyMetrics
from inventory.sync.outcome import AccountResult

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_CHANGES = ("added", "changed", "removed")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "inventory_sync_runs",
            "Account syncs by outcome"
            " (skipped: another replica or process had it, or it was done this cycle)",
            ["account", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "inventory_sync_duration_seconds",
            "Duration of account syncs that ran (fetch and apply)",
            ["account", "status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.entities = Gauge(
            "inventory_entities",
            "Current rows of the account by kind, after its last sync by this process",
            ["account", "kind"],
            registry=r,
        )
        self.changes = Counter(
            "inventory_changes",
            "Rows added, changed and removed by syncs, by kind",
            ["account", "kind", "change"],
            registry=r,
        )
        self.http_requests = Counter(
            "inventory_http_requests",
            "Cloudflare API requests by HTTP status ('error': no response)",
            ["account", "status"],
            registry=r,
        )
        self.retries = Counter(
            "inventory_http_retries", "Cloudflare API requests retried", ["account"], registry=r
        )
        self.confirmations = Counter(
            "inventory_confirmation_requests",
            "Detail requests that confirmed deletions before they were recorded (probe included)",
            ["account"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "inventory_rate_limit_waits",
            "Waits Cloudflare asked for (429 with Retry-After)",
            ["account"],
            registry=r,
        )
        self.rate_limit_wait_seconds = Counter(
            "inventory_rate_limit_wait_seconds",
            "Seconds waited because Cloudflare asked (429)",
            ["account"],
            registry=r,
        )
        self.throttled_seconds = Counter(
            "inventory_throttled_seconds",
            "Seconds our own rate limiter held requests back",
            ["account"],
            registry=r,
        )
        self.credential_requests = Counter(
            "inventory_credential_requests",
            "Cloudflare API requests sent with the credential (all its accounts)",
            ["credential"],
            registry=r,
        )
        self.credential_rate_limited = Counter(
            "inventory_credential_rate_limited",
            "429 responses received for the credential",
            ["credential"],
            registry=r,
        )
        self.credential_budget_wait_seconds = Counter(
            "inventory_credential_budget_wait_seconds",
            "Seconds requests waited for the credential's rate-limit budget (ours, all replicas)",
            ["credential"],
            registry=r,
        )
        self._credentials: dict[str, str] = {}
        self.last_success = Gauge(
            "inventory_last_success_timestamp_seconds",
            "Unix time of the account's last successful or partial sync (from the database)",
            ["account"],
            registry=r,
        )
        self.database_up = Gauge(
            "inventory_database_up", "1 if the database answered the last check", registry=r
        )
        self.scheduler_running = Gauge(
            "inventory_scheduler_running", "1 while the daemon schedules syncs", registry=r
        )
        self.overlaps = Counter(
            "inventory_sync_overlaps",
            "Scheduled syncs not started on time: the account's previous sync was still running",
            ["account"],
            registry=r,
        )
        self.account_info = Gauge(
            "inventory_account_info",
            "1 for each configured account: its id (account) and configured name",
            ["account", "name"],
            registry=r,
        )
        self.build_info = Gauge(
            "inventory_build_info",
            "1, labelled with the version of inventory and of Python",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        self.notify = NotifyMetrics(r)  # webhook deliveries, per target name

    def prepare(
        self,
        account_ids: list[str],
        names: Mapping[str, str] | None = None,
        *,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        """Create the zero series up front, so rate() and absent() work from the first scrape;
        ``names``: account id -> configured name (else the id); ``credentials``: account id ->
        credential fingerprint, for the per-credential series (merged into earlier calls')."""
        self._credentials.update(credentials or {})
        for credential in set(self._credentials.values()):
            self.credential_requests.labels(credential)
            self.credential_rate_limited.labels(credential)
            self.credential_budget_wait_seconds.labels(credential)
        for account in account_ids:
            for status in ("succeeded", "partial", "failed", "superseded", "skipped"):
                self.runs.labels(account, status)
            self.retries.labels(account)
            self.confirmations.labels(account)
            self.overlaps.labels(account)
            self.account_info.labels(account, (names or {}).get(account) or account).set(1)

    def observe(
        self, result: AccountResult, stats: RequestStats, entities: Mapping[str, int]
    ) -> None:
        account = result.account_id
        self.runs.labels(account, result.status).inc()
        if result.status == "skipped":
            return
        self.duration.labels(account, result.status).observe(result.duration)
        for kind, count in entities.items():
            self.entities.labels(account, kind).set(count)
        for kind, counts in result.counts.items():
            for change in _CHANGES:
                self.changes.labels(account, kind, change).inc(counts.get(change, 0))
        answered = 0
        for status, count in sorted(stats.by_status.items()):
            self.http_requests.labels(account, str(status)).inc(count)
            answered += count
        if stats.requests > answered:
            self.http_requests.labels(account, "error").inc(stats.requests - answered)
        self.retries.labels(account).inc(stats.retries)
        self.confirmations.labels(account).inc(result.confirmations)
        self.rate_limit_waits.labels(account).inc(stats.rate_limit_waits)
        self.rate_limit_wait_seconds.labels(account).inc(stats.rate_limit_wait_seconds)
        self.throttled_seconds.labels(account).inc(stats.throttled_seconds)
        if (credential := self._credentials.get(account)) is not None:
            self.credential_requests.labels(credential).inc(stats.requests)
            self.credential_rate_limited.labels(credential).inc(stats.by_status.get(429, 0))
            self.credential_budget_wait_seconds.labels(credential).inc(stats.throttled_seconds)

    def set_last_success(self, successes: Mapping[str, datetime | None]) -> None:
        for account, at in successes.items():
            if at is not None:
                self.last_success.labels(account).set(at.timestamp())

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _version() -> str:
    try:
        return version("inventory")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
