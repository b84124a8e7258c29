"""``inventory run``: the long-running service (see inventory/daemon/).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT); 1 when aborted syncs did not stop in time;
2 for configuration problems, a schema behind the code, or a second daemon on one SQLite file;
130 on a second signal.
"""

from __future__ import annotations

from typing import Annotated

import typer

from inventory.cli.console import fail, user_errors
from inventory.cli.options import options

__all__ = ["register"]


def run_command(
    ctx: typer.Context,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Upgrade the schema first instead of refusing to run.")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(help="Seconds running syncs may take to finish after SIGTERM/SIGINT."),
    ] = 30.0,
    ready_max_age: Annotated[
        float | None,
        typer.Option(
            help="/readyz fails when an account's last success is older than this many seconds "
            "(default: 3 times the sync cycle)",
            show_default=False,
        ),
    ] = None,
    jitter: Annotated[
        float, typer.Option(help="Random delay, in seconds, added to each scheduled sync.")
    ] = 0.0,
    metrics_address: Annotated[
        str | None,
        typer.Option(help="host:port of /healthz, /readyz and /metrics (setting metrics_address)."),
    ] = None,
) -> None:
    """Sync every account now, then on the schedule (sync_interval or sync_cron), until stopped."""
    from inventory.daemon.runner import Daemon, DaemonOptions  # lazily: the whole sync stack

    if grace < 0 or jitter < 0 or (ready_max_age is not None and ready_max_age <= 0):
        fail("--grace and --jitter must be 0 or more, --ready-max-age more than 0")
    given = options(ctx)
    if metrics_address is not None:
        given.overrides["metrics_address"] = metrics_address
    with user_errors():
        settings = given.settings()
        daemon_options = DaemonOptions(
            upgrade=upgrade, grace=grace, ready_max_age=ready_max_age, jitter=jitter
        )
        daemon = Daemon(settings, daemon_options, reload=given.load)
        if jitter >= daemon.period / 2:
            fail(f"--jitter must be less than half the cycle ({daemon.period:g}s)")
        code = daemon.run()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
