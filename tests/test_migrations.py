"""One Alembic history for both databases, matching the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from inventory.db.migrate import current_revision, ensure_current, head_revision
from inventory.db.models import Base


def test_migrations_match_the_models(engine: Engine) -> None:
    # `alembic check` for each database: the fixture's schema was built by the migrations.
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(engine) == head_revision()
    ensure_current(engine)
