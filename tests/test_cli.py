"""The command line as a user runs it: a real process, real files, exit codes, no tracebacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inventory.simulator import SimulatedCloudflare
from tests.support.cli import accounts_env, run
from tests.support.matrix import one_per_family


@pytest.mark.slow
@pytest.mark.parallel
def test_sync_from_a_fresh_directory(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str
) -> None:
    db = f"sqlite:///{tmp_path / 'inv.db'}"
    env = accounts_env(sim, api_url, db)
    first = run(["sync"], tmp_path, env)
    assert first.returncode == 2
    assert "inventory db upgrade" in first.stderr
    assert "Traceback" not in first.stderr
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    assert oct((tmp_path / "inv.db").stat().st_mode & 0o777) == "0o600"
    synced = run(["sync"], tmp_path, env)
    assert synced.returncode == 0, synced.stderr
    assert "succeeded" in synced.stdout
    assert sim.api_token not in synced.stdout + synced.stderr
    as_json = run(["sync", "--json", "--account", sim.account_ids[0]], tmp_path, env)
    assert as_json.returncode == 0
    [result] = json.loads(as_json.stdout)
    assert result["status"] == "succeeded"
    assert all(not any(c.values()) for c in result["counts"].values())


def test_exit_1_when_an_account_fails(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str
) -> None:
    db = f"sqlite:///{tmp_path / 'inv.db'}"
    env = accounts_env(sim, api_url, db)
    run(["db", "upgrade"], tmp_path, env)
    sim.revoke(sim.account_ids[0])
    result = run(["sync"], tmp_path, env)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "succeeded" in result.stdout
    assert "Traceback" not in result.stderr


BAD_CONFIGURATIONS: list[tuple[dict[str, str], str]] = [
    ({}, "no accounts configured"),
    ({"INVENTORY_ACCOUNTS": "[{"}, "INVENTORY_ACCOUNTS"),
    ({"INVENTORY_ACCOUNTS": '[{"id": "nope", "api_token": "t0ps3cret"}]'}, "id"),
    (
        {
            "INVENTORY_API_BASE_URL": "ftp://x",
            "CLOUDFLARE_ACCOUNT_ID": "a" * 32,
            "CLOUDFLARE_API_TOKEN": "t0ps3cret",
        },
        "INVENTORY_API_BASE_URL",
    ),
    ({"INVENTORY_CONFIG": "/no/such/file.toml"}, "/no/such/file.toml"),
    (
        {
            "INVENTORY_PAGE_SIZE": "500",
            "CLOUDFLARE_ACCOUNT_ID": "a" * 32,
            "CLOUDFLARE_API_TOKEN": "t0ps3cret",
        },
        "page_size",
    ),
]


@pytest.mark.parametrize(
    ("env", "needle"),
    one_per_family(
        [pytest.param(e, n, id=f"env{i}-{n}") for i, (e, n) in enumerate(BAD_CONFIGURATIONS)],
        fast={"env0-no accounts configured", "env2-id", "env4-/no/such/file.toml"},
    ),
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    result = run(["config", "check"], tmp_path, env)
    assert result.returncode == 2
    assert needle.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert "t0ps3cret" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) <= 2


def test_config_check_redacts_secrets(tmp_path: Path) -> None:
    env = {
        "CLOUDFLARE_ACCOUNT_ID": "a" * 32,
        "CLOUDFLARE_API_TOKEN": "t0ps3cret",
        "INVENTORY_DATABASE_URL": "postgresql://u:dbpassw0rd@h/db",
    }
    result = run(["config", "check"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "t0ps3cret" not in result.stdout
    assert "dbpassw0rd" not in result.stdout
    assert "a" * 32 in result.stdout


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = run(["demo", "--cycles", "2"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+ changes? under \d+ portal", result.stdout), result.stdout
    assert "Traceback" not in result.stderr
    assert (tmp_path / "inventory-demo.db").exists()
