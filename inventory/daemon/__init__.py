"""``inventory run``, the long-running service, and the wiring every command shares.

    service    settings → engine, HTTP client, rate limiters → a Syncer (CLI and daemon)
    runner     the Daemon: start-up, the scheduler's jobs, SIGHUP, shutdown
    schedule   triggers and cycles (every replica computes the same ones)
    reload     what a SIGHUP changes, and what only a restart can
    health     /healthz, /readyz, /metrics, and ``python -m inventory.daemon.health``
    metrics    the Prometheus metrics

Nothing is imported here: the CLI's report commands use ``service`` without the scheduler.
"""
