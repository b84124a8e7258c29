"""``inventory prune``: remove history older than a retention period."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer

from inventory.cli.commands import history
from inventory.cli.commands.history import AsJson
from inventory.cli.console import fail, out, user_errors
from inventory.cli.options import options
from inventory.errors import TimeSpecError
from inventory.timespec import parse_duration

__all__ = ["register"]


def prune_command(
    ctx: typer.Context,
    history_older_than: Annotated[
        str | None,
        typer.Option(
            help="Remove versions closed longer ago than this, e.g. 180d "
            "(default: the history_retention setting)."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Remove closed history versions and finished runs older than a duration."""
    from inventory.daemon.service import open_engine  # lazily: the database stack
    from inventory.db.retention import prune_history
    from inventory.reports.output import rows_json

    with user_errors():
        settings = options(ctx).settings(require_accounts=False)
    if history_older_than is not None:
        try:
            older_than = parse_duration(history_older_than, option="--history-older-than")
        except TimeSpecError as exc:
            fail(str(exc))
    elif settings.history_retention is not None:
        older_than = timedelta(seconds=settings.history_retention)
    else:
        fail("prune: give --history-older-than (e.g. 180d) or set history_retention")
    with user_errors():
        engine = open_engine(settings)
        try:
            result = prune_history(engine, older_than=older_than, now=history.now())
        finally:
            engine.dispose()
    if as_json:
        sys.stdout.write(
            rows_json(
                {
                    "cutoff": result.cutoff,
                    "versions": result.versions,
                    "runs": result.runs,
                    "rejected_records": result.rejected_records,
                }
            )
            + "\n"
        )
        return
    removed = ", ".join(f"{n} from {t}" for t, n in result.versions.items() if n) or "no versions"
    out.print(
        f"pruned history closed before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC: {removed}; "
        f"{result.runs} run(s), {result.rejected_records} rejected record(s)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_command)
