"""``inventory run``, the long-running service, and the wiring every command shares.

    service    settings → engine, HTTP client, rate limiters → a Syncer (CLI and daemon)
    runner     the Daemon: start, serve, SIGHUP, shutdown (options: how it was started)
    jobs       its scheduler jobs: a sync per account, the prune, closing runs left behind
    startup    the schema checked and runs closed, waiting out a database that is down
    schedule   triggers and cycles (every replica computes the same ones)
    reload     what a SIGHUP changes, and what only a restart can
    health     /healthz, /readyz, /metrics, and ``python -m inventory.daemon.health``
    metrics    the Prometheus metrics

Nothing is imported here: the CLI's report commands use ``service`` without the scheduler.
"""
