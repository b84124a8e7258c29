"""``inventory report exposure`` (named in the README) and ``show --csv`` (a clear no)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inventory.reports.named import REPORTS
from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from tests.support.cli import invoke_reports
from tests.support.history import PORTAL, History, build_history

pytestmark = pytest.mark.usefixtures("keep_logging")

README = Path(__file__).parent.parent / "README.md"


def test_the_readme_names_every_report_and_only_those() -> None:
    line = next(x for x in README.read_text().splitlines() if "`inventory report [NAME]" in x)
    named = re.findall(r"`([a-z-]+)`", line.partition("lists them)")[2])
    assert named == list(REPORTS)


def test_report_exposure_now_and_as_of(
    db_url: str, engine: Engine, settings: Settings, sim: SimulatedCloudflare
) -> None:
    history: History = build_history(engine, settings, sim)
    now = invoke_reports(db_url, "report", "exposure", "--json")
    assert now.exit_code == 0, now.output
    rows = json.loads(now.stdout)
    assert rows
    assert {r["account_id"] for r in rows} <= {history.a, history.b, history.c}
    assert set(rows[0]) >= {"portal_id", "server_id", "tool_name", "tool_enabled", "auth_type"}
    then = invoke_reports(db_url, "report", "exposure", "--as-of", "2026-01-02", "--csv")
    assert then.exit_code == 0, then.output
    table = list(csv.DictReader(io.StringIO(then.stdout)))
    assert PORTAL in {r["portal_id"] for r in table}
    text = invoke_reports(db_url, "report", "exposure", "--account", history.a)
    assert text.exit_code == 0
    listed = invoke_reports(db_url, "report")
    assert "exposure" in listed.stdout


def test_show_csv_is_refused_with_the_way_to_flat_rows(db_url: str) -> None:
    result = invoke_reports(db_url, "show", "portal", "p1", "--csv")
    assert result.exit_code == 2
    assert "use --json" in result.stderr
    assert "report inventory --csv" in result.stderr
