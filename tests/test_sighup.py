"""SIGHUP: `inventory run` reads its configuration file again without dropping a running sync.

The daemon is a real process reading inventory.toml; one account's sync is held open by the
simulator (a "hold" fault) while the file gains an account, loses one and renames a third.
Every wait is on a log line or a database row, never a sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from inventory.daemon.reload import RELOADABLE, ConfigChange, compare_settings
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.settings import load_settings
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.daemon import Daemon, daemon_env, free_port, inventory_command, runs
from tests.support.daemon import wait_until as _wait_until

pytestmark = pytest.mark.slow


def wait_until(predicate: Any, *, timeout: float = 30.0) -> Any:
    return _wait_until(predicate, timeout=timeout)


class ConfiguredDaemon(Daemon):
    """`inventory run` whose metrics address comes from the configuration file, not the env."""

    def __init__(self, env: dict[str, str], cwd: Path, address: str) -> None:
        self.env = env
        self.log_path = cwd / "daemon-sighup.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*inventory_command(), "run"], cwd=cwd, env=env, stdout=self._log, stderr=self._log
        )
        self.address = address


def write_config(path: Path, sim: SimulatedCloudflare, **values: Any) -> None:
    accounts = values.pop("accounts")
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    for account_id, name in accounts:
        lines += [
            "[[accounts]]",
            f'id = "{account_id}"',
            f'name = "{name}"',
            f'api_token = "{sim.api_token}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def rows(engine: Engine, account_id: str) -> list[Any]:
    return [r for r in runs(engine) if r.account_id == account_id]


def configured(engine: Engine) -> dict[str, bool]:
    accounts = models.table_of(models.Account)
    with engine.connect() as conn:
        found = conn.execute(select(accounts.c.id, accounts.c.configured)).all()
        return {row.id: row.configured for row in found}


def test_sighup_adds_and_removes_accounts_while_a_sync_runs(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    held, dropped, added = sim.account_ids
    db = tmp_path / "inventory.db"
    db.write_bytes(sqlite_template.read_bytes())
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "inventory.toml"
    settings: dict[str, Any] = {
        "database_url": f"sqlite:///{db}",
        "metrics_address": address,
        "log_format": "json",
        "log_level": "warning",
        "sync_interval": 1,
    }
    write_config(config, sim, **settings, accounts=[(held, "held"), (dropped, "dropped")])
    env = {
        k: v
        for k, v in daemon_env(sim, api_url, "unused", tmp_path).items()
        if k
        not in {
            "INVENTORY_ACCOUNTS",
            "INVENTORY_DATABASE_URL",
            "INVENTORY_LOG_FORMAT",
            "INVENTORY_LOG_LEVEL",
            "INVENTORY_SYNC_INTERVAL",
            "INVENTORY_METRICS_ADDRESS",
        }
    }
    env["INVENTORY_CONFIG"] = str(config)
    hold = sim.faults.add(Fault(kind="hold", account_id=held, endpoint="servers", seconds=120))
    engine = make_engine(f"sqlite:///{db}", read_only=True)
    daemon = ConfiguredDaemon(env, tmp_path, address)
    try:
        daemon.wait_serving()
        # The held account's sync is running (stuck on its servers listing); the other syncs.
        [held_run] = wait_until(lambda: [r for r in rows(engine, held) if r.status == "running"])
        wait_until(lambda: any(r.status == "succeeded" for r in rows(engine, dropped)))

        write_config(
            config,
            sim,
            **{**settings, "log_level": "info", "database_url": f"sqlite:///{tmp_path / 'x.db'}"},
            accounts=[(held, "held, renamed"), (added, "added")],
        )
        daemon.signal(signal.SIGHUP)
        [reloaded] = wait_until(lambda: daemon.events("configuration reloaded"))
        assert reloaded["accounts_added"] == [added]
        assert reloaded["accounts_removed"] == [dropped]
        assert reloaded["accounts_changed"] == [held]
        assert reloaded["ignored_until_restart"] == ["database_url"]
        assert reloaded["log_level"] == "info"
        [ignored] = daemon.events("setting changed; ignored until restart")
        assert ignored["setting"] == "database_url"
        assert str(tmp_path / "x.db") not in daemon.output()  # names, never values
        reloaded_at = datetime.fromisoformat(reloaded["timestamp"])

        # The new account syncs at once, the removed one no more; the held sync goes on.
        wait_until(lambda: len([r for r in rows(engine, added) if r.status == "succeeded"]) >= 2)
        assert not [r for r in rows(engine, dropped) if r.started_at > reloaded_at]
        assert [r.status for r in rows(engine, held)] == ["running"]
        assert configured(engine)[dropped] is False
        assert daemon.events("account synced")  # info lines now: the new log level applies

        sim.faults.release()
        assert hold.released.is_set()
        wait_until(lambda: rows(engine, held)[0].status == "succeeded")
        assert rows(engine, held)[0].id == held_run.id  # the same run, finished, not dropped
        assert configured(engine)[held] is True

        # A configuration that does not validate changes nothing.
        config.write_text('sync_interval = "soon"\n[[accounts]]\nid = "nope"\n')
        daemon.signal(signal.SIGHUP)
        [refused] = wait_until(
            lambda: daemon.events(
                "configuration not reloaded: it does not validate; the running one is kept"
            )
        )
        assert "sync_interval" in refused["error"]
        assert sim.api_token not in daemon.output()
        synced = len(rows(engine, added))
        wait_until(lambda: len(rows(engine, added)) > synced + 1)  # still syncing, same accounts
        assert daemon.get("/healthz") == (200, "ok\n")
        assert daemon.stop() == 0, daemon.output()
    finally:
        sim.faults.release()
        daemon.close()
        engine.dispose()
    assert hold.kind == "hold"


def test_a_hold_fault_holds_requests_until_released_over_the_control_endpoint(
    sim: SimulatedCloudflare, api_url: str
) -> None:
    account = sim.account_ids[0]
    control = api_url.removesuffix("/client/v4") + "/__simulator"
    listing = f"{api_url}/accounts/{account}/access/ai-controls/mcp/servers"
    headers = {"Authorization": f"Bearer {sim.api_token}"}
    answers: list[int] = []
    with httpx.Client(headers=headers, timeout=30) as client:
        fault = {"kind": "hold", "account_id": account, "endpoint": "servers", "seconds": 30}
        assert client.post(control + "/faults", json=fault).status_code == 201
        request = threading.Thread(target=lambda: answers.append(client.get(listing).status_code))
        request.start()
        assert client.post(control + "/release").json() == {"released": 1}
        request.join(timeout=20)
        assert answers == [200]
        assert client.post(control + "/release").json() == {"released": 0}
        assert client.get(listing).status_code == 200  # released faults are gone


# What a reload changes, decided from two configurations alone.

A, B, C = "a" * 32, "b" * 32, "c" * 32


def settings_of(tmp_path: Path, toml: str) -> Any:
    (tmp_path / "inventory.toml").write_text(toml)
    return load_settings(environ={}, cwd=tmp_path)


def account(account_id: str, version: int = 1, extra: str = "") -> str:
    return f'[[accounts]]\nid = "{account_id}"\napi_token = "tok-{version}"\n{extra}'


def test_compare_settings_names_accounts_and_settings(tmp_path: Path) -> None:
    old = settings_of(
        tmp_path,
        'database_url = "postgresql://u:pw-one@db/inv"\nlog_level = "info"\n'
        + account(A)
        + account(B),
    )
    new = settings_of(
        tmp_path,
        'database_url = "postgresql://u:pw-two@db/inv"\nlog_level = "debug"\n'
        'sync_interval = "5m"\nmetrics_address = "0.0.0.0:9108"\nread_timeout = 5\n'
        + account(A, 2)
        + account(C),
    )
    change = compare_settings(old, new)
    assert (change.added, change.removed, change.changed) == ([C], [B], [A])
    assert change.settings == ["log_level", "sync_interval"]
    assert change.logging_changed
    # only the password differs, which the masked URL hides: still a change, named not shown
    assert change.ignored == ["database_url", "metrics_address", "read_timeout"]
    assert "pw-" not in repr(change)


def test_compare_settings_of_the_same_configuration_is_empty(tmp_path: Path) -> None:
    toml = account(A, extra='sync_cron = "*/5 * * * *"\n')
    change = compare_settings(settings_of(tmp_path, toml), settings_of(tmp_path, toml))
    assert change == ConfigChange(added=[], removed=[], changed=[], settings=[], ignored=[])
    assert not change.logging_changed
    assert set(RELOADABLE) >= {"accounts", "sync_interval", "sync_cron", "log_level"}
