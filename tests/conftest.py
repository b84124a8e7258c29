"""Shared fixtures: real SQLite and real PostgreSQL, the simulator over real HTTP.

PostgreSQL: one fresh database per test run (dropped at the end), schema built by the
Alembic migrations, tables emptied between tests. Without a reachable server the PostgreSQL
variants are skipped locally and FAIL under CI (CI=true).
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import stamina
import structlog
import typer.main
import typer.testing
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine

from inventory.db.engine import make_engine
from inventory.db.migrate import upgrade
from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from tests.support.db import IN_CI, PG_ADMIN_URL, empty_pg, fresh_pg_database, pg_available
from tests.support.settings import settings_for
from tests.support.trial import OpenTrial, open_trial

__all__ = ["settings_for"]  # its home is tests.support.settings; imported here for older tests

# typer's CliRunner builds the click command from every command function's signature on each
# invoke (typing.get_type_hints and all): a tenth of the fast tests' CPU. The app does not change
# during a run, so each app's command is built once; the product builds it once per process too.
typer.testing.__dict__["_get_command"] = functools.cache(typer.main.get_command)

# structlog's default set-up, but for its traceback: the default renders a logged exception with
# rich, source lines and locals (pygments and all), seconds of CPU for a test that logs a failed
# sync. The product never runs with the default (inventory.logs); its tracebacks are plain too.
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)

# No per-example deadline anywhere: on a busy 2-core machine (CI, parallel workers) one slow
# example is load, not a bug, and a 200 ms deadline made property tests fail now and then.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")
# `dev.py mutate`: the same examples for every mutant, and no time spent shrinking a failure.
hypothesis_settings.register_profile(
    "mutate", deadline=None, database=None, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """Retries happen and are counted, each client keeping its own budget; waits become 0."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """For tests of the CLI in-process: it configures logging onto the runner's stderr, which
    closes when the command returns; the logging set-up before the test comes back after it."""
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = handlers


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """URL of a fresh PostgreSQL database for this run, or None when PostgreSQL is absent."""
    if not pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but unreachable at {PG_ADMIN_URL}")
        yield None
        return
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_emptier(pg_database: str | None) -> Iterator[Callable[[], None]]:
    """Empties the run's PostgreSQL database (one engine for the run: a connection costs more)."""
    assert pg_database is not None
    engine = make_engine(pg_database)
    yield lambda: empty_pg(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture(scope="session")
def sqlite_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each test's SQLite database is: the same file, made again for every test."""
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, sqlite_home: Path, sqlite_template: Path
) -> Iterator[str]:
    """A migrated, empty database of each kind.

    Each kind has one database for the run (the test worker's, under pytest-xdist), emptied
    for every test: the SQLite file is copied afresh from the migrated template, PostgreSQL's
    tables are emptied. One URL per kind lets ``engine`` keep one engine per kind.
    """
    if request.param == "sqlite":
        path = sqlite_home / "inventory.db"
        url = f"sqlite:///{path}"
        if url in _ENGINES:
            _ENGINES[url].dispose()  # no pooled connection to the file that goes
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
        shutil.copyfile(sqlite_template, path)
        path.chmod(0o600)
        yield url
        return
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    request.getfixturevalue("pg_emptier")()
    yield url


_ENGINES: dict[str, Engine] = {}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``, disposed of (its connections closed) after each test, but kept
    for the run with SQLAlchemy's cache of compiled statements (keyed by the engine's dialect):
    compiling them again for each test cost an eighth of the suite's CPU."""
    engine = _ENGINES.get(db_url) or _ENGINES.setdefault(db_url, make_engine(db_url))
    yield engine
    engine.dispose()


@pytest.fixture
def sim() -> SimulatedCloudflare:
    return SimulatedCloudflare(seed=3, accounts=3, portals_per_account=4)


@pytest.fixture
def api_url(sim: SimulatedCloudflare) -> Iterator[str]:
    with serve_in_thread(sim) as url:
        yield url


@pytest.fixture
def served() -> Iterator[Callable[[SimulatedCloudflare], str]]:
    """Serve simulators built inside the test; all are shut down afterwards."""
    with ExitStack() as stack:
        yield lambda sim: stack.enter_context(serve_in_thread(sim))


@pytest.fixture
def trial(
    served: Callable[[SimulatedCloudflare], str],
    db_url: str,
    engine: Engine,
    sqlite_template: Path,
    tmp_path: Path,
) -> OpenTrial:
    """``with trial(sim, **settings) as t``: ``sim`` served, a syncer into ``engine``."""
    return functools.partial(
        open_trial,
        served=served,
        db_url=db_url,
        engine=engine,
        template=sqlite_template,
        workdir=tmp_path,
    )


@pytest.fixture
def settings(sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path) -> Settings:
    return settings_for(sim, api_url, db_url, cwd=tmp_path)
