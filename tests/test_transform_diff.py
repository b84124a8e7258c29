"""The pure middle with plain values: no HTTP, no database."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from inventory.sync.coverage import Coverage
from inventory.sync.diff import diff_snapshot
from inventory.sync.transform import transform_account


def server(sid: str, *, tools: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"Server {sid}",
        "hostname": f"https://{sid}.example/mcp",
        "auth_type": "bearer",
        "status": "ready",
        "tools": tools if tools is not None else [{"name": "a"}, {"name": "b", "title": "B"}],
        "prompts": [{"name": "p", "description": "a prompt"}],
        "updated_tools": [{"name": "a", "enabled": False, "alias": "alpha"}],
        **extra,
    }


def portal(pid: str, servers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    embedded = [
        {
            **s,
            "server_id": s["id"],
            "default_disabled": False,
            "on_behalf": True,
            "updated_tools": [{"name": "b", "enabled": True, "portal_alias": "bee"}],
        }
        for s in servers
    ]
    return {
        "id": pid,
        "name": pid.title(),
        "hostname": f"{pid}.example.com",
        "servers": embedded,
        **extra,
    }


def listing() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    servers = [server("s1"), server("s2"), server("s3")]
    return [portal("p1", servers[:2]), portal("p2", servers[1:])], servers


def stored_from(portals: list[dict[str, Any]], servers: list[dict[str, Any]]) -> Any:
    snap = transform_account(portals, servers).snapshot
    return {kind: {key: row.digest for key, row in rows.items()} for kind, rows in snap.items()}


def test_rows_per_kind() -> None:
    portals, servers = listing()
    result = transform_account(portals, servers)
    snap = result.snapshot
    assert set(snap["portal"]) == {("p1",), ("p2",)}
    assert set(snap["server"]) == {("s1",), ("s2",), ("s3",)}
    assert set(snap["portal_server"]) == {("p1", "s1"), ("p1", "s2"), ("p2", "s2"), ("p2", "s3")}
    assert len(snap["tool"]) == 6
    assert ("", "s1", "tool", "a") in snap["override"]
    assert ("p1", "s1", "tool", "b") in snap["override"]
    assert result.rejections == []
    assert "servers" not in snap["portal"][("p1",)].values["raw"]


def test_unchanged_listing_diffs_to_nothing() -> None:
    portals, servers = listing()
    changes = diff_snapshot(
        stored_from(portals, servers), transform_account(portals, servers).snapshot, Coverage()
    )
    assert not changes


@given(st.integers(0, 2**32 - 1))  # a seed: Hypothesis's own Random is slow (test_order_property)
def test_order_never_matters(seed: int) -> None:
    rnd = random.Random(seed)
    portals, servers = listing()
    stored = stored_from(portals, servers)
    shuffled_p, shuffled_s = copy.deepcopy(portals), copy.deepcopy(servers)
    for item in [*shuffled_s, *(s for p in shuffled_p for s in p["servers"])]:
        rnd.shuffle(item["tools"])
    rnd.shuffle(shuffled_p)
    rnd.shuffle(shuffled_s)
    for p in shuffled_p:
        rnd.shuffle(p["servers"])
        p.update(dict(reversed(list(p.items()))))
    assert not diff_snapshot(stored, transform_account(shuffled_p, shuffled_s).snapshot, Coverage())


def test_nameless_and_duplicate_tools_get_stable_keys() -> None:
    tools: list[dict[str, Any]] = [
        {"title": "no name"},
        {"name": "dup", "v": 1},
        {"name": "dup", "v": 2},
        {"name": "same"},
        {"name": "same"},
    ]
    snap = transform_account([], [server("s1", tools=tools)]).snapshot
    keys = sorted(k[1] for k in snap["tool"])
    assert len(keys) == 4  # identical duplicates collapse
    assert "same" in keys
    assert sum(k.startswith("dup~") for k in keys) == 2
    assert sum(k.startswith("~") for k in keys) == 1
    again = transform_account([], [server("s1", tools=list(reversed(tools)))]).snapshot
    assert {k: r.digest for k, r in again["tool"].items()} == {
        k: r.digest for k, r in snap["tool"].items()
    }


def test_rejected_server_protects_it_and_its_children() -> None:
    portals, servers = listing()
    stored = stored_from(portals, servers)
    broken = copy.deepcopy(servers)
    broken[0]["status"] = 42  # not text: an unknown word would be stored
    result = transform_account(portals, broken)
    assert [(r.kind, r.entity_id) for r in result.rejections] == [("server", "s1")]
    assert "status" in result.rejections[0].reason
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    assert not changes.kinds["server"].deletes
    assert not changes.kinds["tool"].deletes


def test_record_without_id_stops_all_deletions_of_its_kind() -> None:
    portals, servers = listing()
    stored = stored_from(portals, servers)
    broken = copy.deepcopy(portals)
    del broken[0]["id"]
    result = transform_account(broken, servers)
    assert result.coverage.portals_complete is False
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    assert not changes.kinds["portal"].deletes
    assert not changes.kinds["portal_server"].deletes


def test_deletions_only_from_complete_listings() -> None:
    portals, servers = listing()
    stored = stored_from(portals, servers)
    result = transform_account(portals[:1], servers[:2], portals_consistent=False)
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    assert not changes.kinds["portal"].deletes
    assert changes.kinds["portal"].kept == 1
    assert changes.kinds["server"].deletes == [("s3",)]


def test_hostile_strings_are_rejected_with_a_reason() -> None:
    nul = server("s1", description="bad\x00byte")
    surrogate = server("s2", tools=[{"name": "t", "description": "lone \ud800 surrogate"}])
    long_name = server("s3", name="x" * 100_000)
    result = transform_account([], [nul, surrogate, long_name])
    reasons = {r.entity_id: r.reason for r in result.rejections}
    assert "NUL" in reasons["s1"]
    assert "surrogate" in reasons["s2"]
    assert "350" in reasons["s3"]
    assert all("\ud800" not in r.raw for r in result.rejections)


def test_server_only_in_a_portal_is_still_recorded() -> None:
    s = server("only-embedded")
    result = transform_account([portal("p1", [s])], [])
    row = result.snapshot["server"][("only-embedded",)]
    assert row.values["source"] == "portal"
    assert ("only-embedded", "a") in result.snapshot["tool"]


def test_unknown_fields_are_kept_and_change_the_hash() -> None:
    portals, servers = listing()
    stored = stored_from(portals, servers)
    drifted = copy.deepcopy(portals)
    drifted[0]["code_mode"] = "enforced"
    drifted[0]["brand_new_field"] = {"x": 1}
    result = transform_account(drifted, servers)
    assert result.snapshot["portal"][("p1",)].values["raw"]["brand_new_field"] == {"x": 1}
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    assert list(changes.kinds["portal"].updates) == [("p1",)]
