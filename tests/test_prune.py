"""Retention: old closed versions and unreferenced old runs go; nothing about the kept period
changes, and current rows and open versions are never touched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from inventory.db.retention import prune_history
from inventory.db.tables import TABLES
from inventory.reports.queries import changes, inventory_as_of, run_sql, show_portal
from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from tests.support.history import GONE_PORTAL, PORTAL, build_history, day


def _rows(engine: Engine, query: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query), params)]


def _open_and_current(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    seen = {}
    for spec in TABLES.values():
        for table, where in ((spec.history.name, "valid_to IS NULL"), (spec.current.name, "1=1")):
            seen[table] = sorted(
                _rows(engine, f"SELECT account_id, content_hash, run_id FROM {table} WHERE {where}")
            )
    return seen


@pytest.mark.slow
@pytest.mark.parallel
def test_prune_removes_only_what_closed_before_the_cutoff(
    engine: Engine, settings: Settings, sim: SimulatedCloudflare
) -> None:
    history = build_history(engine, settings, sim)
    now, older_than = day(10), timedelta(days=7, hours=12)
    cutoff = day(2, hour=12)
    kept_before = _open_and_current(engine)
    with engine.connect() as conn:
        changes_before = changes(conn, since=cutoff, until=day(9))
        as_of_before = inventory_as_of(conn, as_of=day(3, hour=12))

    result = prune_history(engine, older_than=older_than, now=now)

    assert result.cutoff == cutoff
    # cycle 2 closed: the renamed portal's and two servers' first versions, the removed tool;
    # the deleted portal and its attachments were restored on cycle 3, so they stay
    assert {t: n for t, n in result.versions.items() if n} == {
        "portals_history": 1,
        "servers_history": 2,
        "tools_history": 1,
    }
    # cycle 2's run of the third account changed nothing and had a rejected record
    assert (result.runs, result.rejected_records) == (1, 1)
    assert result.total == 6
    assert _rows(engine, "SELECT id FROM sync_runs WHERE id = 6") == []
    assert _rows(engine, "SELECT count(*) FROM rejected_records") == [(0,)]
    assert _open_and_current(engine) == kept_before
    with engine.connect() as conn:
        for spec in TABLES.values():
            older = f"SELECT version_id, ended_by FROM {spec.history.name} WHERE valid_to < :since"
            assert {r["ended_by"] for r in run_sql(conn, older, since=cutoff)} <= {"deleted"}
        assert changes(conn, since=cutoff, until=day(9)) == changes_before
        assert inventory_as_of(conn, as_of=day(3, hour=12)) == as_of_before
        assert show_portal(conn, PORTAL, as_of=day(3), account_id=history.a)
        restored = changes(conn, since=cutoff, until=day(9), account_id=history.b, kind="portal")
    assert [(r["entity_key"], r["change"]) for r in restored] == [(GONE_PORTAL, "restored")]

    again = prune_history(engine, older_than=older_than, now=now)
    assert again.total == 0


def test_prune_refuses_a_non_positive_duration(engine: Engine) -> None:
    with pytest.raises(ValueError, match="positive"):
        prune_history(engine, older_than=timedelta(0), now=day(1))
