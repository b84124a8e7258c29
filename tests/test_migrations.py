"""One Alembic history for both databases, matching the models exactly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from inventory.daemon.service import open_client
from inventory.db.migrate import (
    current_revision,
    ensure_current,
    head_revision,
    migrations_dir,
    upgrade,
)
from inventory.db.models import Base
from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from inventory.sync.syncer import Syncer


def test_migrations_match_the_models(engine: Engine) -> None:
    # `alembic check` for each database: the fixture's schema was built by the migrations.
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(engine) == head_revision()
    ensure_current(engine)


def _json_null(engine: Engine) -> str:
    return "'null'::jsonb" if engine.dialect.name == "postgresql" else "'null'"


def test_a_sync_stores_absent_json_as_sql_null(
    engine: Engine, settings: Settings, sim: SimulatedCloudflare
) -> None:
    with open_client(settings) as client:
        results = Syncer(engine=engine, client=client).sync_all(settings.accounts)
    assert {r.status for r in results} == {"succeeded"}
    healthy = sum(
        1 for a in sim.account_ids for s in sim.servers(a) if s.get("error_details") is None
    )
    assert healthy > 0
    with engine.connect() as conn:
        found = conn.scalar(text("SELECT count(*) FROM servers WHERE error_details IS NULL"))
        json_nulls = conn.scalar(
            text(f"SELECT count(*) FROM servers WHERE error_details = {_json_null(engine)}")
        )
    assert (found, json_nulls) == (healthy, 0)


def test_0004_turns_stored_json_nulls_into_sql_null(
    engine: Engine, settings: Settings, sim: SimulatedCloudflare
) -> None:
    with open_client(settings) as client:
        Syncer(engine=engine, client=client).sync_all(settings.accounts)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    null = _json_null(engine)
    with engine.begin() as conn:  # what the code before 0004 wrote
        servers = conn.execute(
            text(f"UPDATE servers SET error_details = {null} WHERE error_details IS NULL")
        ).rowcount
        runs = conn.execute(text(f"UPDATE sync_runs SET counts = {null}")).rowcount
    assert servers > 0
    assert runs > 0
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM servers WHERE error_details IS NULL")) == (
            servers
        )
        assert conn.scalar(text("SELECT count(*) FROM sync_runs WHERE counts IS NULL")) == runs
        assert not conn.scalar(text(f"SELECT count(*) FROM servers WHERE error_details = {null}"))
    assert current_revision(engine) == head_revision()
