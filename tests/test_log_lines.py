"""Retry and scheduler log lines: short event names, the account and the URL, nothing internal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inventory.simulator import SimulatedCloudflare
from inventory.simulator.faults import Fault
from tests.support.cli import accounts_env, run
from tests.support.daemon import daemon_env, running, wait_until

INTERNAL = ("<context block>", "RetryableError", "stamina.retry_scheduled")


def events(text: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def test_a_retry_names_the_account_and_the_url(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str
) -> None:
    victim = sim.account_ids[1]
    sim.faults.add(Fault(kind="status", status=503, account_id=victim, endpoint="servers", times=1))
    env = accounts_env(sim, api_url, f"sqlite:///{tmp_path / 'inv.db'}")
    accounts = json.loads(env["INVENTORY_ACCOUNTS"])
    for i, account in enumerate(accounts):
        account["name"] = f"team-{i}"
    env["INVENTORY_ACCOUNTS"] = json.dumps(accounts)
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    synced = run(["sync"], tmp_path, env)
    assert synced.returncode == 0, synced.stderr
    [retry] = events(synced.stderr, "retry")
    assert retry["level"] == "warning"
    assert retry["account_id"] == victim
    assert retry["account"] == "team-1"
    assert f"/accounts/{victim}/access/ai-controls/mcp/servers?page=1" in str(retry["url"])
    assert retry["attempt"] == 1
    assert "503" in str(retry["cause"])
    for word in INTERNAL:
        assert word not in synced.stderr
    assert sim.api_token not in synced.stderr
    console = run(["--log-format", "console", "sync"], tmp_path, env)  # no retry now: same words
    for word in INTERNAL:
        assert word not in console.stderr


@pytest.mark.slow  # the daemon, a process, over several 1 s cycles
def test_an_overlapping_cycle_is_one_short_line_naming_the_account(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str
) -> None:
    slow = sim.account_ids[0]
    db = f"sqlite:///{tmp_path / 'inv.db'}"
    env = daemon_env(sim, api_url, db, tmp_path)
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    # Every page of one account takes longer than the 1 s cycle: the next cycle finds it running.
    sim.faults.add(Fault(kind="delay", seconds=1.5, account_id=slow, endpoint="portals"))
    with running(env, tmp_path) as daemon:
        daemon.wait_serving()

        # On a loaded machine another account's sync may overrun a 1 s cycle too: wait for the
        # slow account's line, and check that every such line names its account.
        def slow_skips() -> list[dict[str, object]]:
            return [e for e in daemon.events("sync skipped") if e.get("account_id") == slow]

        [skipped, *_] = wait_until(slow_skips, timeout=60)
        every = daemon.events("sync skipped")
        assert daemon.stop() == 0
        output = daemon.output()
    assert all(e.get("account_id") in sim.account_ids and e.get("account") for e in every)
    assert skipped["account"] == "acct-0"
    assert "still running" in str(skipped["reason"])
    assert "maximum number of running instances" not in output
    assert "Execution of job" not in output
    for word in INTERNAL:
        assert word not in output
