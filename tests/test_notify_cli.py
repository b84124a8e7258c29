"""``inventory notify test | pending | deliver`` and ``status``, through the real CLI."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs
from typer.testing import CliRunner

from inventory.cli import app
from inventory.daemon.service import run_sync
from inventory.notify.formats import slack_line
from inventory.settings import load_settings
from inventory.simulator import SimulatedCloudflare
from tests.support.cli import run
from tests.support.faultkit import small_sim
from tests.support.notify import SECRET, queue, states
from tests.support.receiver import Receiver, Status, receiving
from tests.support.settings import settings_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def invoke(db_url: str, targets: list[dict[str, Any]], *args: str) -> Any:
    cleared: dict[str, str | None] = {n: None for n in os.environ if n.startswith("INVENTORY_")}
    env = {
        **cleared,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_NOTIFY": json.dumps(targets),
        "INVENTORY_LOG_FORMAT": "json",
    }
    return CliRunner().invoke(app, list(args), env=env)


def test_notify_test_posts_a_signed_event_to_each_target_and_fails_on_any(
    db_url: str, receiver: Receiver
) -> None:
    targets = [
        {"name": "ok", "url": receiver.url, "secret": SECRET},
        {"name": "refuses", "url": receiver.url + "/x", "format": "slack"},
    ]
    receiver.answers.extend([Status(204), Status(400)])
    result = invoke(db_url, targets, "notify", "test")
    assert result.exit_code == 1, result.output
    assert "ok: ok (HTTP 204)" in result.stdout
    assert "refuses: failed: HTTP 400" in result.stdout
    first, second = receiver.requests
    assert first.document["events"][0]["type"] == "notify.test"
    expected = "sha256=" + hmac.new(SECRET.encode(), first.body, hashlib.sha256).hexdigest()
    assert first.headers["x-inventory-signature"] == expected
    assert "x-inventory-signature" not in second.headers
    # the Slack shape; a test event is about no account: no empty "[]" where its name goes
    assert second.document["text"] == "*notify.test* test notification from inventory"
    about = {"type": "notify.test", "account": {"id": "a" * 32, "name": "production"}}
    assert slack_line(about) == "*notify.test* [production] test notification from inventory"
    receiver.answers.clear()
    assert invoke(db_url, targets, "notify", "test").exit_code == 0


def test_pending_shows_what_is_left_and_what_is_dead(
    db_url: str, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    targets = [{"name": "sec", "url": receiver.url, "batch_window": 0, "batch_size": 1}]
    ids = queue(engine, "sec", 3, now=datetime.now(UTC))
    receiver.answers.extend([Status(200), Status(404), Status(500)])
    result = invoke(db_url, targets, "notify", "deliver", "--budget", "0")
    assert result.exit_code == 1, result.output  # one left pending, to retry
    assert "sec: 1 delivered, some left pending" in result.stdout
    result = invoke(db_url, targets, "notify", "pending", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["targets"][0] | {"oldest_pending": None} == {
        "target": "sec",
        "pending": 1,
        "dead": 1,
        "oldest_pending": None,
    }
    by_id = {e["event_id"]: e for e in document["events"]}
    assert (by_id[ids[1]]["state"], by_id[ids[1]]["last_error"]) == ("dead", "HTTP 404")
    assert (by_id[ids[2]]["state"], by_id[ids[2]]["last_error"]) == ("pending", "HTTP 500")
    # ISO 8601 times, as every other --json prints them (str() gave a space for the T)
    assert datetime.fromisoformat(by_id[ids[2]]["created_at"]).tzinfo is not None
    assert "T" in by_id[ids[2]]["created_at"]
    assert "T" in document["targets"][0]["oldest_pending"]
    text = invoke(db_url, targets, "notify", "pending")
    assert "sec: 1 pending, 1 dead" in text.stdout
    status = invoke(db_url, targets, "status")
    assert "notify sec: 1 pending, 1 dead" in status.stdout


def test_a_one_shot_sync_leaves_the_daemons_targets_alone(
    db_url: str,
    engine: Engine,
    receiver: Receiver,
    served: Callable[[SimulatedCloudflare], str],
    tmp_path: Path,
) -> None:
    """``inventory sync`` with another target list than the daemon's deletes none of its rows."""
    sim = small_sim(accounts=1)
    theirs = queue(engine, "daemons-target", 2)
    mine = [{"name": "mine", "url": receiver.url, "batch_window": 0}]
    settings = settings_for(sim, served(sim), db_url, cwd=tmp_path, notify=json.dumps(mine))
    with capture_logs() as logs:
        [result] = run_sync(settings, settings.accounts)
    assert result.status == "succeeded"
    assert [e["type"] for r in receiver.requests for e in r.document["events"]] == ["sync.first"]
    assert states(engine, "daemons-target") == dict.fromkeys(theirs, ("pending", 0, None))
    assert not [e for e in logs if "no longer configured" in e["event"]]


def test_pending_for_one_target_lists_its_events_whatever_the_others(
    db_url: str, engine: Engine
) -> None:
    queue(engine, "aaa", 5)  # listed first, by target name
    mine = queue(engine, "sec", 2, first=10)
    targets = [{"name": "sec", "url": "https://hooks.example/x"}]
    args = ("notify", "pending", "--json", "--target", "sec", "--limit", "2")
    result = invoke(db_url, targets, *args)
    assert result.exit_code == 0, result.output
    assert [e["event_id"] for e in json.loads(result.stdout)["events"]] == mine


