"""``inventory db upgrade | current | merge-observations``: the database schema and its data.

Each command imports the database layer when it runs: SQLAlchemy and Alembic cost the other
commands' start-up time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inventory.cli.console import out, user_errors
from inventory.cli.options import options

if TYPE_CHECKING:  # hints only: SQLAlchemy and pydantic cost start-up time
    from sqlalchemy import Engine

    from inventory.settings import Settings

__all__ = ["register"]

db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)


def _engine(settings: Settings) -> Engine:
    from inventory.db.engine import make_engine

    return make_engine(settings.database_url_secret())


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the schema or bring it up to date."""
    from inventory.db.migrate import upgrade

    with user_errors():
        settings = options(ctx).settings(require_accounts=False)
        engine = _engine(settings)
        before, after = upgrade(engine, revision)
        engine.dispose()
    if before == after:
        out.print(f"database already at revision {after}")
    else:
        out.print(f"database upgraded from {before or 'empty'} to {after}")


@db_app.command("merge-observations")
def db_merge_observations(
    ctx: typer.Context,
    apply: Annotated[
        bool, typer.Option("--apply", help="Merge; without it, only count (a dry run).")
    ] = False,
) -> None:
    """Merge consecutive server versions that differ only in last_synced/last_successful_sync
    (written before migration 0007); a dry run unless --apply."""
    from inventory.db.merge import merge_observation_versions
    from inventory.db.migrate import ensure_current

    with user_errors():
        engine = _engine(options(ctx).settings(require_accounts=False))
        try:
            ensure_current(engine)
            with engine.begin() as conn:
                report = merge_observation_versions(conn, apply=apply)
        finally:
            engine.dispose()
    verb = "merged" if report.applied else "would merge"
    out.print(
        f"{report.versions} server versions read; {verb} {report.merged} into the version "
        f"before them, for {report.entities} servers"
        + ("" if report.applied or not report.merged else " (run again with --apply)")
    )


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the one this code needs."""
    from inventory.db.migrate import current_revision, head_revision

    with user_errors():
        engine = _engine(options(ctx).settings(require_accounts=False))
        current = current_revision(engine)
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "behind: run `inventory db upgrade`"
    out.print(f"database: {current or 'empty'}  code: {head}  ({state})")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
