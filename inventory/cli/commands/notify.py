"""``inventory notify test | pending | deliver``: the webhook targets (docs/notifications.md).

Each imports its machinery (SQLAlchemy, httpx) when it runs: the other commands start faster.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from inventory.cli.console import out, user_errors
from inventory.cli.options import options

__all__ = ["register"]

notify_app = typer.Typer(
    help="Webhook notifications (docs/notifications.md).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _targets(settings: Any, wanted: list[str] | None) -> list[Any]:
    from inventory.errors import ConfigError

    targets = list(settings.notify)
    if not targets:
        raise ConfigError("no notify targets configured: add [[notify]] to inventory.toml")
    if wanted:
        _check_names(wanted, [t.name for t in targets], where="configured")
        targets = [t for t in targets if t.name in wanted]
    return targets


def _check_names(wanted: list[str], valid: list[str], *, where: str) -> None:
    """A ``--target`` naming no target is an error listing the valid names, never nothing."""
    from inventory.errors import SelectionError

    unknown = [name for name in wanted if name not in valid]
    if unknown:
        names = ", ".join(sorted(set(valid))) or "none"
        raise SelectionError(f"--target {unknown[0]!r} is not a notify target; {where}: {names}")


Target = Annotated[
    list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
]


@notify_app.command("test")
def send_test_command(ctx: typer.Context, target: Target = None) -> None:
    """Send a test event to each target now (no outbox, no retries); exit 1 if any fails."""
    from inventory.notify.post import send_test_events

    with user_errors():
        settings = options(ctx).settings(require_accounts=False)
        targets = _targets(settings, target)
    failed = 0
    for name, answer in send_test_events(targets):
        if answer.outcome == "ok":
            out.print(f"{name}: ok (HTTP {answer.status})", highlight=False)
        else:
            failed += 1
            out.print(f"{name}: failed: {answer.error}", highlight=False)
    raise typer.Exit(1 if failed else 0)


@notify_app.command("pending")
def pending_command(
    ctx: typer.Context,
    target: Target = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option(min=0, help="Events listed at most.")] = 50,
) -> None:
    """Events not delivered: pending (with their next attempt) and dead (with why)."""
    from inventory.daemon.service import open_engine
    from inventory.db.backlog import list_events, outbox_summary

    with user_errors():
        settings = options(ctx).settings(require_accounts=False)
        engine = open_engine(settings, read_only=True)
        try:
            with engine.connect() as conn:
                summary = outbox_summary(conn)
                if target:  # a target configured here, or one whose events are in the outbox
                    known = [t.name for t in settings.notify] + [s["target"] for s in summary]
                    _check_names(target, known, where="configured or with pending or dead events")
                events = list_events(conn, states=("pending", "dead"), targets=target, limit=limit)
        finally:
            engine.dispose()
    if target:
        summary = [s for s in summary if s["target"] in target]
    if as_json:
        from inventory.reports.output import rows_json  # ISO 8601 times, as every --json

        sys.stdout.write(rows_json({"targets": summary, "events": events}) + "\n")
        return
    if not summary:
        out.print("nothing pending, nothing dead")
        return
    for entry in summary:
        out.print(
            f"{entry['target']}: {entry['pending']} pending, {entry['dead']} dead", highlight=False
        )
    for e in events:
        when = e["next_attempt_at"] if e["state"] == "pending" else e["created_at"]
        out.print(
            f"  {e['state']:8} {e['target']} {e['event_type']} {e['event_id']} "
            f"attempts {e['attempts']} {'next' if e['state'] == 'pending' else 'queued'} "
            f"{when:%Y-%m-%d %H:%M:%S}" + (f"  {e['last_error']}" if e["last_error"] else ""),
            highlight=False,
            soft_wrap=True,
        )


@notify_app.command("deliver")
def deliver_command(
    ctx: typer.Context,
    budget: Annotated[
        float, typer.Option(min=0, help="Seconds spent retrying at most (0: one pass).")
    ] = 30.0,
    drop_unconfigured: Annotated[
        bool,
        typer.Option(
            "--drop-unconfigured",
            help="First drop the pending events of targets not configured here (as the daemon"
            " does); without it they are left alone.",
        ),
    ] = False,
) -> None:
    """Deliver the configured targets' pending events now; exit 1 if any is left."""
    from inventory.daemon.service import open_engine
    from inventory.notify.running import deliver_pending

    with user_errors():
        settings = options(ctx).settings(require_accounts=False)
        targets = _targets(settings, None)
        engine = open_engine(settings)
        try:
            passes = deliver_pending(engine, targets, budget=budget, drop=drop_unconfigured)
        finally:
            engine.dispose()
    left = [name for name, done in passes.items() if done.wait is not None or done.busy]
    for name, done in passes.items():
        out.print(
            f"{name}: {done.sent} delivered" + (", some left pending" if name in left else "")
        )
    raise typer.Exit(1 if left else 0)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
