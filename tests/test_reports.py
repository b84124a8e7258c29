"""The six report questions, answered exactly on SQLite and PostgreSQL.

The history comes from the simulator over HTTP, four daily sync cycles with a clock that
starts each cycle at midnight: renames, a status flap, tool churn, a deleted-then-restored
portal, an override toggled twice, a rejected record and a revoked account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.reports import sql
from inventory.reports.named import REPORTS, run_report
from inventory.reports.queries import (
    EntityNotFoundError,
    changes,
    inventory_as_of,
    run_sql,
    show_portal,
    show_server,
    status_periods,
    sync_status,
)
from inventory.simulator import SimulatedCloudflare
from tests.support.history import (
    FLAPPING,
    GONE_PORTAL,
    OVERRIDDEN,
    PORTAL,
    TOOLED,
    History,
    build_history,
    day,
    module_history_setup,
    observed,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reports.md"


# The tests only read the history: it is built once per database for the module (per worker).


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[Engine, History]]:
    sim = SimulatedCloudflare(seed=3, accounts=3, portals_per_account=4)  # conftest's sim
    workdir = tmp_path_factory.mktemp("reports")
    with module_history_setup(request.param, workdir, sqlite_template, sim) as (_, engine, s):
        yield engine, build_history(engine, s, sim)


@pytest.fixture(scope="module")
def engine(built: tuple[Engine, History]) -> Engine:
    return built[0]


@pytest.fixture(scope="module")
def history(built: tuple[Engine, History]) -> History:
    return built[1]


def _comparable(field_name: str | None, value: str | None) -> Any:
    if value is not None and field_name in ("error_details", "raw", "definition", "extra"):
        return json.loads(value)
    return value


def test_changes_field_by_field(engine: Engine, history: History) -> None:
    a, b = history.a, history.b
    with engine.connect() as conn:
        rows = changes(conn, since=day(2), until=day(3), account_id=a)
        b_rows = changes(conn, since=day(2), until=day(4), account_id=b)
        later = changes(conn, since=day(4), until=day(5), account_id=a, kind="override")
    got = [
        (r["kind"], r["entity_key"], r["change"], r["field"], r["old_value"], r["new_value"])
        for r in rows
        if r["field"] not in ("error_details", "last_synced", "last_successful_sync")
    ]
    override = f"{PORTAL}/{OVERRIDDEN}/tool/{history.toggled_tool}"
    assert got == [
        ("override", override, "created", None, None, None),
        ("portal", PORTAL, "updated", "name", "Platform MCP portal 1", "Platform (renamed)"),
        ("server", FLAPPING, "updated", "error", None, "upstream returned 502"),
        ("server", FLAPPING, "updated", "status", "ready", "error"),
        ("tool", f"{TOOLED}/{history.gone_tool}", "deleted", None, None, None),
        ("tool", f"{TOOLED}/{history.new_tool}", "created", None, None, None),
    ]
    assert {r["at"] for r in rows} == {observed(2, 0)}
    assert {r["run_id"] for r in rows} == {4}  # the first account's run of cycle 2
    fields = {(r["entity_key"], r["field"]) for r in rows if r["change"] == "updated"}
    assert (FLAPPING, "error_details") in fields
    assert (TOOLED, "last_successful_sync") in fields
    details = next(r for r in rows if r["field"] == "error_details")
    assert details["old_value"] is None
    assert _comparable("error_details", details["new_value"])["cause"] == "upstream returned 502"
    portal = next(r for r in rows if r["kind"] == "portal")
    assert portal["modified_by"] == history.portal_modified_by
    assert portal["modified_at"] is not None
    # the deleted portal and its three attachments, then their restore
    assert [(r["at"], r["kind"], r["change"]) for r in b_rows] == [
        (observed(2, 1), "portal", "deleted"),
        *[(observed(2, 1), "portal_server", "deleted")] * 3,
        (observed(3, 1), "portal", "restored"),
        *[(observed(3, 1), "portal_server", "restored")] * 3,
    ]
    assert [(r["entity_key"], r["field"], r["old_value"], r["new_value"]) for r in later] == [
        (override, "enabled", "false", "true")
    ]


def test_as_of_between_two_syncs_is_what_the_earlier_sync_saw(
    engine: Engine, history: History
) -> None:
    with engine.connect() as conn:
        for n in (1, 2, 3):
            rows = inventory_as_of(conn, as_of=day(n, hour=12))
            assert {
                (r["kind"], r["account_id"], r["entity_key"], r["content_hash"]) for r in rows
            } == (history.seen[n])
        # the instant of a sync already sees what it observed
        at_sync = inventory_as_of(conn, as_of=observed(2, 0), account_id=history.a)
        assert {r["name"] for r in at_sync if r["kind"] == "portal"} >= {"Platform (renamed)"}
        before = show_portal(conn, PORTAL, as_of=day(1, hour=12), account_id=history.a)
        after = show_portal(conn, PORTAL, as_of=day(2, hour=12), account_id=history.a)
        server = show_server(conn, FLAPPING, as_of=day(2, hour=12), account_id=history.a)
        with pytest.raises(EntityNotFoundError, match="no portal"):
            show_portal(conn, GONE_PORTAL, as_of=day(2, hour=12), account_id=history.b)
        restored = show_portal(conn, GONE_PORTAL, as_of=day(3, hour=12), account_id=history.b)
        with pytest.raises(EntityNotFoundError, match="several accounts"):
            show_server(conn, "gdrive-8", as_of=day(3))
    assert before["portal"]["name"] == "Platform MCP portal 1"
    assert after["portal"]["name"] == "Platform (renamed)"

    def toggled(shown: dict[str, Any]) -> Any:
        k8s = next(s for s in shown["servers"] if s["server_id"] == OVERRIDDEN)
        return next(t["enabled"] for t in k8s["tools"] if t["name"] == history.toggled_tool)

    assert toggled(before) is True
    assert toggled(after) is False
    assert server["server"]["status"] == "error"
    assert server["server"]["error"] == "upstream returned 502"
    assert len(server["tools"]) == 4
    assert [p["portal_id"] for p in server["portals"]] == [GONE_PORTAL]
    assert [s["server_id"] for s in restored["servers"]] == [
        "filesystem-4",
        "github-1",
        "pagerduty-5",
    ]


def test_status_periods_and_currently_in_error(engine: Engine, history: History) -> None:
    with engine.connect() as conn:
        periods = status_periods(conn, server_id=FLAPPING, account_id=history.a)
        in_error = run_report(conn, REPORTS["in-error"], now=day(5))
    assert [
        (p["status"], p["error"], p["started_at"], p["ended_at"], p["ended_by"]) for p in periods
    ] == [
        ("ready", None, observed(1, 0), observed(2, 0), "changed"),
        ("error", "upstream returned 502", observed(2, 0), observed(3, 0), "changed"),
        ("ready", None, observed(3, 0), observed(4, 0), "changed"),
        ("error", "timeout", observed(4, 0), None, None),
    ]
    assert [p["duration_seconds"] for p in periods[:3]] == [86400.0] * 3
    assert periods[3]["duration_seconds"] > 0  # so far: up to the database's clock
    flapping = [r for r in in_error if r["server_id"] == FLAPPING]
    assert [(r["account_id"], r["error"], r["in_error_since"]) for r in flapping] == [
        (history.a, "timeout", observed(4, 0))
    ]


def test_tools_that_appeared_or_disappeared(engine: Engine, history: History) -> None:
    report = REPORTS["capability-changes"]
    with engine.connect() as conn:
        everywhere = run_report(conn, report, now=day(5), since=day(1, hour=1))
        on_server = run_report(conn, report, now=day(5), since=day(1), server_id=TOOLED)
        after = run_report(conn, report, now=day(5), since=day(3))
    expected = [
        (observed(2, 0), history.a, TOOLED, "tool", history.gone_tool, "disappeared"),
        (observed(2, 0), history.a, TOOLED, "tool", history.new_tool, "appeared"),
    ]
    got = [
        (r["at"], r["account_id"], r["server_id"], r["kind"], r["item_name"], r["event"])
        for r in everywhere
    ]
    assert got == expected
    assert [r["item_name"] for r in on_server if r["account_id"] == history.a][-2:] == [
        history.gone_tool,
        history.new_tool,
    ]
    assert after == []


def test_sync_health(engine: Engine, history: History) -> None:
    with engine.connect() as conn:
        health = {r["account_id"]: r for r in sync_status(conn, since=day(1))}
        recent = {r["account_id"]: r for r in sync_status(conn, since=day(4))}
        failures = run_report(conn, REPORTS["sync-failures"], now=day(5), since=day(1))
    a, c = health[history.a], health[history.c]
    assert (a["runs"], a["failures"], a["avg_duration_seconds"]) == (4, 0, 2.0)
    assert (a["last_status"], a["last_error_class"]) == ("succeeded", None)
    assert a["last_success_at"] == day(4, second=4)
    assert (c["runs"], c["failures"], c["last_status"]) == (4, 1, "failed")
    assert c["avg_duration_seconds"] == pytest.approx(1.75)  # the failed run took 1 s
    assert c["last_success_at"] == day(3, second=10)
    assert c["last_failure_at"] == day(4, second=8)
    assert c["last_error_class"] == "AuthError"
    assert recent[history.c]["runs"] == 1
    assert [(f["account_id"], f["status"], f["error_class"]) for f in failures] == [
        (history.c, "failed", "AuthError")
    ]


def test_exposure_now_and_as_of(engine: Engine, history: History) -> None:
    exposure = [r for r in REPORTS.values() if r.exposure]
    with engine.connect() as conn:
        for report in exposure:
            now = run_report(conn, report, now=day(5))
            assert now == run_report(conn, report, now=day(5), as_of=day(5)), report.name
        tools = {
            at: {
                (r["account_id"], r["portal_id"], r["server_id"], r["tool_name"])
                for r in run_report(conn, REPORTS["enabled-tools"], now=day(5), as_of=at)
            }
            for at in (day(1, 12), day(2, 12), day(5))
        }
        gateway = {
            at: {
                (r["account_id"], r["portal_id"])
                for r in run_report(conn, REPORTS["no-gateway"], now=day(5), as_of=at)
            }
            for at in (day(1, 12), day(2, 12))
        }
        code_mode = run_report(conn, REPORTS["code-mode"], now=day(5))
        unauthenticated = run_report(conn, REPORTS["unauthenticated"], now=day(5))
    toggled = (history.a, PORTAL, OVERRIDDEN, history.toggled_tool)
    assert toggled in tools[day(1, 12)]
    assert toggled not in tools[day(2, 12)]
    gone = {t for t in tools[day(1, 12)] if t[:2] == (history.b, GONE_PORTAL)}
    assert gone
    assert not gone & tools[day(2, 12)]
    assert gone <= tools[day(5)]
    assert toggled in tools[day(5)]
    assert (history.b, GONE_PORTAL) in gateway[day(1, 12)] - gateway[day(2, 12)]
    assert {
        (r["portal_id"], r["code_mode"]) for r in code_mode if r["account_id"] == history.a
    } == {(PORTAL, "default_on")}
    assert {
        (r["server_id"], r["portal_id"]) for r in unauthenticated if r["account_id"] == history.a
    } == {
        ("pagerduty-2", "portal-security-3"),
        ("stripe-5", "portal-security-3"),
        ("stripe-5", "portal-support-4"),
    }


def _documented() -> list[tuple[str, str]]:
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.DOTALL)
    named = []
    for block in blocks:
        first, _, body = block.partition("\n")
        match = re.fullmatch(r"-- name: ([\w-]+)", first.strip())
        assert match, f"a SQL block in docs/reports.md has no '-- name:' line: {first}"
        named.append((match.group(1), body))
    return named


def _words(text: str) -> list[str]:
    return text.split()


def test_docs_show_the_sql_the_cli_runs() -> None:
    documented = dict(_documented())
    assert set(documented) == set(sql.DOCUMENTED)
    for name, body in documented.items():
        assert _words(body) == _words(sql.DOCUMENTED[name]), name


def test_every_sql_block_in_the_docs_runs(engine: Engine, history: History) -> None:
    params = {
        "since": day(2),
        "until": day(5),
        "as_of": day(2, hour=12),
        "account_id": history.a,
        "server_id": TOOLED,
        "portal_id": PORTAL,
        "kind": None,
    }
    with engine.connect() as conn:
        for name, body in _documented():
            # the failed runs are account c's
            account = history.c if name == "sync-failures" else history.a
            rows = run_sql(conn, body, **{**params, "account_id": account})
            assert rows, f"{name} answered nothing for the test history"
            if name in REPORTS and REPORTS[name].exposure:
                assert run_sql(conn, f"{sql.AS_OF_CTE}\n{body}", **params), name
