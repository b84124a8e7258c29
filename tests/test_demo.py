"""``inventory demo`` touches nothing of the user's: it reads no configuration (no webhook of
theirs hears of its made-up events), and it never syncs into, nor removes, a database that is
not a demo's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import make_url

from inventory.cli import demo
from inventory.db.models import Account
from tests.support.cli import run
from tests.support.receiver import receiving

REAL_ID = "023e105f4ecef8ad9ca31a8372d0c353"


def test_the_demo_sends_nothing_to_the_webhooks_configured_in_its_directory(
    tmp_path: Path,
) -> None:
    with receiving() as receiver:
        (tmp_path / "hook-url").write_text(receiver.url)
        (tmp_path / "inventory.toml").write_text(
            'database_url = "sqlite:///real.db"\n'
            '[[notify]]\nname = "prod-slack"\nurl_file = "hook-url"\nformat = "slack"\n'
        )
        env = {"INVENTORY_DATABASE_URL": "sqlite:///env.db"}
        result = run(["demo", "--cycles", "2"], tmp_path, env)
        assert result.returncode == 0, result.stderr
        assert receiver.requests == []  # run_sync delivers before it returns
    assert not (tmp_path / "real.db").exists()
    assert not (tmp_path / "env.db").exists()
    with sqlite3.connect(tmp_path / demo.DEFAULT_DB) as conn:
        assert conn.execute("SELECT count(*) FROM notify_outbox").fetchone() == (0,)


def test_the_demo_does_not_read_the_configuration_in_its_directory(tmp_path: Path) -> None:
    # Read, this target fails: the demo gets no variable of the user's (HOOK_OK included).
    (tmp_path / "inventory.toml").write_text('[[notify]]\nname = "env"\nurl_env = "HOOK_OK"\n')
    (tmp_path / demo.DEFAULT_DB).write_bytes(b"")  # an earlier demo's, to start over from
    result = run(["demo", "--cycles", "1"], tmp_path, {"HOOK_OK": "http://127.0.0.1:9/hook"})
    assert result.returncode == 0, result.stderr
    assert "starting over" in result.stdout


def _add_real_account(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Account).values(
                id=REAL_ID, name="production", configured=True, first_seen_at=datetime.now(UTC)
            )
        )


@pytest.mark.parametrize("before", [False, True], ids=["demo --database-url", "global option"])
def test_the_demo_refuses_a_database_that_is_not_a_demo_database(
    db_url: str, engine: Engine, tmp_path: Path, before: bool
) -> None:
    _add_real_account(engine)
    args = ["--database-url", db_url, "demo"] if before else ["demo", "--database-url", db_url]
    result = run([*args, "--cycles", "1"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "is not a demo database (it holds 1 account the demo did not make)" in result.stderr
    with engine.connect() as conn:  # nothing added, nothing reconfigured
        assert conn.execute(select(Account.id, Account.configured)).all() == [(REAL_ID, True)]
    assert not (tmp_path / demo.DEFAULT_DB).exists()


def test_the_demo_refuses_a_database_of_something_else(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    result = run(["demo", "--database-url", "sqlite:///other.db"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not an inventory database" in result.stderr
    with sqlite3.connect(tmp_path / "other.db") as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("t",)]


def test_the_demo_keeps_a_default_file_that_is_not_a_demo_database(tmp_path: Path) -> None:
    database = tmp_path / demo.DEFAULT_DB
    result = run(["--database-url", f"sqlite:///{database}", "db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name, configured, first_seen_at) "
            "VALUES (?, 'production', 1, '2026-01-01')",
            (REAL_ID,),
        )
    result = run(["demo", "--cycles", "1"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "starting over" not in result.stdout
    assert "move it away, or give the demo another --database-url" in result.stderr
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT id, configured FROM accounts").fetchall() == [(REAL_ID, 1)]


def test_the_demo_checks_its_options_before_removing_the_previous_demo(tmp_path: Path) -> None:
    assert run(["demo", "--cycles", "1"], tmp_path).returncode == 0
    previous = (tmp_path / demo.DEFAULT_DB).stat().st_ino
    result = run(["--log-level", "loud", "demo", "--cycles", "1"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "log_level" in result.stderr
    assert "starting over" not in result.stdout
    assert (tmp_path / demo.DEFAULT_DB).stat().st_ino == previous


def test_the_demo_honours_the_global_database_url_and_reuses_its_own(tmp_path: Path) -> None:
    for _ in range(2):  # the second run finds the first's accounts: a demo database
        result = run(["--database-url", "sqlite:///mine.db", "demo", "--cycles", "1"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert "--database-url sqlite:///mine.db changes" in result.stdout
    assert not (tmp_path / demo.DEFAULT_DB).exists()
    with sqlite3.connect(tmp_path / "mine.db") as conn:
        names = conn.execute("SELECT name FROM accounts ORDER BY name").fetchall()
    assert names == [("demo-1",), ("demo-2",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "inventory.toml", "demo"], "--config does not apply to the demo"),
        (["--api-base-url", "http://127.0.0.1:9", "demo"], "--api-base-url does not apply"),
        (
            ["--database-url", "sqlite:///a.db", "demo", "--database-url", "sqlite:///b.db"],
            "--database-url given twice with different values",
        ),
    ],
)
def test_the_demo_refuses_global_options_it_cannot_honour(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "inventory.toml").write_text("")
    result = run(args, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "inventory.toml"]


def test_the_demo_never_shows_the_database_password(
    pg_database: str | None, pg_emptier: Callable[[], None], tmp_path: Path
) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    pg_emptier()  # migrated and empty: a database the demo may use
    url = make_url(pg_database)
    if url.password is None:  # a server that asks for none ignores one
        url = url.set(password="demo-Pw-8c1d2e3f")
    password = str(url.password)
    result = run(
        ["demo", "--cycles", "1", "--database-url", url.render_as_string(hide_password=False)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    assert f"database: {url.drivername}://{url.username}:***@" in result.stdout
    assert f"--database-url '{url.drivername}://{url.username}:***@" in result.stdout
