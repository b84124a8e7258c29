"""A listing you can trust: never a false deletion, never a lost page (docs/reliability.md).

Against the simulator over real HTTP, on SQLite and PostgreSQL, with and without
``result_info``: each way a listing can miss live entities (a delete on an already-served page,
a delete plus a create that keep ``total_count``, a silent page cap, 400/404 past the last page)
must leave every stored live entity in place, and the next quiet sync must converge, the really
deleted entity included. Deletions are confirmed through the detail routes; servers only portals
show follow the two-sync rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from inventory.db import models
from inventory.service import open_client
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare, serve_in_thread
from inventory.sync import AccountResult, Syncer
from tests.conftest import settings_for
from tests.faultkit import Clock, content_state, fresh_state, run_row

Endpoint = str


def trust_sim(**kwargs: Any) -> SimulatedCloudflare:
    """One account, 5 portals and 5 listed servers: three pages each at page_size=2."""
    shape: dict[str, Any] = {
        "seed": 29,
        "accounts": 1,
        "portals_per_account": 5,
        "servers_per_account": 4,
        "servers_per_portal": 2,
        "tools_per_server": 1,
        "prompts_per_server": 1,
        "unattached_per_account": 1,
    }
    shape.update(kwargs)
    return SimulatedCloudflare(**shape)


@contextmanager
def syncer(engine: Engine, settings: Settings) -> Iterator[Syncer]:
    with open_client(settings) as client:
        yield Syncer(
            engine=engine,
            client=client,
            per_page=settings.page_size,
            max_pages=settings.max_pages,
            confirm_threshold=settings.confirm_threshold,
            clock=Clock(),
        )


def sync_once(s: Syncer, settings: Settings) -> AccountResult:
    (result,) = s.sync_all(settings.accounts, max_concurrency=1)
    return result


def stored_ids(engine: Engine, account_id: str) -> dict[Endpoint, set[str]]:
    portals, servers = models.table_of(models.Portal), models.table_of(models.Server)
    with engine.connect() as conn:
        p = {str(i) for (i,) in conn.execute(select(portals.c.id))}
        s = {str(i) for (i,) in conn.execute(select(servers.c.id))}
    return {"portals": p, "servers": s}


def live_ids(sim: SimulatedCloudflare, account_id: str) -> dict[Endpoint, set[str]]:
    return {"portals": set(sim.portal_ids(account_id)), "servers": set(sim.server_ids(account_id))}


def ids_of(sim: SimulatedCloudflare, account_id: str, endpoint: Endpoint) -> list[str]:
    if endpoint == "portals":
        return sim.portal_ids(account_id)
    return sim.listed_server_ids(account_id)


def delete(sim: SimulatedCloudflare, account_id: str, endpoint: Endpoint, entity_id: str) -> None:
    if endpoint == "portals":
        sim.delete_portal(account_id, entity_id)
    else:
        sim.delete_server(account_id, entity_id)


def detail_requests(sim: SimulatedCloudflare) -> int:
    return sum(1 for r in sim.requests if r.entity_id is not None)


@pytest.fixture
def served() -> Iterator[Callable[[SimulatedCloudflare], str]]:
    stack: list[Any] = []

    def serve(sim: SimulatedCloudflare) -> str:
        cm = serve_in_thread(sim)
        stack.append(cm)
        return cm.__enter__()

    yield serve
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


# --- the matrix: case x endpoint x database x result_info ------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    fault: Callable[[Endpoint], Fault]
    status: Callable[[bool], str]  # the faulted run's status, given result_info
    deletes_first: bool  # the fault itself deletes the first item (else: the last, beforehand)


CASES = [
    # page 2 is read after the first item (on page 1) is deleted: the rest shift left by one
    Case(
        "delete-on-served-page",
        lambda ep: Fault(kind="drift_remove", endpoint=ep, page=2, times=1),  # type: ignore[arg-type]
        lambda _info: "partial",
        deletes_first=True,
    ),
    Case(
        "delete-and-create-keep-total_count",
        lambda ep: Fault(kind="drift_swap", endpoint=ep, page=2, times=1),  # type: ignore[arg-type]
        lambda _info: "partial",
        deletes_first=True,
    ),
    Case(
        "silent-page-cap",
        lambda ep: Fault(kind="page_cap", endpoint=ep, cap=1),  # type: ignore[arg-type]
        lambda _info: "succeeded",
        deletes_first=False,
    ),
    *(
        Case(
            f"{status}-past-the-last-page",
            lambda ep, status=status: Fault(  # type: ignore[misc]
                kind="past_end_error",
                endpoint=ep,
                status=status,
            ),
            lambda _info: "succeeded",
            deletes_first=False,  # 4 left: the last page is full
        )
        for status in (400, 404)
    ),
]


@pytest.mark.parametrize("result_info", [True, False], ids=["result_info", "no-result_info"])
@pytest.mark.parametrize("endpoint", ["portals", "servers"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_listing_that_misses_live_entities_deletes_none_of_them(
    case: Case,
    endpoint: Endpoint,
    result_info: bool,
    served: Callable[[SimulatedCloudflare], str],
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    sqlite_template: Path,
) -> None:
    sim = trust_sim(result_info=result_info)
    api_url = served(sim)
    settings = settings_for(sim, api_url, db_url, cwd=tmp_path, page_size=2)
    (account,) = sim.account_ids
    with syncer(engine, settings) as s:
        assert sync_once(s, settings).status == "succeeded"
        before = stored_ids(engine, account)
        ids = ids_of(sim, account, endpoint)
        deleted = ids[0] if case.deletes_first else ids[-1]
        if not case.deletes_first:
            delete(sim, account, endpoint, deleted)
        sim.faults.add(case.fault(endpoint))
        sim.clear_requests()

        result = sync_once(s, settings)

        assert result.status == case.status(result_info), result
        if result.status == "partial":
            assert "nothing was deleted that this hid" in (result.error or "")
        after, live = stored_ids(engine, account), live_ids(sim, account)
        for kind in ("portals", "servers"):
            missing = (live[kind] & before[kind]) - after[kind]
            assert not missing, f"live {kind} recorded as deleted: {missing}"
        assert deleted not in live[endpoint]
        # at most one probe and one request per stored entity the listing missed
        assert result.confirmations == detail_requests(sim) <= len(before[endpoint]) + 1
        assert run_row(engine, result.run_id)["confirmations"] == result.confirmations
        if result.status == "succeeded":  # confirmed through the detail route: already gone
            assert deleted not in after[endpoint]

        sim.faults.clear()
        assert sync_once(s, settings).status == "succeeded"
    assert deleted not in stored_ids(engine, account)[endpoint]
    assert content_state(engine) == fresh_state(sim, api_url, sqlite_template, tmp_path)
