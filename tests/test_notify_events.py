"""Events from what a sync committed: the pure derivation, then real syncs on both databases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text

from inventory.daemon.service import open_client
from inventory.db import models
from inventory.notify.events import entity_events, reachable
from inventory.notify.record import Notifier
from inventory.reports.sql import EXPOSURE_AS_OF
from inventory.settings.notify import NotifyTarget
from inventory.simulator import SimulatedCloudflare
from inventory.sync.diff import ChangeSet
from inventory.sync.syncer import Syncer
from inventory.sync.transform import Key, Kind, Row
from tests.support.faultkit import Clock, small_sim
from tests.support.settings import settings_for

AT = datetime(2026, 3, 1, tzinfo=UTC)


def test_reachable_follows_overrides_then_default_disabled() -> None:
    links = [("p1", "s1", False), ("p2", "s1", True), ("p3", "s1", None)]
    items = [("s1", "tool", "a"), ("s1", "tool", "b"), ("s1", "prompt", "c"), ("s2", "tool", "x")]
    overrides = [
        ("p1", "s1", "tool", "a", False),  # the portal's override disables it
        ("p2", "s1", "tool", "b", True),  # enables it despite default_disabled
        ("", "s1", "prompt", "c", False),  # server-wide: off wherever no portal override says
        ("p3", "s1", "prompt", "c", True),  # ... but this portal's does
        ("p1", "s1", "tool", "b", None),  # says nothing about enabled: the default applies
    ]
    assert reachable(links, items, overrides) == {
        ("p1", "s1", "tool", "b"),
        ("p2", "s1", "tool", "b"),
        ("p3", "s1", "tool", "a"),
        ("p3", "s1", "tool", "b"),
        ("p3", "s1", "prompt", "c"),
    }


def test_an_update_carries_old_and_new_and_a_status_change_its_error() -> None:
    changes = ChangeSet.empty()
    new = {"name": "search", "status": "error", "error": "boom", "modified_by": "ann", "raw": {}}
    changes.kinds["server"].updates[("s1",)] = Row(values=new, digest="d2")
    old: dict[Kind, dict[Key, dict[str, Any]]] = {
        "server": {("s1",): {"name": "search", "status": "ready", "error": None, "raw": {}}}
    }
    events = entity_events(changes, old, {}, {}, ("acc", "prod"), run_id=7, at=AT)
    assert [e.type for e in events] == ["server.updated", "server.status_changed"]
    updated, status = (e.payload for e in events)
    assert updated["changes"] == {
        "status": {"old": "ready", "new": "error"},
        "error": {"old": None, "new": "boom"},
    }
    assert status["changes"]["error"] == {"old": None, "new": "boom"}
    assert status["modified_by"] == "ann"
    assert status["account"] == {"id": "acc", "name": "prod"}
    assert status["run_id"] == 7
    assert updated["id"] != status["id"]


def test_a_link_is_named_by_its_portal_and_server() -> None:
    changes = ChangeSet.empty()
    changes.kinds["portal_server"].inserts[("p1", "s1")] = Row(
        values={"default_disabled": False}, digest="d"
    )
    changes.kinds["portal_server"].deletes.append(("p1", "s2"))
    snapshot: Any = {
        "portal": {("p1",): Row(values={"name": "engineering", "modified_by": "ann"}, digest="p")},
        "server": {("s1",): Row(values={"name": "github"}, digest="s")},
    }
    events = entity_events(changes, {}, snapshot, {}, ("acc", "prod"), run_id=7, at=AT)
    created, deleted = (e.payload for e in events)
    assert created["entity"] == {
        "kind": "link",
        "id": "p1/s1",
        "name": "engineering/github",
        "portal_id": "p1",
        "server_id": "s1",
    }
    assert created["carried_by"]["modified_by"] == "ann"
    assert deleted["entity"]["name"] == "engineering/s2"  # the server is gone: its id


# --- real syncs ----------------------------------------------------------------------------------


@pytest.fixture
def one(served: Any) -> tuple[SimulatedCloudflare, str]:
    sim = small_sim(accounts=1, servers_per_portal=2)
    return sim, served(sim)


def _target(**extra: Any) -> NotifyTarget:
    return NotifyTarget.model_validate({"name": "t", "url": "http://127.0.0.1:9/hook", **extra})


@pytest.fixture
def syncer(
    one: tuple[SimulatedCloudflare, str], db_url: str, engine: Engine, tmp_path: Path
) -> Iterator[Syncer]:
    sim, url = one
    settings = settings_for(sim, url, db_url, cwd=tmp_path)
    with open_client(settings) as client:
        yield Syncer(
            engine=engine,
            client=client,
            clock=Clock(),
            notifier=Notifier(lambda: [_target(failed_runs=2)]),
        )


def events(engine: Engine, after: int = 0) -> list[dict[str, Any]]:
    outbox = models.table_of(models.OutboxEvent)
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.payload).where(outbox.c.id > after).order_by(outbox.c.id)
        ).all()
    return [r[0] for r in rows]


def sync(syncer: Syncer, sim: SimulatedCloudflare, engine: Engine) -> list[dict[str, Any]]:
    before = len(events(engine))
    account = settings_account(sim)
    result = syncer.sync_account(account)
    assert result.status in ("succeeded", "failed"), result
    return events(engine)[before:]


def settings_account(sim: SimulatedCloudflare) -> Any:
    return NotifyAccount(sim.account_ids[0], "prod", sim.api_token)


class NotifyAccount:
    def __init__(self, account_id: str, name: str, token: str) -> None:
        self.id, self.name, self._token = account_id, name, token
        self.credential_key = "token:test"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}


def types(found: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["type"] for e in found)


def test_the_first_sync_is_one_summary_then_changes_are_events(
    one: tuple[SimulatedCloudflare, str], syncer: Syncer, engine: Engine
) -> None:
    sim, _ = one
    account = sim.account_ids[0]
    portal = sim.portal_ids(account)[0]
    server = sim.portal_server_ids(account, portal)[0]
    sim.set_default_disabled(account, portal, server, disabled=False)
    first = sync(syncer, sim, engine)
    assert types(first) == {"sync.first": 1}
    assert first[0]["counts"]["portal"] == len(sim.portal_ids(account))
    assert first[0]["reachable"] > 0
    portals_with = [
        p for p in sim.portal_ids(account) if server in sim.portal_server_ids(account, p)
    ]

    tool = sim.add_tool(account, server)
    found = sync(syncer, sim, engine)
    assert types(found)["tool.created"] == 1
    created = next(e for e in found if e["type"] == "tool.created")
    assert created["entity"] == {
        "kind": "tool",
        "id": f"{server}/{tool}",
        "name": tool,
        "server_id": server,
    }
    assert created["carried_by"]["kind"] == "server"
    assert created["carried_by"]["id"] == server
    assert created["carried_by"]["modified_by"]  # whose change: the server's modifier
    added = [e for e in found if e["type"] == "exposure.added"]
    assert {e["entity"]["portal"]["id"] for e in added} >= {portal}
    assert all(e["entity"]["name"] == tool for e in added)
    assert {e["entity"]["portal"]["id"] for e in added} <= set(portals_with)

    sim.toggle_override(account, portal, server, tool)  # disabled in this portal
    found = sync(syncer, sim, engine)
    assert types(found)["override.created"] == 1
    removed = [e for e in found if e["type"] == "exposure.removed"]
    assert [(e["entity"]["portal"]["id"], e["entity"]["name"]) for e in removed] == [(portal, tool)]

    sim.set_default_disabled(account, portal, server, disabled=True)
    found = sync(syncer, sim, engine)
    assert types(found)["link.updated"] == 1
    link = next(e for e in found if e["type"] == "link.updated")
    assert link["changes"]["default_disabled"] == {"old": False, "new": True}
    assert link["carried_by"]["kind"] == "portal"
    gone = {e["entity"]["name"] for e in found if e["type"] == "exposure.removed"}
    items = set(sim.tool_names(account, server)) | set(sim.prompt_names(account, server))
    query = text(
        "SELECT name FROM overrides WHERE server_id = :s AND portal_id IN (:p, '') "
        "AND enabled IS NOT NULL"
    )
    with engine.connect() as conn:
        decided = {name for (name,) in conn.execute(query, {"s": server, "p": portal})}
    assert tool in decided
    # what an override decides does not follow default_disabled
    assert gone == items - decided
    assert not [e for e in found if e["type"] == "exposure.added"]

    sim.set_server_status(account, server, "error", error="upstream refused the token")
    found = sync(syncer, sim, engine)
    status = next(e for e in found if e["type"] == "server.status_changed")
    assert status["changes"]["status"]["new"] == "error"
    assert status["changes"]["error"]["new"] == "upstream refused the token"
    assert status["modified_by"]
    assert status["modified_at"]

    sim.delete_portal(account, portal)
    found = sync(syncer, sim, engine)
    assert types(found)["portal.deleted"] == 1
    sim.restore_portal(account, portal)
    found = sync(syncer, sim, engine)
    assert types(found)["portal.restored"] == 1


def test_events_share_the_transaction_of_the_changes(
    one: tuple[SimulatedCloudflare, str], syncer: Syncer, engine: Engine
) -> None:
    sim, _ = one
    account = sim.account_ids[0]
    sync(syncer, sim, engine)
    server = sim.server_ids(account)[0]
    sim.add_tool(account, server)

    seen = {"outbox": False}

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "notify_outbox" in statement and statement.lstrip().upper().startswith(
            ("INSERT", "COPY")
        ):
            seen["outbox"] = True
        elif seen["outbox"] and statement.lstrip().upper().startswith("UPDATE SYNC_RUNS"):
            seen["outbox"] = False
            raise RuntimeError("the database went away before the commit")

    event.listen(engine, "before_cursor_execute", watch)
    try:
        result = syncer.sync_account(settings_account(sim))
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert result.status == "failed"
    assert [e["type"] for e in events(engine)] == ["sync.first"]  # nothing of the failed apply
    with engine.connect() as conn:
        tools = conn.execute(text("SELECT count(*) FROM tools")).scalar_one()
    assert tools == sum(len(sim.tool_names(account, s)) for s in sim.server_ids(account)) - 1
    found = sync(syncer, sim, engine)  # the next sync writes the change and its events
    assert types(found)["tool.created"] == 1


def test_sync_failed_after_n_failures_in_a_row_then_recovered(
    one: tuple[SimulatedCloudflare, str], syncer: Syncer, engine: Engine
) -> None:
    sim, _ = one
    account = sim.account_ids[0]
    sync(syncer, sim, engine)
    sim.revoke(account)
    assert sync(syncer, sim, engine) == []  # one failure: below failed_runs = 2
    found = sync(syncer, sim, engine)
    assert types(found) == {"sync.failed": 1}
    assert found[0]["failed_runs"] == 2
    assert found[0]["error_class"] == "AuthError"
    assert sync(syncer, sim, engine) == []  # told once per streak
    sim.unrevoke(account)
    found = sync(syncer, sim, engine)
    assert types(found) == {"sync.recovered": 1}
    assert found[0]["failed_runs"] == 3
    assert sync(syncer, sim, engine) == []


def test_the_exposure_view_heeds_default_disabled(
    one: tuple[SimulatedCloudflare, str], syncer: Syncer, engine: Engine
) -> None:
    sim, _ = one
    account = sim.account_ids[0]
    portal = sim.portal_ids(account)[0]
    server = sim.portal_server_ids(account, portal)[0]
    sim.set_default_disabled(account, portal, server, disabled=True)
    sync(syncer, sim, engine)
    query = text(
        "SELECT tool_name, tool_enabled FROM exposure WHERE portal_id = :p AND server_id = :s"
    )
    as_of = text(
        f"WITH exposure AS ({EXPOSURE_AS_OF}) SELECT tool_name, tool_enabled FROM exposure "
        "WHERE portal_id = :p AND server_id = :s"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"p": portal, "s": server}).all()
        then = conn.execute(as_of, {"p": portal, "s": server, "as_of": datetime.now(UTC)}).all()
    assert rows
    assert not any(enabled for _, enabled in rows)
    assert sorted(then) == sorted(rows)  # the AS OF query says the same
