"""The report commands as a user types them, on an app built with ``register``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from inventory.timespec import TimeSpecError, parse_duration, parse_instant
from tests.support.cli import invoke_reports
from tests.support.history import FLAPPING, PORTAL, History, build_history, observed

pytestmark = pytest.mark.usefixtures("keep_logging")


@pytest.fixture
def history(engine: Engine, settings: Settings, sim: SimulatedCloudflare) -> History:
    return build_history(engine, settings, sim)


@pytest.mark.slow
@pytest.mark.parallel
def test_changes_as_json_and_csv(db_url: str, history: History) -> None:
    period = ["--since", "2026-01-02", "--until", "2026-01-02T00:00:05Z"]
    result = invoke_reports(db_url, "changes", *period, "--account", history.a, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    renamed = [r for r in rows if r["kind"] == "portal"]
    assert [(r["field"], r["old_value"], r["new_value"]) for r in renamed] == [
        ("name", "Platform MCP portal 1", "Platform (renamed)")
    ]
    assert {r["at"] for r in rows} == {observed(2, 0).isoformat()}
    as_csv = invoke_reports(db_url, "changes", *period, "--kind", "tool", "--csv")
    assert as_csv.exit_code == 0
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert sorted(r["change"] for r in table) == ["created", "deleted"]
    human = invoke_reports(db_url, "changes", *period)
    assert human.exit_code == 0
    assert "Platform (renamed)" in human.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["changes", "--since", "yesterday-ish"],
        ["changes", "--until", "2026-13-01"],
        ["show", "portal", PORTAL, "--as-of", "soon"],
        ["prune", "--history-older-than", "forever"],
        ["report", "no-such-report"],
        ["changes", "--json", "--csv"],
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(db_url: str, args: list[str]) -> None:
    result = invoke_reports(db_url, *args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parallel
def test_show_as_of_and_not_found(db_url: str, history: History) -> None:
    shown = invoke_reports(
        db_url, "show", "portal", PORTAL, "-a", history.a, "--as-of", "2026-01-01T12:00"
    )
    assert shown.exit_code == 0, shown.output
    assert "Platform MCP portal 1" in shown.stdout
    as_json = invoke_reports(db_url, "show", "server", FLAPPING, "-a", history.a, "--json")
    assert json.loads(as_json.stdout)["server"]["error"] == "timeout"
    missing = invoke_reports(
        db_url, "show", "portal", PORTAL, "-a", history.a, "--as-of", "2020-01-01"
    )
    assert missing.exit_code == 1
    assert "no portal" in missing.stderr


@pytest.mark.slow
@pytest.mark.parallel
def test_timeline_status_and_reports(db_url: str, history: History) -> None:
    timeline = invoke_reports(db_url, "timeline", "server", FLAPPING, "-a", history.a, "--json")
    assert [p["status"] for p in json.loads(timeline.stdout)] == [
        "ready",
        "error",
        "ready",
        "error",
    ]
    status = invoke_reports(db_url, "status", "--since", "2026-01-01", "--json")
    assert {r["account_id"]: r["failures"] for r in json.loads(status.stdout)} == {
        history.a: 0,
        history.b: 0,
        history.c: 1,
    }
    listed = invoke_reports(db_url, "report")
    assert "enabled-tools" in listed.stdout
    code_mode = invoke_reports(db_url, "report", "code-mode", "--as-of", "2026-01-02", "--csv")
    assert code_mode.exit_code == 0
    assert PORTAL in code_mode.stdout
    wrong = invoke_reports(db_url, "report", "in-error", "--since", "7d")
    assert wrong.exit_code == 2


@pytest.mark.slow
@pytest.mark.parallel
def test_prune_reports_what_it_removed(db_url: str, history: History) -> None:
    # everything in the history closed days ago; nothing closed within the last 1000 days
    assert (
        "no versions; 0 run(s)"
        in invoke_reports(db_url, "prune", "--history-older-than", "1000d").stdout
    )
    result = invoke_reports(db_url, "prune", "--history-older-than", "1s", "--json")
    assert result.exit_code == 0, result.output
    removed = json.loads(result.stdout)
    assert removed["versions"]["servers_history"] > 0
    assert removed["rejected_records"] == 1
    no_duration = invoke_reports(db_url, "prune")
    assert no_duration.exit_code == 2
    assert "history_retention" in no_duration.stderr


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("now", NOW),
        ("2026-02-01", datetime(2026, 2, 1, tzinfo=UTC)),
        ("2026-02-01T10:00:00Z", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("2026-02-01T12:00:00+02:00", datetime(2026, 2, 1, 10, tzinfo=UTC)),
    ],
)
def test_times_as_people_type_them(text: str, expected: datetime) -> None:
    assert parse_instant(text, now=NOW) == expected


def test_unreadable_times_and_durations() -> None:
    with pytest.raises(TimeSpecError, match="--since: cannot read 'last week'"):
        parse_instant("last week", now=NOW, option="--since")
    with pytest.raises(TimeSpecError):
        parse_duration("0d")
    assert parse_duration("180d") == timedelta(days=180)
