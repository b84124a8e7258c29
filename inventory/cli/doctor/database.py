"""The database checks: reachable, schema at this code's revision, writable."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from inventory.cli.doctor.check import Check, skipped
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.migrate import head_revision, known_revision
from inventory.sync.outcome import describe_error

__all__ = ["check_database", "current_revision_on"]


def check_database(url: str, *, shown: str | None = None) -> list[Check]:
    """Reachable, schema current, writable; never creates a database that is not there."""
    shown = shown or url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return [
            Check(
                "database",
                "fail",
                f"{shown}: no database file at {path}",
                "run `inventory db upgrade` to create it, or point database_url at the "
                "existing database",
            ),
            skipped("schema", "no database"),
            skipped("writable", "no database"),
        ]
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A black-holed server fails the check in seconds, not after the OS's TCP timeout.
        url = parsed.update_query_dict({"connect_timeout": "10"}).render_as_string(
            hide_password=False
        )
    engine = make_engine(url, pool_size=1)
    try:
        return _check_engine(engine, shown)
    finally:
        engine.dispose()


def _check_engine(engine: Engine, shown: str) -> list[Check]:
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = ".".join(str(part) for part in engine.dialect.server_version_info or ())
            revision = current_revision_on(conn)
    except SQLAlchemyError as exc:
        hint = (
            "check that the file and its directory are readable and writable by this user"
            if sqlite
            else "check the host, port, database name, user and password in database_url, "
            "and that the server accepts this client (listen_addresses, pg_hba.conf)"
        )
        return [
            Check(
                "database",
                "fail",
                f"{shown}: cannot connect: {describe_error(exc, database='')}",
                hint,
            ),
            skipped("schema", "the database is unreachable"),
            skipped("writable", "the database is unreachable"),
        ]
    kind = "SQLite" if sqlite else "PostgreSQL"
    checks = [Check("database", "ok", f"{shown}: reachable ({kind} {version})".rstrip())]
    checks.append(_schema_check(revision))
    checks.append(_writable_check(engine, has_schema=revision is not None))
    return checks


def current_revision_on(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _schema_check(revision: str | None) -> Check:
    head = head_revision()
    if revision == head:
        return Check("schema", "ok", f"at revision {head}, the one this version needs")
    if revision is None:
        return Check(
            "schema",
            "fail",
            f"empty: no inventory schema (this version needs revision {head})",
            "run `inventory db upgrade`",
        )
    if known_revision(revision):
        return Check(
            "schema",
            "fail",
            f"at revision {revision}, behind the {head} this version needs",
            "run `inventory db upgrade` (the daemon does it itself with `inventory run --upgrade`)",
        )
    return Check(
        "schema",
        "fail",
        f"at revision {revision}, which this version of inventory does not know (it needs {head})",
        "a newer inventory migrated this database: run that version, or upgrade this one",
    )


def _writable_check(engine: Engine, *, has_schema: bool) -> Check:
    # What a sync needs: to change a row of inventory's (or, before the first upgrade, to
    # create a table); rolled back either way.
    probe = (
        "UPDATE alembic_version SET version_num = version_num"
        if has_schema
        else "CREATE TABLE inventory_doctor_probe (id INTEGER)"
    )
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                conn.execute(text(probe))
            finally:
                transaction.rollback()
    except SQLAlchemyError as exc:
        hint = (
            "SQLite writes the file and -wal/-shm files beside it: the file and its "
            "directory must be writable by this user"
            if engine.dialect.name == "sqlite"
            else "grant this user INSERT, UPDATE and DELETE on inventory's tables (and CREATE "
            "on the schema for `inventory db upgrade`); check the database is not a read-only "
            "replica"
        )
        return Check("writable", "fail", f"cannot write: {describe_error(exc, database='')}", hint)
    return Check("writable", "ok", "a write in a transaction (rolled back) succeeded")


def _first_line(exc: SQLAlchemyError) -> str:
    return describe_error(exc, database="")  # the driver's first line, scrubbed
