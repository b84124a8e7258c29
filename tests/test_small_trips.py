"""The small trips a new user met, each as the user runs it: a real process, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from inventory.errors import ConfigError
from inventory.reports.output import rows_table
from inventory.settings import load_settings
from inventory.simulator import SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.timespec import CrontabError, cron_trigger
from tests.support.cli import accounts_env, run
from tests.support.matrix import one_per_family

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"


def one_account(**extra: object) -> dict[str, str]:
    return {"INVENTORY_ACCOUNTS": json.dumps([{"id": ACCOUNT, "api_token": TOKEN, **extra}])}


def no_crash(result: object) -> None:
    text = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in text
    assert "crashed" not in text
    assert TOKEN not in text


# --- --config is blamed as --config -------------------------------------------------------


def test_a_missing_config_file_given_by_option_blames_the_option(tmp_path: Path) -> None:
    result = run(["--config", "nope.toml", "sync"], tmp_path)
    assert result.returncode == 2
    no_crash(result)
    assert "(from --config)" in result.stderr
    assert "INVENTORY_CONFIG" not in result.stderr
    assert str(tmp_path / "nope.toml") in result.stderr


@pytest.mark.parametrize(
    ("environ", "config", "says"),
    [
        ({}, Path(), "config file {cwd} is a directory, not a file (from --config)"),
        ({"INVENTORY_CONFIG": "."}, None, "config file {cwd} is a directory, not a file"),
        ({"INVENTORY_SECRETS_DIR": "f"}, None, "secrets directory {cwd}/f is not a directory"),
        ({"INVENTORY_CA_BUNDLE": "."}, None, "ca_bundle: file {cwd} is a directory, not a file"),
    ],
)
def test_a_path_of_the_wrong_kind_is_named_as_such(
    tmp_path: Path, environ: dict[str, str], config: Path | None, says: str
) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, cwd=tmp_path, config=config, require_accounts=False)
    assert says.format(cwd=tmp_path) in str(info.value)
    assert "does not exist" not in str(info.value)


def test_the_config_option_beats_the_variable(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("page_size = 7\n")
    (tmp_path / "b.toml").write_text("page_size = 9\n")
    settings = load_settings(
        environ={"INVENTORY_CONFIG": "a.toml"},
        cwd=tmp_path,
        config=Path("b.toml"),
        require_accounts=False,
    )
    assert settings.page_size == 9
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={"INVENTORY_CONFIG": "a.toml"},
            cwd=tmp_path,
            config=Path("gone.toml"),
            require_accounts=False,
        )
    assert info.value.source == "--config"


# --- unsupported and garbage database URLs ----------------------------------------------------


UNSUPPORTED = {
    "mysql://x@y/z": "unsupported database 'mysql'",
    "mysql+pymysql://x@y/z": "unsupported database 'mysql+pymysql'",
    "postgresql+psycopg2://x@y/z": "unsupported database 'postgresql+psycopg2'",
    "oracle://x:pw1234567890@y/z": "unsupported database 'oracle'",
    "nonsense://x": "unsupported database 'nonsense'",
    "garbage": "is not a valid SQLAlchemy database URL",
    "://": "is not a valid SQLAlchemy database URL",
}


@pytest.mark.parametrize(
    ("url", "needle"),
    one_per_family(
        [pytest.param(u, n, id=f"{u}-{n}") for u, n in UNSUPPORTED.items()],
        # a dialect we do not support (one with a password to hide), and no URL at all
        fast={
            "oracle://x:pw1234567890@y/z-unsupported database 'oracle'",
            "garbage-is not a valid SQLAlchemy database URL",
        },
    ),
)
def test_an_unsupported_database_is_one_line_and_exit_2(
    tmp_path: Path, url: str, needle: str
) -> None:
    # A real process: the one line must be all the interpreter prints, up to its exit.
    env = {**one_account(), "INVENTORY_DATABASE_URL": url}
    result = run(["sync"], tmp_path, env, process=True)
    assert result.returncode == 2, result.stderr
    no_crash(result)
    assert needle in result.stderr
    assert "(from env INVENTORY_DATABASE_URL)" in result.stderr
    assert "sqlite:///" in result.stderr  # says what would work
    assert "pw1234567890" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command",
    one_per_family(
        [
            pytest.param(c, id=f"command{i}")
            for i, c in enumerate([["db", "upgrade"], ["config", "check"], ["status"]])
        ],
        fast={"command1"},
    ),
)
def test_every_command_refuses_an_unsupported_database(tmp_path: Path, command: list[str]) -> None:
    result = run(command, tmp_path, {**one_account(), "INVENTORY_DATABASE_URL": "mysql://x@y/z"})
    assert result.returncode == 2, result.stderr
    no_crash(result)
    assert "unsupported database 'mysql'" in result.stderr


def test_supported_database_urls_load(tmp_path: Path) -> None:
    for url in (
        "sqlite:///x.db",
        "sqlite+pysqlite:///x.db",
        "sqlite://",
        "postgresql://u@h/d",
        "postgresql+psycopg://u@h/d",
    ):
        settings = load_settings(
            environ={"INVENTORY_DATABASE_URL": url}, cwd=tmp_path, require_accounts=False
        )
        assert settings.database_url_secret() == url


# --- crontab checked where the settings load ------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    one_per_family(
        [
            pytest.param(c, id=c)
            for c in (
                "61 * * * *",
                "* 24 * * *",
                "* * 32 * *",
                "* * * 13 *",
                "* * * * 8",
                "* * * *",
                "0 0 30 2 *",
                "0 0 31 4,6,9,11 *",
                "0 0 30 2 1",
            )
        ],
        # a field out of range; a field missing; valid fields that never fire (30 February)
        fast={"61 * * * *", "* * * *", "0 0 30 2 *"},
    ),
)
def test_a_crontab_the_daemon_would_refuse_fails_config_check(tmp_path: Path, cron: str) -> None:
    result = run(["config", "check"], tmp_path, {**one_account(), "INVENTORY_SYNC_CRON": cron})
    assert result.returncode == 2, result.stdout
    no_crash(result)
    assert "sync_cron" in result.stderr
    assert "(from env INVENTORY_SYNC_CRON)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    per_account = run(["config", "check"], tmp_path, one_account(sync_cron=cron))
    assert per_account.returncode == 2, per_account.stdout
    assert f"accounts[0] ({ACCOUNT}): sync_cron" in per_account.stderr


def test_a_crontab_that_never_fires_is_refused_before_the_daemon_starts(tmp_path: Path) -> None:
    """30 February parses, field by field; `inventory run` used to crash on it (exit 1)."""
    env = {**one_account(), "INVENTORY_SYNC_CRON": "0 0 30 2 *"}
    for command in (["config", "check"], ["run"]):
        result = run(command, tmp_path, env)
        assert result.returncode == 2, result.stdout + result.stderr
        no_crash(result)
        assert result.stderr.strip() == (
            "error: sync_cron: '0 0 30 2 *' never fires: no date matches its day, month and "
            "weekday fields together (a day and a weekday must both match) "
            "(from env INVENTORY_SYNC_CRON)"
        )
    per_account = run(["run"], tmp_path, one_account(sync_cron="0 0 31 4 *"))
    assert per_account.returncode == 2, per_account.stdout
    no_crash(per_account)
    assert f"accounts[0] ({ACCOUNT}): sync_cron: '0 0 31 4 *' never fires" in per_account.stderr
    rare = load_settings(  # Monday 29 February: rare (2044), but it fires
        environ=one_account(sync_cron="0 0 29 2 1"), cwd=tmp_path
    )
    assert rare.accounts[0].sync_cron == "0 0 29 2 1"


def test_the_settings_and_the_daemon_share_one_crontab_parser(tmp_path: Path) -> None:

    from inventory.daemon.schedule import Schedule, schedule_trigger

    for cron in ("*/15 * * * *", "0 9 * * 1-5", "30 2 1 * sun", "0 0 * * 7"):
        settings = load_settings(
            environ={"INVENTORY_SYNC_CRON": cron}, cwd=tmp_path, require_accounts=False
        )
        assert settings.sync_cron == cron
        assert str(schedule_trigger(settings)) == str(cron_trigger(cron))
    with pytest.raises(ConfigError, match="sync_cron"):
        schedule_trigger(Schedule(sync_cron="61 * * * *", sync_interval=900))
    with pytest.raises(CrontabError):
        cron_trigger("* * * * mon/x")


# --- "[[accounts]]" and other brackets are text, never rich markup ----------------------------


def test_brackets_survive_errors_warnings_and_tables(tmp_path: Path) -> None:
    result = run(["sync"], tmp_path)
    assert result.returncode == 2
    assert "add [[accounts]] to inventory.toml" in result.stderr
    bad = run(["config", "check"], tmp_path, {"INVENTORY_ACCOUNTS": "[{]"})
    assert bad.returncode == 2
    assert "[{]" in bad.stderr or "INVENTORY_ACCOUNTS" in bad.stderr
    (tmp_path / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT}"\nname = "[bold]team[/] [[accounts]]"\n'
        f'api_token = "{TOKEN}"\n'
    )
    (tmp_path / "inventory.toml").chmod(0o644)
    shown = run(["config", "check"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "[bold]team[/] [[accounts]]" in shown.stdout
    assert "warning:" in shown.stderr  # an inline token in a readable file
    assert TOKEN not in shown.stdout + shown.stderr


def render(table: object) -> str:
    buffer = io.StringIO()
    Console(width=200, file=buffer).print(table)
    return buffer.getvalue()


def test_tables_print_data_with_brackets_as_it_is() -> None:
    from inventory.cli.render import results_summary

    result = AccountResult(
        account_id=ACCOUNT, name="[red]ops[/]", status="failed", error="add [[accounts]] [b]x[/b]"
    )
    text = "".join(render(part) for part in results_summary([result]))  # the error under it
    assert "[red]ops[/]" in text
    assert "[[accounts]]" in text
    assert "[b]x[/b]" in text
    rows = [{"name": "[prod] tools", "description": "[/]"}]
    assert "[prod] tools" in render(rows_table(rows, ["name", "description"]))


def test_sync_table_shows_a_bracketed_account_name(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str
) -> None:
    env = accounts_env(sim, api_url, f"sqlite:///{tmp_path / 'inv.db'}")
    accounts = json.loads(env["INVENTORY_ACCOUNTS"])[:1]
    accounts[0]["name"] = "[green]lab[/]"
    env["INVENTORY_ACCOUNTS"] = json.dumps(accounts)
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    synced = run(["sync"], tmp_path, env)
    assert synced.returncode == 0, synced.stderr
    assert "[green]lab[/]" in synced.stdout


@pytest.mark.parametrize("args", [["report", "in-error"], ["status"], ["notify", "pending"]])
def test_a_reader_refuses_a_missing_sqlite_file_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "typo" / "inventroy.db"
    result = run(args, tmp_path, {"INVENTORY_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.returncode == 2, result.stderr
    no_crash(result)
    assert f"no SQLite database at {missing}" in result.stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("api_tokn", "unknown key 'api_tokn' (did you mean api_token?)"),
        ("api_key_fil", "unknown key 'api_key_fil' (did you mean api_key_file?)"),
        ("credential_source", "unknown key 'credential_source'"),
    ],
)
def test_a_misspelt_credential_key_is_named_not_taken_for_a_missing_credential(
    tmp_path: Path, key: str, says: str
) -> None:
    environ = {"INVENTORY_ACCOUNTS": json.dumps([{"id": ACCOUNT, key: TOKEN}])}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, cwd=tmp_path)
    assert says in str(info.value)
    assert "no credential" not in str(info.value)
    assert TOKEN not in str(info.value)


def test_config_check_shows_every_setting_of_a_notify_target(tmp_path: Path) -> None:
    target = {
        "name": "ops",
        "url": "https://hooks.example.com/x",
        "timeout": "2s",
        "batch_size": 5,
        "batch_window": 0,
    }
    env = {**one_account(), "INVENTORY_NOTIFY": json.dumps([target])}
    result = run(["config", "check", "--json"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    (shown,) = json.loads(result.stdout)["notify"]
    assert (shown["timeout"], shown["batch_size"], shown["batch_window"]) == (2.0, 5, 0.0)
    assert shown["url"].startswith("***")