def test_status_json_and_csv_carry_the_notification_counts(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    targets = [{"name": "sec", "url": receiver.url, "batch_window": 0, "batch_size": 1}]
    account = "a" * 32  # the account of the queued events
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, configured, first_seen_at) "
                "VALUES (:a, 'prod', TRUE, :t)"
            ),
            {"a": account, "t": datetime.now(UTC)},
        )
    queue(engine, "sec", 3, now=datetime.now(UTC))
    queue(engine, "ops", 1, first=7, now=datetime.now(UTC))
    receiver.answers.extend([Status(200), Status(404), Status(500)])
    invoke(db_url, targets, "notify", "deliver", "--budget", "0")
    as_json = invoke(db_url, targets, "status", "--json")
    assert as_json.exit_code == 0, as_json.output
    [row] = [r for r in json.loads(as_json.stdout) if r["account_id"] == account]
    assert (row["notify_pending"], row["notify_dead"]) == (2, 1)
    assert row["notify"] == [
        {"target": "ops", "pending": 1, "dead": 0},
        {"target": "sec", "pending": 1, "dead": 1},
    ]
    as_csv = invoke(db_url, targets, "status", "--csv")
    assert as_csv.exit_code == 0, as_csv.output
    [line] = [r for r in csv.DictReader(io.StringIO(as_csv.stdout)) if r["account_id"] == account]
    assert (line["notify_pending"], line["notify_dead"]) == ("2", "1")


def test_no_target_is_a_configuration_error(db_url: str) -> None:
    result = invoke(db_url, [], "notify", "test")
    assert result.exit_code == 2
    assert "no notify targets configured" in result.stderr
    bad = invoke(db_url, [{"name": "x", "url": "ftp://example.com/hook"}], "notify", "test")
    assert bad.exit_code == 2
    assert "notify[0]: url: must be an http:// or https:// URL" in bad.stderr
    for given in ("notify", "test"), ("notify", "pending"):
        port = invoke(db_url, [{"name": "x", "url": "https://h.example:99999/s3cr3tpath"}], *given)
        assert port.exit_code == 2
        assert "notify[0]: url: has a port that is not a number from 0 to 65535" in port.stderr
        assert "s3cr3tpath" not in port.output
    twice = [{"name": "x", "url": "https://a.example"}, {"name": "x", "url": "https://b.example"}]
    assert "listed twice" in invoke(db_url, twice, "notify", "pending").stderr


def test_a_target_naming_an_unknown_account_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    """Such a target used to pass `config check` and then never get an event about anyone."""
    prod, spare = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    token = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    accounts = [
        {"id": prod, "name": "production", "api_token": token},
        {"id": spare, "api_token": token},
    ]

    def check(wanted: list[str]) -> Any:
        target = {"name": "ops", "url": "https://hooks.example/s3cr3tpath", "accounts": wanted}
        env = {"INVENTORY_ACCOUNTS": json.dumps(accounts), "INVENTORY_NOTIFY": json.dumps([target])}
        return run(["config", "check"], tmp_path, env)

    result = check(["production", "nope"])
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip() == (
        "error: notify: target 'ops': accounts: 'nope' is not a configured account id or name; "
        f"valid: production ({prod}), {spare} (from env INVENTORY_NOTIFY)"
    )
    assert token not in result.stderr
    assert "s3cr3tpath" not in result.stderr
    assert check(["Production"]).returncode == 2  # a name is matched as written, like the events
    ok = check(["production", spare.upper()])  # an id in any case, as for [[accounts]]
    assert ok.returncode == 0, ok.stderr
    target = {"name": "ops", "url": "https://hooks.example/x", "accounts": [spare.upper()]}
    environ = {"INVENTORY_ACCOUNTS": json.dumps(accounts), "INVENTORY_NOTIFY": json.dumps([target])}
    [loaded] = load_settings(environ=environ, cwd=tmp_path).notify
    assert loaded.covers(spare, None)
    assert not loaded.covers(prod, "production")
    alone = load_settings(  # no account configured: nothing to check against (notify commands)
        environ={"INVENTORY_NOTIFY": json.dumps([target])}, cwd=tmp_path, require_accounts=False
    )
    assert alone.notify[0].accounts == (spare,)


def test_a_target_option_naming_no_target_is_an_error_listing_the_valid_ones(
    db_url: str, engine: Engine
) -> None:
    targets = [{"name": "sec", "url": "https://hooks.example/x"}]
    queue(engine, "old-target", 1)  # no longer configured here, but its event is still pending
    unknown = invoke(db_url, targets, "notify", "test", "--target", "nope")
    assert unknown.exit_code == 2
    assert (
        unknown.stderr.strip() == "error: --target 'nope' is not a notify target; configured: sec"
    )
    pending = invoke(db_url, targets, "notify", "pending", "--target", "nope")
    assert pending.exit_code == 2, pending.stdout  # was "nothing pending, nothing dead", exit 0
    assert pending.stderr.strip() == (
        "error: --target 'nope' is not a notify target; "
        "configured or with pending or dead events: old-target, sec"
    )
    assert "nothing pending" not in pending.stdout
    old = invoke(db_url, targets, "notify", "pending", "--target", "old-target")
    assert old.exit_code == 0, old.output
    assert "old-target: 1 pending, 0 dead" in old.stdout
    quiet = invoke(db_url, targets, "notify", "pending", "--target", "sec")  # configured, idle
    assert quiet.exit_code == 0, quiet.output
    assert "nothing pending, nothing dead" in quiet.stdout


def test_negative_budgets_and_limits_are_refused(db_url: str) -> None:
    targets = [{"name": "sec", "url": "https://hooks.example/x"}]
    budget = invoke(db_url, targets, "notify", "deliver", "--budget", "-1")
    assert budget.exit_code == 2
    assert "Invalid value for '--budget'" in budget.stderr
    limit = invoke(db_url, targets, "notify", "pending", "--limit", "-1")
    assert limit.exit_code == 2
    assert "Invalid value for '--limit'" in limit.stderr
