"""``inventory run``: the long-running service (see inventory/daemon.py).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT); 1 when aborted syncs did not stop in time;
2 for configuration problems, a schema behind the code, or a second daemon on one SQLite file;
130 on a second signal.

``python -m inventory.commands.daemon run …`` works before the command is wired into cli.py.
"""

from __future__ import annotations

from typing import Annotated

import typer

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
    from inventory.cli import fail, user_errors
    from inventory.daemon import Daemon, DaemonOptions

    if grace < 0 or jitter < 0 or (ready_max_age is not None and ready_max_age <= 0):
        fail("--grace and --jitter must be 0 or more, --ready-max-age more than 0")
    if metrics_address is not None:
        ctx.obj.overrides["metrics_address"] = metrics_address
    with user_errors():
        settings = ctx.obj.settings()
        options = DaemonOptions(
            upgrade=upgrade, grace=grace, ready_max_age=ready_max_age, jitter=jitter
        )
        daemon = Daemon(settings, options, reload=ctx.obj.load)
        if jitter >= daemon.period / 2:
            fail(f"--jitter must be less than half the cycle ({daemon.period:g}s)")
        code = daemon.run()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def main() -> None:
    from inventory.cli import app
    from inventory.cli import main as cli_main

    if not any(command.name == "run" for command in app.registered_commands):
        register(app)
    cli_main()


if __name__ == "__main__":
    main()
