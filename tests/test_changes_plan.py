"""``inventory changes`` as a plan, checked filters, and output that fits 80 columns.

A fixed scenario (simulator seed, a clock that starts each daily cycle at midnight) is synced
into SQLite and PostgreSQL; each command's output at 80 and 120 columns and piped (no COLUMNS:
80) must equal the snapshot under tests/data/snapshots/, the same for both databases.

Regenerate the snapshots after an intended change of the output:
    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_changes_plan.py -k snapshot
and read the diff before committing it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from sqlalchemy import Engine
from typer.testing import CliRunner

from inventory.cli import app
from inventory.cli.render import results_table
from inventory.reports.fields import FieldFilter
from inventory.reports.named import REPORTS
from inventory.reports.plan import (
    ABSENT,
    PLAN_COLUMNS,
    FieldChange,
    field_changes,
    json_diff,
)
from inventory.selection import KnownAccount, SelectionError, parse_kinds, resolve_account
from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from tests.support.history import daily_cycles, module_history_setup
from tests.support.history import day as history_day
from tests.support.matrix import one_per_family
from tests.support.settings import settings_for

SNAPSHOTS = Path(__file__).resolve().parent / "data" / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0")
WIDTHS = {"80": {"COLUMNS": "80"}, "120": {"COLUMNS": "120"}, "piped": {}}


pytestmark = pytest.mark.usefixtures("keep_logging")


def day(n: int, hour: int = 0) -> datetime:
    return history_day(n, hour, month=2)


@dataclass
class Scenario:
    a: str
    b: str
    portal: str
    linked: str
    tool: str
    oauth: str
    flapping: str
    tooled: str
    gone_portal: str


def _pick(sim: SimulatedCloudflare) -> Scenario:
    a, b = sim.account_ids
    portal = sim.portal_ids(a)[0]
    linked = sim.portal_server_ids(a, portal)[0]
    servers = {s["id"]: s for s in sim.servers(a)}
    oauth = next(i for i, s in sorted(servers.items()) if s.get("auth_config_summary"))
    others = [i for i in sorted(servers) if i not in (linked, oauth) and sim.tool_names(a, i)]
    return Scenario(
        a=a,
        b=b,
        portal=portal,
        linked=linked,
        tool=sim.tool_names(a, linked)[0],
        oauth=oauth,
        flapping=others[0],
        tooled=others[1],
        gone_portal=sim.portal_ids(b)[0],
    )


def build_scenario(engine: Engine, settings: Settings, sim: SimulatedCloudflare) -> Scenario:
    s = _pick(sim)
    with daily_cycles(engine, settings, month=2) as sync:

        def cycle(n: int) -> list[str]:
            return [r.status for r in sync(n)]

        assert cycle(1) == ["succeeded"] * 2
        sim.rename_portal(s.a, s.portal, "Platform (renamed)")
        sim.set_portal_fields(s.a, s.portal, {"x_new_setting": {"mode": "strict", "level": 2}})
        sim.toggle_override(s.a, s.portal, s.linked, s.tool)
        summary = next(x for x in sim.servers(s.a) if x["id"] == s.oauth)["auth_config_summary"]
        changed = json.loads(json.dumps(summary))
        changed["registration_info"]["scope"] = "read"
        changed["config"].pop("revocation_endpoint")
        sim.set_server_fields(s.a, s.oauth, {"auth_config_summary": changed})
        sim.set_server_status(s.a, s.flapping, "error", error="upstream returned 502")
        sim.add_tool(s.a, s.tooled)
        sim.remove_tool(s.a, s.tooled, sim.tool_names(s.a, s.tooled)[0])
        sim.delete_portal(s.b, s.gone_portal)
        assert cycle(2) == ["succeeded"] * 2
        sim.set_server_status(s.a, s.flapping, "ready")
        sim.set_server_status(s.a, s.tooled, "ready")  # only the observation fields move
        sim.restore_portal(s.b, s.gone_portal)
        sim.set_server_override(s.a, s.tooled, sim.tool_names(s.a, s.tooled)[0], enabled=False)
        sim.set_portal_description(s.a, s.portal, "A much longer description " * 4)
        assert cycle(3) == ["succeeded"] * 2
        sim.set_server_status(s.a, s.flapping, "error", error="timeout")
        sim.toggle_override(s.a, s.portal, s.linked, s.tool)
        assert cycle(4) == ["succeeded"] * 2
        sim.delete_server(s.a, s.flapping)
        sim.revoke(s.b)
        assert cycle(5) == ["succeeded", "failed"]
    return s


@pytest.fixture
def sim() -> SimulatedCloudflare:
    """Two accounts (acct-0, acct-1): the scenario's; served by conftest's ``api_url``."""
    return SimulatedCloudflare(seed=5, accounts=2, portals_per_account=3)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scenario_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[str, Scenario]]:
    """The scenario, built once per database kind: the tests that take it only read it."""
    sim = SimulatedCloudflare(seed=5, accounts=2, portals_per_account=3)  # as `sim` below
    workdir = tmp_path_factory.mktemp("plan")
    with module_history_setup(request.param, workdir, sqlite_template, sim) as (url, engine, s):
        yield url, build_scenario(engine, s, sim)


@pytest.fixture
def synced_once(
    engine: Engine, sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path
) -> None:
    """One sync of both accounts (acct-0, acct-1): enough for the filters to check against."""
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
    with daily_cycles(engine, settings, month=2) as cycle:
        assert [r.status for r in cycle(1)] == ["succeeded"] * 2


def named_accounts(sim: SimulatedCloudflare, api_url: str) -> dict[str, str]:
    """The environment of a `sync`: the accounts at ``api_url``, named acct-0 and acct-1."""
    accounts = [
        {"id": a, "name": f"acct-{i}", "api_token": sim.api_token}
        for i, a in enumerate(sim.account_ids)
    ]
    return {"INVENTORY_API_BASE_URL": api_url, "INVENTORY_ACCOUNTS": json.dumps(accounts)}


def invoke(db_url: str, *args: str, env: dict[str, str] | None = None) -> Any:
    base = {"INVENTORY_LOG_FORMAT": "json", "INVENTORY_ACCOUNTS": None, "COLUMNS": None}
    return CliRunner().invoke(app, ["--database-url", db_url, *args], env={**base, **(env or {})})


def normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{name} differs from its snapshot"


def check_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert cell_len(line) <= width, f"wider than {width}: {line!r}"
    assert "…" not in text


PERIOD = ["--since", "2026-02-02", "--until", "2026-02-06"]
COMMANDS: dict[str, list[str]] = {
    "changes": ["changes", *PERIOD],
    "status": ["status", "--since", "2026-02-01"],
}


@pytest.mark.parametrize("command", [*COMMANDS, "timeline"])
def test_snapshot_of_each_command(scenario_db: tuple[str, Scenario], command: str) -> None:
    db_url, scenario = scenario_db
    args = COMMANDS.get(command) or ["timeline", "server", scenario.flapping]
    outputs = {}
    for label, env in WIDTHS.items():
        result = invoke(db_url, *args, env=env)
        assert result.exit_code == 0, result.output
        outputs[label] = normalised(result.stdout)
        check_fits(outputs[label], 80 if label == "piped" else int(label))
    assert outputs["piped"] == outputs["80"]  # piped without COLUMNS: 80
    check_snapshot(f"{command}-80", outputs["80"])
    check_snapshot(f"{command}-120", outputs["120"])


def test_snapshot_of_the_sync_summary(
    db_url: str, sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    env = named_accounts(sim, api_url)
    assert invoke(db_url, "db", "upgrade", env=env).exit_code == 0
    first = invoke(db_url, "sync", env={**env, "COLUMNS": "120"})
    assert first.exit_code == 0, first.output
    a, b = sim.account_ids
    sim.revoke(b)
    for label, columns in (("80", "80"), ("120", "120")):
        sim.rename_portal(a, sim.portal_ids(a)[0], f"renamed at {label}")
        sim.add_tool(a, sim.server_ids(a)[0])
        result = invoke(db_url, "sync", env={**env, "COLUMNS": columns})
        assert result.exit_code == 1, result.output
        text = normalised(re.sub(r"\b\d+\.\ds\b", "0.1s", result.stdout))
        check_fits(text, int(columns))
        check_snapshot(f"sync-{label}", text)
    check_fits(normalised(first.stdout), 120)
    assert "+" in first.stdout


def test_big_counts_are_never_cut() -> None:
    counts = {"added": 1500, "changed": 12345, "removed": 7}
    kinds = ("portal", "server", "portal_server", "tool", "prompt", "override")
    results = [
        AccountResult(
            account_id="0" * 32,
            name=None,
            status="succeeded",
            counts={k: dict(counts) for k in kinds},
            requests=123456,
            duration=12.5,
        ),
        AccountResult(
            account_id="1" * 32,
            name="prod",
            status="failed",
            error="403 Forbidden: Authentication error; check the API token " * 2,
        ),
    ]
    for width in (60, 80, 120, 200):
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(results_table(results, width=width))
        text = console.export_text()
        check_fits(text, width)
        assert text.count("+1500 ~12345 -7") == 6, text
        assert "0" * (32 if width >= 80 else 12) in text  # an id folds only when it must


# --- the plan's pieces -------------------------------------------------------------------------


def test_json_columns_diff_by_path() -> None:
    old = {"config": {"scope": "a", "issuer": "x"}, "uris": ["u1"], "items": [{"n": 1}]}
    new = {"config": {"scope": "b"}, "uris": ["u1", "u2"], "items": [{"n": 2}, {"n": 3}]}
    got = json_diff("auth_config_summary", old, new)
    assert got == [
        FieldChange("auth_config_summary.config.issuer", "x", ABSENT),
        FieldChange("auth_config_summary.config.scope", "a", "b"),
        FieldChange("auth_config_summary.items[0].n", 1, 2),
        FieldChange("auth_config_summary.items[1]", ABSENT, {"n": 3}),
        FieldChange("auth_config_summary.uris", ["u1"], ["u1", "u2"]),
    ]
    assert json_diff("x", {"odd key": True}, {"odd key": 1}) == [
        FieldChange('x["odd key"]', True, 1)
    ]


def test_raw_skips_what_columns_show_and_who_when_is_no_field() -> None:
    old = {
        "name": "a",
        "modified_at": day(1),
        "modified_by": "x",
        "raw": {"id": "p", "name": "a", "modified_by": "x", "new_field": 1},
    }
    new = {
        "name": "b",
        "modified_at": day(2),
        "modified_by": "y",
        "raw": {"id": "p", "name": "b", "modified_by": "y", "new_field": 2},
    }
    assert field_changes("portal", old, new) == [
        FieldChange("name", "a", "b"),
        FieldChange("raw.new_field", 1, 2),
    ]


def test_field_filters() -> None:
    synced = FieldChange("last_synced", day(1), day(2))
    scope = FieldChange("auth_config_summary.config.scope", "a", "b")
    assert not FieldFilter().keeps(synced)
    assert FieldFilter(all_fields=True).keeps(synced)
    assert FieldFilter(only=("last_synced",)).keeps(synced)
    assert FieldFilter(only=("auth_config_summary",)).keeps(scope)
    assert not FieldFilter(only=("auth_config",)).keeps(scope)
    assert not FieldFilter(exclude=("auth_config_summary.config",)).keeps(scope)
    FieldFilter(only=("raw.anything", "status")).check(["portal", "server"])
    with pytest.raises(SelectionError, match="--field 'colour' is not a field of portal"):
        FieldFilter(only=("colour",)).check(["portal"])


def test_kinds_and_accounts_are_checked() -> None:
    assert parse_kinds(["portals", "Link", "server"]) == ["portal", "server", "portal_server"]
    with pytest.raises(SelectionError, match=r"'portalz' is not a kind; use one of portal, "):
        parse_kinds(["portalz"])
    known = [KnownAccount("a" * 32, "prod"), KnownAccount("b" * 32, None)]
    assert resolve_account("prod", known) == "a" * 32
    assert resolve_account("PROD", known) == "a" * 32
    assert resolve_account("B" * 32, known) == "b" * 32
    with pytest.raises(SelectionError, match=f"valid: prod \\({'a' * 32}\\), {'b' * 32}$"):
        resolve_account("staging", known)
    twins = [KnownAccount("a" * 32, "prod"), KnownAccount("c" * 32, "prod")]
    with pytest.raises(SelectionError, match="names several accounts"):
        resolve_account("prod", twins)
    # Renamed in the settings, not yet synced: the configured name and the recorded one both
    # name it; the error lists it once, by its configured name.
    renamed = [KnownAccount("a" * 32, "staging2"), KnownAccount("a" * 32, "staging")]
    assert resolve_account("staging2", renamed) == "a" * 32
    assert resolve_account("Staging", renamed) == "a" * 32
    with pytest.raises(SelectionError, match=f"valid: staging2 \\({'a' * 32}\\)$"):
        resolve_account("prod", renamed)


# --- end to end, both databases -----------------------------------------------------------------


def _rows(db_url: str, *args: str) -> list[dict[str, Any]]:
    result = invoke(db_url, "changes", *PERIOD, "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_changes_rows_are_field_changes_with_names(scenario_db: tuple[str, Scenario]) -> None:
    db_url, scenario = scenario_db
    rows = _rows(db_url, "--account", "acct-0")
    assert rows
    assert all(list(r) == list(PLAN_COLUMNS) for r in rows)
    assert {r["account_name"] for r in rows} == {"acct-0"}
    fields = {(r["entity_key"], r["field"]): r for r in rows if r["change"] == "updated"}
    renamed = fields[(scenario.portal, "name")]
    assert (renamed["old_value"], renamed["new_value"]) == (
        renamed["old_value"],
        "Platform (renamed)",
    )
    assert renamed["entity_name"] == "Platform (renamed)"
    assert renamed["modified_by"]
    assert renamed["modified_at"]
    new_field = fields[(scenario.portal, "raw.x_new_setting")]
    assert new_field["old_value"] is None
    assert new_field["new_value"] == {"level": 2, "mode": "strict"}
    scope = fields[(scenario.oauth, "auth_config_summary.registration_info.scope")]
    assert (scope["old_value"], scope["new_value"]) == ("read write", "read")
    assert (scenario.oauth, "auth_config_summary.config.revocation_endpoint") in fields
    # never whole blobs, never who/when as fields, no observation fields by default
    assert not {f for _, f in fields if f in ("raw", "auth_config_summary", "modified_at")}
    assert not {f for _, f in fields if f in ("last_synced", "last_successful_sync")}
    override = f"{scenario.portal}/{scenario.linked}/tool/{scenario.tool}"
    assert [r["new_value"] for r in rows if r["entity_key"] == override and r["field"]] == [True]
    assert {r["portal_id"] for r in rows if r["entity_key"] == override} == {scenario.portal}


def test_changes_filters(scenario_db: tuple[str, Scenario]) -> None:
    db_url, scenario = scenario_db
    everything = _rows(db_url)
    assert {r["account_id"] for r in everything} == {scenario.a, scenario.b}
    by_id = _rows(db_url, "--account", scenario.a.upper())
    assert by_id == _rows(db_url, "-a", "acct-0")
    assert {r["account_id"] for r in by_id} == {scenario.a}
    assert {r["kind"] for r in _rows(db_url, "--kind", "portals", "--kind", "link")} <= {
        "portal",
        "portal_server",
    }
    assert {r["kind"] for r in _rows(db_url, "--kind", "override")} == {"override"}
    synced = _rows(db_url, "--field", "last_synced")
    assert synced
    assert {r["field"] for r in synced} == {"last_synced"}
    with_all = {r["field"] for r in _rows(db_url, "--all-fields")}
    assert {"last_synced", "last_successful_sync"} <= with_all
    scoped = _rows(db_url, "--field", "auth_config_summary")
    assert {r["field"].split(".")[0] for r in scoped} == {"auth_config_summary"}
    assert len(scoped) == 2
    no_desc = {r["field"] for r in _rows(db_url, "--exclude-field", "description")}
    assert "description" not in no_desc
    assert "name" in no_desc
    human = invoke(db_url, "changes", *PERIOD, env={"COLUMNS": "200"}).stdout
    assert "observation" not in human
    assert "last_successful_sync, last_synced hidden" in human
    as_csv = invoke(db_url, "changes", *PERIOD, "--csv", "--kind", "portal_server")
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert table == [] or list(table[0]) == list(PLAN_COLUMNS)


def test_account_names_work_everywhere(scenario_db: tuple[str, Scenario]) -> None:
    db_url, scenario = scenario_db
    status = json.loads(
        invoke(db_url, "status", "--since", "2026-02-01", "-a", "acct-1", "--json").stdout
    )
    assert [r["account_id"] for r in status] == [scenario.b]
    timeline = invoke(db_url, "timeline", "server", scenario.flapping, "-a", "acct-0", "--json")
    assert timeline.exit_code == 0, timeline.output
    shown = invoke(db_url, "show", "portal", scenario.portal, "-a", "acct-0", "--json")
    assert json.loads(shown.stdout)["portal"]["name"] == "Platform (renamed)"
    failures = invoke(db_url, "report", "sync-failures", "--since", "30d", "-a", "acct-1")
    assert failures.exit_code == 0, failures.output
    report = invoke(
        db_url, "report", "sync-failures", "--since", "2026-02-01", "-a", "acct-0", "--json"
    )
    assert json.loads(report.stdout) == []
    failed = invoke(
        db_url, "report", "sync-failures", "--since", "2026-02-01", "-a", "acct-1", "--json"
    )
    assert [r["account_id"] for r in json.loads(failed.stdout)] == [scenario.b]


FILTER_ERRORS: list[tuple[list[str], str]] = [
    (["changes", "--kind", "portalz"], "use one of portal, server, portal_server"),
    (["changes", "--kind", "portal,nope"], "'nope' is not a kind"),
    (["changes", "--account", "nope"], "valid: acct-0 ("),
    (["changes", "--account", "[red]x"], "'[red]x' is not a known account"),
    (["changes", "--field", "colour"], "valid: name, hostname"),
    (["changes", "--kind", "tool", "--exclude-field", "status"], "not a field of tool"),
    (["changes", "--json", "--csv"], "not both"),
    (["changes", "--since", "2026-02-03", "--until", "2026-02-02"], "is not before --until"),
    (["status", "--account", "nope"], "valid: acct-0 ("),
    (["timeline", "server", "x", "--account", "nope"], "valid: acct-0 ("),
    (["show", "portal", "x", "--account", "nope"], "valid: acct-0 ("),
    (["report", "in-error", "--account", "nope"], "valid: acct-0 ("),
    (["report", "in-error", "--server", "x"], "--server does not apply"),
    (["report", "code-mode", "--json", "--csv"], "not both"),
    (["status", "-a", "acct-0", "-a", "acct-1"], "takes one account, not 2"),
    (["changes", "--until", "2026-02-02"], "the default, is not before --until"),
]


@pytest.mark.parametrize(
    ("args", "needle"),
    one_per_family(
        [pytest.param(a, n, id=f"args{i}-{n}") for i, (a, n) in enumerate(FILTER_ERRORS)],
        # a kind, an account, a field, two formats, a period, an option that does not apply
        fast={
            "args0-use one of portal, server, portal_server",
            "args2-valid: acct-0 (",
            "args4-valid: name, hostname",
            "args6-not both",
            "args7-is not before --until",
            "args12---server does not apply",
            "args14-takes one account, not 2",
            "args15-the default, is not before --until",
        },
    ),
)
@pytest.mark.usefixtures("synced_once")
def test_every_filter_error_is_one_line_and_exit_2(
    db_url: str, args: list[str], needle: str
) -> None:
    result = invoke(db_url, *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_sync_takes_account_names_and_refuses_unknown_ones(
    db_url: str, sim: SimulatedCloudflare, api_url: str
) -> None:
    env = named_accounts(sim, api_url)
    assert invoke(db_url, "db", "upgrade", env=env).exit_code == 0
    unknown = invoke(db_url, "sync", "--account", "acct-9", env=env)
    assert unknown.exit_code == 2
    assert "valid: acct-0 (" in unknown.stderr
    assert "acct-1" in unknown.stderr
    named = invoke(db_url, "sync", "--account", "acct-1", "--json", env=env)
    assert named.exit_code == 0, named.output
    assert [r["account_id"] for r in json.loads(named.stdout)] == [sim.account_ids[1]]


def test_every_report_has_its_header_when_empty(db_url: str) -> None:
    reports = [["report", name] for name in REPORTS]
    for args in [*reports, ["changes"], ["status"]]:
        result = invoke(db_url, *args, "--csv")
        assert result.exit_code == 0, (args, result.output)
        header = result.stdout.splitlines()
        assert len(header) == 1, (args, result.stdout)
        columns = header[0].split(",")
        assert len(columns) > 1, (args, columns)
        assert "result" not in columns, (args, columns)
        assert json.loads(invoke(db_url, *args, "--json").stdout) == []
    assert invoke(db_url, "changes", "--csv").stdout.strip().split(",") == list(PLAN_COLUMNS)


@pytest.mark.slow  # two processes; the same output through CliRunner is checked above
@pytest.mark.parallel
def test_a_real_pipe_honours_columns(scenario_db: tuple[str, Scenario], tmp_path: Path) -> None:
    db_url = scenario_db[0]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "COLUMNS"))}
    args = [sys.executable, "-m", "inventory", "--database-url", db_url, *COMMANDS["status"]]
    for columns, snapshot in (("120", "status-120"), (None, "status-80")):
        env = {**base, "INVENTORY_LOG_FORMAT": "json"}
        if columns is not None:
            env["COLUMNS"] = columns
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert normalised(done.stdout) == (SNAPSHOTS / f"{snapshot}.txt").read_text()
