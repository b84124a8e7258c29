"""Shared fixtures: real SQLite and real PostgreSQL, the simulator over real HTTP.

PostgreSQL: one fresh database per test run (dropped at the end), schema built by the
Alembic migrations, tables emptied between tests. Without a reachable server the PostgreSQL
variants are skipped locally and FAIL under CI (CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import stamina
from sqlalchemy import Engine, text

from inventory.db.engine import make_engine
from inventory.db.migrate import upgrade
from inventory.db.models import Base
from inventory.settings import Settings, load_settings
from inventory.simulator import SimulatedCloudflare, serve_in_thread

PG_ADMIN_URL = os.environ.get("INVENTORY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    # Retries still happen and are counted; only the waiting between them is skipped.
    stamina.set_testing(True, attempts=100)
    yield
    stamina.set_testing(False)


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """URL of a fresh PostgreSQL database for this run, or None when PostgreSQL is absent."""
    try:
        admin = psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {exc}")
        yield None
        return
    name = f"inventory_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    return path


def _truncate(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "inventory.db"
        shutil.copyfile(sqlite_template, path)
        path.chmod(0o600)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    engine = make_engine(url)
    _truncate(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sim() -> SimulatedCloudflare:
    return SimulatedCloudflare(seed=3, accounts=3, portals_per_account=4)


@pytest.fixture
def api_url(sim: SimulatedCloudflare) -> Iterator[str]:
    with serve_in_thread(sim) as url:
        yield url


def settings_for(
    sim: SimulatedCloudflare, api_url: str, db_url: str, *, cwd: Path, **extra: Any
) -> Settings:
    """Settings as a user would write them: environment variables only."""
    environ = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [
                {"id": account_id, "name": f"acct-{i}", "api_token": sim.api_token}
                for i, account_id in enumerate(sim.account_ids)
            ]
        ),
        "INVENTORY_MAX_RETRIES": "3",
        "INVENTORY_READ_TIMEOUT": "5",
        **{f"INVENTORY_{k.upper()}": str(v) for k, v in extra.items()},
    }
    return load_settings(environ=environ, cwd=cwd)


@pytest.fixture
def settings(sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path) -> Settings:
    return settings_for(sim, api_url, db_url, cwd=tmp_path)
