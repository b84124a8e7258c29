"""Times at the edges of the calendar: one line and exit 2, or clamped; never an OverflowError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from inventory.cli import app
from inventory.db.retention import prune_history
from inventory.simulator import SimulatedCloudflare
from inventory.timespec import TimeSpecError, parse_duration, parse_instant

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("800000d", "longer than 100 years"),
        ("99999999999999999999999d", "longer than 100 years"),
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-05:00", "outside the years 1 to 9999"),
    ],
)
def test_instants_out_of_range_are_time_spec_errors(value: str, needle: str) -> None:
    with pytest.raises(TimeSpecError, match=needle) as info:
        parse_instant(value, now=NOW, option="--since")
    assert str(info.value).startswith("--since: ")


def test_the_edges_themselves_are_fine() -> None:
    assert parse_instant("0001-01-01T00:00:00", now=NOW).year == 1
    assert parse_instant("9999-12-31T23:59:59+00:00", now=NOW).year == 9999
    assert parse_instant("36500d", now=NOW) == NOW - timedelta(days=36500)
    with pytest.raises(TimeSpecError, match="longer than 100 years"):
        parse_duration("800000d", option="--history-older-than")


def test_prune_clamps_a_cutoff_before_the_year_1(engine: Engine) -> None:
    result = prune_history(engine, older_than=timedelta(days=900_000), now=NOW)
    assert result.cutoff == datetime.min.replace(tzinfo=UTC)
    assert not any(result.versions.values())


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["changes", "--since", "800000d"], "--since: '800000d' is longer than 100 years"),
        (["changes", "--since", "0001-01-01T00:00:00+01:00"], "--since: "),
        (["changes", "--until", "9999-12-31T23:59:59-05:00"], "--until: "),
        (["show", "portal", "p", "--as-of", "9999-12-31T23:59:59-05:00"], "--as-of: "),
        (["status", "--since", "800000d"], "--since: "),
        (["report", "sync-runs", "--since", "0001-01-01T00:00:00+01:00"], "--since: "),
        (["prune", "--history-older-than", "800000d"], "--history-older-than: "),
    ],
)
def test_commands_refuse_out_of_range_times(db_url: str, args: list[str], needle: str) -> None:
    code, output = invoke(args, {"INVENTORY_DATABASE_URL": db_url})
    assert code == 2, output
    assert needle in output


def test_commands_take_the_extreme_times_that_exist(
    db_url: str, sim: SimulatedCloudflare, api_url: str
) -> None:
    env = {
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_ACCOUNTS": json.dumps([{"id": sim.account_ids[0], "api_token": sim.api_token}]),
    }
    assert invoke(["sync"], env)[0] == 0
    code, output = invoke(["changes", "--since", "0001-01-01T00:00:00", "--json"], env)
    assert code == 0, output
    changes = json.loads(output)  # the first sync created everything
    portal = next(c["entity_key"] for c in changes if c["kind"] == "portal")
    code, output = invoke(["changes", "--until", "9999-12-31T23:59:59.999999+00:00"], env)
    assert code == 0, output
    code, output = invoke(["show", "portal", portal, "--as-of", "9999-12-31T23:59:59Z"], env)
    assert code == 0, output
    assert invoke(["status", "--since", "36500d"], env)[0] == 0
    code, output = invoke(["prune", "--history-older-than", "36500d"], env)
    assert code == 0, output
    assert "pruned history" in output


def test_settings_durations_longer_than_100_years_are_refused(tmp_path: object) -> None:
    from pathlib import Path

    from inventory.errors import ConfigError
    from inventory.settings import load_settings

    with pytest.raises(ConfigError, match="history_retention: must be at most 100 years"):
        load_settings(
            environ={"INVENTORY_HISTORY_RETENTION": "800000d"},
            cwd=Path(str(tmp_path)),
            require_accounts=False,
        )
