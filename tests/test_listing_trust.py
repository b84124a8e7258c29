"""A listing you can trust: never a false deletion, never a lost page (docs/reliability.md).

Against the simulator over real HTTP, on SQLite and PostgreSQL, with and without
``result_info``: each way a listing can miss live entities (a delete on an already-served page,
a delete plus a create that keep ``total_count``, a silent page cap, 400/404 past the last page)
must leave every stored live entity in place, and the next quiet sync must converge, the really
deleted entity included. Deletions are confirmed through the detail routes; servers only portals
show follow the two-sync rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from inventory.daemon.metrics import Metrics
from inventory.db import models
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.faultkit import run_row, small_sim
from tests.support.matrix import grid, one_per_family
from tests.support.trial import OpenTrial

Endpoint = str


def trust_sim(**kwargs: Any) -> SimulatedCloudflare:
    """One account, 5 portals and 5 listed servers: three pages each at page_size=2."""
    shape = {"seed": 29, "accounts": 1, "portals_per_account": 5, "tools_per_server": 1}
    return small_sim(**{**shape, **kwargs})


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


ENDPOINTS = {"portals": "portals", "servers": "servers"}
RESULT_INFO = {"result_info": True, "no-result_info": False}


@pytest.mark.parametrize(
    ("case", "endpoint", "result_info"),
    one_per_family(
        grid({c.id: c for c in CASES}, ENDPOINTS, RESULT_INFO),
        fast={
            "delete-on-served-page-portals-result_info",
            "delete-and-create-keep-total_count-servers-no-result_info",
            "silent-page-cap-servers-result_info",
            "404-past-the-last-page-portals-no-result_info",
        },
    ),
)
def test_a_listing_that_misses_live_entities_deletes_none_of_them(
    case: Case,
    endpoint: Endpoint,
    result_info: bool,
    trial: OpenTrial,
    engine: Engine,
) -> None:
    sim = trust_sim(result_info=result_info)
    (account,) = sim.account_ids
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        before = stored_ids(engine, account)
        ids = ids_of(sim, account, endpoint)
        deleted = ids[0] if case.deletes_first else ids[-1]
        if not case.deletes_first:
            delete(sim, account, endpoint, deleted)
        sim.faults.add(case.fault(endpoint))
        sim.clear_requests()

        result = t.sync_one()

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
        assert t.sync_one().status == "succeeded"
    assert deleted not in stored_ids(engine, account)[endpoint]
    assert t.converged()


# --- the detail routes: what confirms a deletion and what does not ---------------------------

DETAIL_FAULTS: dict[str, dict[str, Any]] = {
    "500-forever": {"kind": "status", "status": 500},
    "html-520-forever": {"kind": "html"},
    "429-forever": {"kind": "status", "status": 429, "retry_after": 1},
    "403": {"kind": "status", "status": 403},
    "400": {"kind": "status", "status": 400},
    "404-another-code": {"kind": "status", "status": 404},
    "404-for-the-account": {"kind": "account_404"},
    "200-success-false": {"kind": "success_false"},
    "200-empty-body": {"kind": "empty_body"},
}


@pytest.mark.parametrize(
    ("fault", "endpoint"),
    one_per_family(
        grid({f: f for f in DETAIL_FAULTS}, ENDPOINTS),
        # the server fails; refuses; answers a 404 that is not the entity's; says nothing
        fast={
            "500-forever-portals",
            "403-servers",
            "404-for-the-account-portals",
            "200-empty-body-servers",
        },
    ),
)
def test_only_a_not_found_envelope_confirms_a_deletion(
    fault: str,
    endpoint: Endpoint,
    trial: OpenTrial,
    engine: Engine,
) -> None:
    sim = trust_sim()
    (account,) = sim.account_ids
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        *_, doubtful, confirmed = ids_of(sim, account, endpoint)
        delete(sim, account, endpoint, doubtful)
        delete(sim, account, endpoint, confirmed)
        sim.faults.add(
            Fault(detail=True, endpoint=endpoint, entity_id=doubtful, **DETAIL_FAULTS[fault])  # type: ignore[arg-type]
        )
        result = t.sync_one()
        assert result.status == "partial", result
        assert f"could not confirm that 1 {endpoint} missing from the listing are gone" in (
            result.error or ""
        )
        assert doubtful in (result.error or "")
        stored = stored_ids(engine, account)[endpoint]
        assert doubtful in stored  # kept: nothing says it is gone
        assert confirmed not in stored  # 404 with 7002: gone, recorded in the same run
        assert result.counts[endpoint[:-1]]["removed"] == 1
        sim.faults.clear()
        assert t.sync_one().status == "succeeded"
    assert doubtful not in stored_ids(engine, account)[endpoint]
    assert t.converged()


@pytest.mark.parametrize("answer", ["404-for-the-account", "403", "404-another-code"])
def test_a_probe_that_fails_keeps_every_candidate(
    answer: str, trial: OpenTrial, engine: Engine
) -> None:
    # Every detail request answers the same error: the route cannot be trusted, so the 404s
    # of the candidates (which would say the same) must not count as "gone".
    sim = trust_sim()
    (account,) = sim.account_ids
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        gone = sim.portal_ids(account)[-1]
        sim.delete_portal(account, gone)
        sim.faults.add(Fault(detail=True, **DETAIL_FAULTS[answer]))
        sim.clear_requests()
        result = t.sync_one()
    assert result.status == "partial"
    assert "deletions not confirmed" in (result.error or "")
    assert "which the listing just returned" in (result.error or "")
    assert gone in stored_ids(engine, account)["portals"]
    assert result.confirmations == detail_requests(sim) == 1  # the probe only


def test_deletions_wait_when_both_listings_are_empty(trial: OpenTrial, engine: Engine) -> None:
    sim = trust_sim(portals_per_account=1, servers_per_account=1, unattached_per_account=0)
    (account,) = sim.account_ids
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        sim.delete_portal(account, sim.portal_ids(account)[0])
        sim.delete_server(account, sim.server_ids(account)[0])
        result = t.sync_one()
    assert result.status == "partial"
    assert "both listings are empty" in (result.error or "")
    assert stored_ids(engine, account) != {"portals": set(), "servers": set()}


@pytest.mark.parametrize("result_info", [True, False], ids=["result_info", "no-result_info"])
def test_an_unchanged_resync_makes_no_confirmation_request(
    result_info: bool, trial: OpenTrial
) -> None:
    sim = trust_sim(result_info=result_info)
    with trial(sim) as t:
        first = t.sync_one()
        sim.clear_requests()
        again = t.sync_one()
    assert (again.status, again.unchanged, again.confirmations) == ("succeeded", True, 0)
    assert detail_requests(sim) == 0
    # Without result_info the listing ends on an empty page, read again and matched by the memo.
    assert again.pages == first.pages == (6 if result_info else 8)


def test_many_candidates_are_read_again_and_intersected_first(
    trial: OpenTrial, engine: Engine
) -> None:
    sim = trust_sim(result_info=False)
    (account,) = sim.account_ids
    with trial(sim, confirm_threshold=1) as t:
        assert t.sync_one().status == "succeeded"
        for portal in sim.portal_ids(account)[-2:]:
            sim.delete_portal(account, portal)
        sim.clear_requests()
        result = t.sync_one()
        assert result.status == "succeeded"
        assert result.confirmations == 3  # the probe and the two candidates
        listing_reads = [r.page for r in sim.requests if r.endpoint == "portals" and r.page]
        assert listing_reads == [1, 2, 3, 1, 2, 3]  # read once more: more candidates than 1
        assert stored_ids(engine, account)["portals"] == set(sim.portal_ids(account))


def test_a_second_reading_shows_what_the_first_one_hid(trial: OpenTrial, engine: Engine) -> None:
    sim = trust_sim(result_info=False)
    (account,) = sim.account_ids
    with trial(sim, confirm_threshold=1) as t:
        assert t.sync_one().status == "succeeded"
        before = stored_ids(engine, account)["portals"]
        # Two candidates: the last portal, really deleted, and the third, hidden by a shift.
        sim.delete_portal(account, sim.portal_ids(account)[-1])
        sim.faults.add(Fault(kind="drift_swap", endpoint="portals", page=2, times=1))
        sim.clear_requests()
        result = t.sync_one()
        assert result.status == "partial"
        assert "1 of the 2 portals missing from the listing" in (result.error or "")
        assert "were in a second reading of it" in (result.error or "")
        assert before & set(sim.portal_ids(account)) <= stored_ids(engine, account)["portals"]
        assert result.counts["portal"]["removed"] == 0
        assert result.confirmations == detail_requests(sim) == 0  # nothing to ask any more
        assert t.sync_one().status == "succeeded"
    assert stored_ids(engine, account)["portals"] == set(sim.portal_ids(account))


# --- servers that exist only inside portals -------------------------------------------------


def absences(engine: Engine) -> set[str]:
    table = models.table_of(models.ServerAbsence)
    with engine.connect() as conn:
        return {str(s) for (s,) in conn.execute(select(table.c.server_id))}


def test_the_simulator_has_servers_only_portals_show() -> None:
    sim = trust_sim(portal_only_per_account=1)
    (account,) = sim.account_ids
    hidden = set(sim.server_ids(account)) - set(sim.listed_server_ids(account))
    assert len(hidden) == 1
    (only,) = hidden
    assert only not in {s["id"] for s in sim.servers(account)}
    assert any(only in sim.portal_server_ids(account, p) for p in sim.portal_ids(account))


def test_a_server_only_portals_show_goes_after_two_complete_syncs_without_it(
    trial: OpenTrial, engine: Engine
) -> None:
    sim = trust_sim(portal_only_per_account=1)
    (account,) = sim.account_ids
    (only,) = set(sim.server_ids(account)) - set(sim.listed_server_ids(account))
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        assert only in stored_ids(engine, account)["servers"]
        for portal in sim.portal_ids(account):
            if only in sim.portal_server_ids(account, portal):
                sim.detach_server(account, portal, only)
        first = t.sync_one()
        assert first.status == "succeeded"
        assert only in stored_ids(engine, account)["servers"]  # absent once: kept
        assert absences(engine) == {only}
        # A portal listing that is not complete breaks the chain of absences.
        sim.faults.add(Fault(kind="drift_insert", endpoint="portals", page=2, times=1))
        assert t.sync_one().status == "partial"
        assert only in stored_ids(engine, account)["servers"]
        assert absences(engine) == set()
        assert t.sync_one().status == "succeeded"
        assert absences(engine) == {only}
        second = t.sync_one()
        assert not second.unchanged  # a pending absence keeps the fast path off
        assert only not in stored_ids(engine, account)["servers"]  # absent twice: gone
        assert absences(engine) == set()
        assert second.counts["server"]["removed"] == 1
    assert t.converged()


@pytest.mark.parametrize("result_info", [True, False], ids=["result_info", "no-result_info"])
def test_a_portal_hidden_by_a_shift_does_not_take_its_portal_only_server(
    result_info: bool, trial: OpenTrial, engine: Engine
) -> None:
    sim = trust_sim(portal_only_per_account=1, result_info=result_info)
    (account,) = sim.account_ids
    (only,) = set(sim.server_ids(account)) - set(sim.listed_server_ids(account))
    portals = sim.portal_ids(account)
    for portal in portals:  # only the third portal holds it: the one a shift at page 2 hides
        if only in sim.portal_server_ids(account, portal):
            sim.detach_server(account, portal, only)
    sim.attach_server(account, portals[2], only)
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        before = stored_ids(engine, account)
        sim.faults.add(Fault(kind="drift_remove", endpoint="portals", page=2, times=1))
        result = t.sync_one()
        assert result.status == "partial"
        after = stored_ids(engine, account)
        assert only in after["servers"]
        assert portals[2] in after["portals"]
        assert before["servers"] <= after["servers"]
        with engine.connect() as conn:
            links = models.table_of(models.PortalServer)
            held = conn.execute(select(links.c.portal_id).where(links.c.server_id == only)).all()
        assert [p for (p,) in held] == [portals[2]]  # the link still points at a stored server
        assert t.sync_one().status == "succeeded"
    assert t.converged()


def test_a_server_that_leaves_the_servers_listing_but_stays_in_a_portal_is_kept(
    trial: OpenTrial, engine: Engine
) -> None:
    sim = trust_sim()
    (account,) = sim.account_ids
    portal = sim.portal_ids(account)[0]
    server = sim.portal_server_ids(account, portal)[0]
    with trial(sim) as t:
        assert t.sync_one().status == "succeeded"
        sim.hide_server(account, server)  # its detail route now answers 404 7002 too
        result = t.sync_one()
    assert result.status == "succeeded"
    assert server in stored_ids(engine, account)["servers"]
    servers = models.table_of(models.Server)
    with engine.connect() as conn:
        source = conn.execute(select(servers.c.source).where(servers.c.id == server)).scalar_one()
    assert source == "portal"


def test_confirmation_requests_are_counted_in_the_metrics(trial: OpenTrial, engine: Engine) -> None:
    sim = trust_sim()
    (account,) = sim.account_ids
    metrics = Metrics()
    with trial(sim) as t:
        t.syncer.on_result = metrics.observe  # as the daemon's syncer reports
        assert t.sync_one().status == "succeeded"
        for portal in sim.portal_ids(account)[-2:]:
            sim.delete_portal(account, portal)
        assert t.sync_one().confirmations == 3
    text = metrics.render().decode()
    assert f'inventory_confirmation_requests_total{{account="{account}"}} 3.0' in text
