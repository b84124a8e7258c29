"""Webhook notifications from a transactional outbox (docs/notifications.md).

(inventory.settings.notify: a target of ``[[notify]]``, its URL and secret, its filters)
events      what a sync committed → events (pure: no SQLAlchemy, no httpx)
formats     an event batch → the request body (generic JSON or Slack), and its signature
record      the hooks the sync calls inside its transactions: events into the outbox
deliver     the deliverer: a lease per target, ordered posts, retries, dead events
metrics     per-target Prometheus series
"""
