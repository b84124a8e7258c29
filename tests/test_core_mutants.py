"""The pure core's decisions, one by one: the tests `dev.py mutate` found missing.

Each test here kills mutants of the pure core (inventory/sync/diff.py, inventory/sync/transform.py
and the modules it calls) that the broader tests let live (docs/testing.md lists the ones no test
can kill, and why).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from inventory.cloudflare.models import Portal
from inventory.rows import OBSERVED, Row
from inventory.sync.copies import differing, embedded_entries
from inventory.sync.coverage import Coverage
from inventory.sync.diff import ChangeSet, KindChanges, diff_snapshot, portal_only_absences
from inventory.sync.digest import content_hash, make_server_row, server_digest
from inventory.sync.notes import Notes
from inventory.sync.transform import KINDS, Key, Kind, Snapshot, TransformResult, transform_account
from inventory.sync.validation import plainly_storable, storable_problem


def server(sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"Server {sid}",
        "hostname": f"https://{sid}.example/mcp",
        "auth_type": "bearer",
        "status": "ready",
        "tools": [{"name": "a"}],
        "prompts": [{"name": "p"}],
        **extra,
    }


def embedded(s: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**s, "server_id": s["id"], "default_disabled": False, "on_behalf": True, **extra}


def portal(pid: str, servers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": pid.title(), "hostname": f"{pid}.example.com", "servers": servers}


def stored_from(portals: list[dict[str, Any]], servers: list[dict[str, Any]]) -> Any:
    snap = transform_account(portals, servers).snapshot
    return {kind: {key: row.digest for key, row in rows.items()} for kind, rows in snap.items()}


# --- the content hash ------------------------------------------------------------------------


def test_the_content_hash_ignores_key_order_at_every_level() -> None:
    one = {"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": None}, "c": "z"}
    other = {"c": "z", "b": {"y": None, "x": [1, {"q": 2, "p": 1}]}, "a": 1}
    assert list(one) != list(other)
    assert content_hash(one) == content_hash(other)
    assert content_hash(one) != content_hash({**one, "c": "y"})
    assert len(content_hash(one)) == 32  # 16 bytes, hex


def test_a_record_with_reordered_keys_is_not_a_change() -> None:
    s1 = server("s1", updated_tools=[{"name": "a", "enabled": False, "alias": "x"}])
    portals = [portal("p1", [embedded(s1)])]
    stored = stored_from(portals, [s1])
    backwards = [dict(reversed(list(copy.deepcopy(r).items()))) for r in (s1,)]
    backwards_p = [dict(reversed(list(copy.deepcopy(p).items()))) for p in portals]
    backwards_p[0]["servers"] = [dict(reversed(list(e.items()))) for e in backwards_p[0]["servers"]]
    assert list(backwards[0]) != list(s1)
    result = transform_account(backwards_p, backwards)
    assert not diff_snapshot(stored, result.snapshot, result.coverage)


# --- Coverage.may_delete, kind by kind -------------------------------------------------------


def keys_for(kind: Kind) -> Key:
    return {
        "portal": ("p1",),
        "portal_server": ("p1", "s1"),
        "server": ("s1",),
        "tool": ("s1", "a"),
        "prompt": ("s1", "p"),
    }[kind]


@pytest.mark.parametrize("kind", ["portal", "portal_server"])
def test_portal_rows_follow_the_portal_listing(kind: Kind) -> None:
    key = keys_for(kind)
    assert Coverage().may_delete(kind, key)
    assert Coverage(servers_complete=False, protected_servers={"s1"}).may_delete(kind, key)
    assert not Coverage(portals_complete=False).may_delete(kind, key)
    assert not Coverage(protected_portals={"p1"}).may_delete(kind, key)
    assert Coverage(protected_portals={"p2"}).may_delete(kind, key)


@pytest.mark.parametrize("kind", ["server", "tool", "prompt"])
def test_server_rows_follow_the_server_listing(kind: Kind) -> None:
    key = keys_for(kind)
    assert Coverage().may_delete(kind, key)
    assert Coverage(portals_complete=False, protected_portals={"s1"}).may_delete(kind, key)
    assert not Coverage(servers_complete=False).may_delete(kind, key)
    assert not Coverage(protected_servers={"s1"}).may_delete(kind, key)
    assert Coverage(protected_servers={"s2"}).may_delete(kind, key)


def test_a_portal_override_follows_its_portal() -> None:
    key = ("p1", "s1", "tool", "a")
    assert Coverage().may_delete("override", key)
    assert Coverage(servers_complete=False, protected_servers={"s1"}).may_delete("override", key)
    assert not Coverage(portals_complete=False).may_delete("override", key)
    assert not Coverage(protected_portals={"p1"}).may_delete("override", key)
    assert Coverage(protected_portals={"s1", "p2"}).may_delete("override", key)


def test_a_server_override_follows_its_server() -> None:
    key = ("", "s1", "prompt", "p")
    assert Coverage().may_delete("override", key)
    assert Coverage(portals_complete=False, protected_portals={""}).may_delete("override", key)
    assert not Coverage(servers_complete=False).may_delete("override", key)
    assert not Coverage(protected_servers={"s1"}).may_delete("override", key)
    assert Coverage(protected_servers={"", "s2"}).may_delete("override", key)


# --- the diff ----------------------------------------------------------------------------------


def test_the_diff_inserts_updates_deletes_and_keeps() -> None:
    s1, s2, s3 = server("s1"), server("s2"), server("s3")
    stored = stored_from([], [s1, s2, s3])
    seen = transform_account([], [server("s1", description="new"), s2, server("s4")])
    coverage = Coverage(protected_servers={"s3"})
    changes = diff_snapshot(stored, seen.snapshot, coverage)
    servers = changes.kinds["server"]
    assert list(servers.inserts) == [("s4",)]
    assert list(servers.updates) == [("s1",)]
    assert servers.deletes == []
    assert servers.kept == 1
    assert changes.counts()["server"] == {"added": 1, "changed": 1, "removed": 0}
    assert changes.totals() == (3, 1, 0)  # s4 with its tool and its prompt
    changes = diff_snapshot(stored, seen.snapshot, Coverage())
    assert changes.kinds["server"].deletes == [("s3",)]
    assert changes.kinds["tool"].deletes == [("s3", "a")]
    assert changes.kinds["server"].kept == 0
    assert changes.totals() == (3, 1, 3)


def test_deletes_come_sorted() -> None:
    servers = [server(f"s{i}") for i in (3, 1, 2, 0)]
    changes = diff_snapshot(
        stored_from([], servers), transform_account([], []).snapshot, Coverage()
    )
    assert changes.kinds["server"].deletes == [("s0",), ("s1",), ("s2",), ("s3",)]


def test_a_changeset_is_true_only_with_a_change() -> None:
    assert not KindChanges()
    assert not KindChanges(kept=3)
    assert KindChanges(deletes=[("x",)])
    empty = diff_snapshot({}, transform_account([], []).snapshot, Coverage())
    assert not empty
    assert set(empty.kinds) == set(KINDS)
    assert diff_snapshot({}, transform_account([], [server("s1")]).snapshot, Coverage())


# --- what transform vouches for ----------------------------------------------------------------


def test_a_server_record_without_an_id_stops_server_deletions() -> None:
    s1, s2 = server("s1"), server("s2")
    stored = stored_from([], [s1, s2])
    nameless = copy.deepcopy(s2)
    del nameless["id"]
    result = transform_account([], [s1, nameless])
    assert result.coverage.servers_complete is False
    assert result.coverage.portals_complete is True
    assert [(r.kind, r.entity_id) for r in result.rejections] == [("server", None)]
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    for kind in ("server", "tool", "prompt"):
        assert changes.kinds[kind].deletes == [], kind
    assert changes.kinds["server"].kept == 1


def test_a_rejected_server_with_an_id_protects_only_itself() -> None:
    bad = server("s2", status=42)
    result = transform_account([], [server("s1"), bad])
    assert result.coverage.servers_complete is True
    assert result.coverage.protected_servers == {"s2"}


def test_a_rejected_portal_protects_itself_and_servers_only_it_showed() -> None:
    listed, hidden = server("s1"), server("s9")
    bad = portal("p2", [embedded(listed), embedded(hidden)])
    bad["name"] = 12345  # the wrong type: rejected
    good = portal("p1", [embedded(listed)])
    stored = stored_from([good, portal("p2", [embedded(listed), embedded(hidden)])], [listed])
    assert ("s9",) in stored["server"]
    result = transform_account([good, bad], [listed])
    assert [(r.kind, r.entity_id) for r in result.rejections] == [("portal", "p2")]
    assert result.coverage.protected_portals == {"p2"}
    assert result.coverage.protected_servers == {"s9"}  # s1 was listed: it needs no protection
    assert result.coverage.portals_complete is True
    changes = diff_snapshot(stored, result.snapshot, result.coverage)
    for kind in KINDS:
        assert changes.kinds[kind].deletes == [], kind


def test_a_rejected_portal_without_an_id_stops_portal_deletions() -> None:
    bad = portal("p2", [])
    del bad["id"]
    result = transform_account([portal("p1", []), bad], [])
    assert result.coverage.portals_complete is False
    assert result.coverage.servers_complete is True
    assert result.coverage.protected_portals == set()


def test_embedded_server_ids_come_from_server_id_or_id_and_only_strings() -> None:
    bad: dict[str, Any] = portal("p2", [])
    bad["name"] = 12345  # the wrong type: rejected
    bad["servers"] = [{"server_id": "a"}, {"id": "b"}, {"id": 7}, {"server_id": ""}, "c", None]
    result = transform_account([bad], [])
    assert result.coverage.protected_servers == {"a", "b"}
    bad["servers"] = "not a list"
    assert transform_account([bad], []).coverage.protected_servers == set()


def test_a_server_listed_twice_by_one_portal_is_linked_once_and_the_rest_still_are() -> None:
    s1, s2, s3 = server("s1"), server("s2"), server("s3")
    twice = portal("p1", [embedded(s1), embedded(s1, default_disabled=True), embedded(s2)])
    result = transform_account([twice, portal("p2", [embedded(s3)])], [s1, s2, s3])
    links = result.snapshot["portal_server"]
    assert set(links) == {("p1", "s1"), ("p1", "s2"), ("p2", "s3")}
    assert links[("p1", "s1")].values["default_disabled"] is False  # the first one counts


def test_a_server_only_a_portal_shows_is_kept_not_guessed_when_servers_are_incomplete() -> None:
    s9 = server("s9")
    result = transform_account([portal("p1", [embedded(s9)])], [], servers_consistent=False)
    assert ("s9",) not in result.snapshot["server"]
    assert result.coverage.protected_servers == {"s9"}
    assert ("p1", "s9") in result.snapshot["portal_server"]
    complete = transform_account([portal("p1", [embedded(s9)])], [])
    assert complete.snapshot["server"][("s9",)].values["source"] == "portal"
    assert complete.coverage.protected_servers == set()


def test_a_server_in_both_listings_is_the_servers_version() -> None:
    listed = server("s1", description="from /servers")
    shown = embedded(server("s1", description="from the portal"))
    result = transform_account([portal("p1", [shown])], [listed])
    row = result.snapshot["server"][("s1",)]
    assert (row.values["source"], row.values["description"]) == ("servers", "from /servers")


def test_a_protected_server_a_portal_shows_is_not_taken_from_the_portal() -> None:
    bad = server("s1", status=42)
    result = transform_account([portal("p1", [embedded(server("s1"))])], [bad])
    assert ("s1",) not in result.snapshot["server"]
    assert result.coverage.protected_servers == {"s1"}


# --- keys, flags and overrides -------------------------------------------------------------------


def test_derived_key_says_whether_the_key_is_the_name() -> None:
    tools: list[dict[str, Any]] = [
        {"name": "plain"},
        {"name": "dup", "description": "one"},
        {"name": "dup", "description": "two"},
        {"title": "nameless"},
        {"name": "x" * 201},
        {"name": "y" * 200},
    ]
    rows = transform_account([], [server("s1", tools=tools)]).snapshot["tool"]
    flags = {key[1]: row.values["derived_key"] for key, row in rows.items()}
    assert flags["plain"] is False
    assert flags["y" * 200] is False
    dup = [k for k in flags if k.startswith("dup~")]
    assert len(dup) == 2
    assert all(flags[k] is True for k in dup)
    assert all(len(k) == len("dup~") + 12 for k in dup)
    nameless = [k for k in flags if k.startswith("~")]
    assert len(nameless) == 2  # the nameless one and the over-long name
    assert all(flags[k] is True and len(k) == 17 for k in nameless)
    assert rows[("s1", "plain")].values["title"] is None
    assert rows[("s1", "dup~" + dup[0][4:])].values["definition"]["name"] == "dup"


def test_tool_rows_keep_title_description_and_definition() -> None:
    tool = {"name": "t", "title": "T", "description": "does t", "inputSchema": {"type": "object"}}
    odd = {"name": "u", "title": 5, "description": ["no"]}
    rows = transform_account([], [server("s1", tools=[tool, odd])]).snapshot["tool"]
    assert rows[("s1", "t")].values == {
        "title": "T",
        "description": "does t",
        "definition": tool,
        "derived_key": False,
    }
    assert (rows[("s1", "u")].values["title"], rows[("s1", "u")].values["description"]) == (
        None,
        None,
    )


def test_prompt_and_tool_overrides_on_servers_and_in_portals() -> None:
    s1 = server(
        "s1",
        updated_tools=[{"name": "a", "enabled": False, "alias": "alpha"}],
        updated_prompts=[{"name": "p", "enabled": True, "description": "a prompt, renamed"}],
    )
    in_portal = embedded(
        s1,
        updated_tools=[],
        updated_prompts=[{"name": "p", "enabled": False, "portal_alias": "pee"}],
    )
    result = transform_account([portal("p1", [in_portal])], [s1])
    overrides = result.snapshot["override"]
    assert set(overrides) == {
        ("", "s1", "tool", "a"),
        ("", "s1", "prompt", "p"),
        ("p1", "s1", "prompt", "p"),
    }
    server_prompt = overrides[("", "s1", "prompt", "p")].values
    assert server_prompt["enabled"] is True
    assert server_prompt["description"] == "a prompt, renamed"
    assert server_prompt["alias"] is None
    assert server_prompt["raw"] == {
        "name": "p",
        "enabled": True,
        "description": "a prompt, renamed",
    }
    assert server_prompt["derived_key"] is False
    portal_prompt = overrides[("p1", "s1", "prompt", "p")].values
    assert (portal_prompt["enabled"], portal_prompt["portal_alias"]) == (False, "pee")
    tool = overrides[("", "s1", "tool", "a")].values
    assert (tool["enabled"], tool["alias"]) == (False, "alpha")
    stored = stored_from([portal("p1", [in_portal])], [s1])
    renamed = copy.deepcopy(in_portal)
    renamed["updated_prompts"][0]["portal_alias"] = "pea"
    changes = diff_snapshot(
        stored, transform_account([portal("p1", [renamed])], [s1]).snapshot, Coverage()
    )
    assert list(changes.kinds["override"].updates) == [("p1", "s1", "prompt", "p")]
    gone = copy.deepcopy(in_portal)
    gone["updated_prompts"] = []
    changes = diff_snapshot(
        stored, transform_account([portal("p1", [gone])], [s1]).snapshot, Coverage()
    )
    assert changes.kinds["override"].deletes == [("p1", "s1", "prompt", "p")]


def test_link_rows_hold_the_attachment_and_only_unknown_extras() -> None:
    s1 = server("s1")
    link = embedded(s1, default_disabled=True, on_behalf=False, brand_new={"x": 1})
    row = transform_account([portal("p1", [link])], [s1]).snapshot["portal_server"][("p1", "s1")]
    assert row.values == {
        "default_disabled": True,
        "on_behalf": False,
        "extra": {"brand_new": {"x": 1}},
    }
    plain = transform_account([portal("p1", [embedded(s1)])], [s1]).snapshot["portal_server"]
    assert plain[("p1", "s1")].values["extra"] is None


# --- the columns of a row ------------------------------------------------------------------------

WHEN = "2026-03-01T10:00:00+02:00"
WHEN_UTC = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def full_server(sid: str = "s1") -> dict[str, Any]:
    return {
        "id": sid,
        "name": "Server one",
        "hostname": "https://one.example/mcp",
        "auth_type": "oauth",
        "description": "the first",
        "status": "error",
        "error": "upstream returned 502",
        "error_details": {"cause": "bad gateway", "retryable": True},
        "authentication_status": "authenticated",
        "last_synced": WHEN,
        "last_successful_sync": "2026-03-01T07:00:00Z",
        "secure_web_gateway": True,
        "is_shared_oauth_callback_enabled": False,
        "auth_config_summary": {"scopes": ["read"]},
        "created_at": WHEN,
        "created_by": "alice@example.com",
        "modified_at": "2026-03-02T00:00:00Z",
        "modified_by": "bob@example.com",
        "tools": [{"name": "t"}],
        "prompts": [{"name": "p"}],
        "updated_tools": [{"name": "t", "enabled": False}],
        "updated_prompts": [],
        "brand_new": 1,
    }


SERVER_COLUMNS = {
    "name": "Server one",
    "hostname": "https://one.example/mcp",
    "auth_type": "oauth",
    "description": "the first",
    "status": "error",
    "error": "upstream returned 502",
    "error_details": {"cause": "bad gateway", "retryable": True},
    "authentication_status": "authenticated",
    "last_synced": WHEN_UTC,
    "last_successful_sync": datetime(2026, 3, 1, 7, 0, tzinfo=UTC),
    "secure_web_gateway": True,
    "is_shared_oauth_callback_enabled": False,
    "auth_config_summary": {"scopes": ["read"]},
    "created_at": WHEN_UTC,
    "created_by": "alice@example.com",
    "modified_at": datetime(2026, 3, 2, tzinfo=UTC),
    "modified_by": "bob@example.com",
}


def test_a_servers_row_has_every_column_and_raw_without_its_children() -> None:
    raw = full_server()
    row = transform_account([], [raw]).snapshot["server"][("s1",)]
    unrelated = {"tools", "prompts", "updated_tools", "updated_prompts"}
    assert row.values == {
        **SERVER_COLUMNS,
        "source": "servers",
        "raw": {k: v for k, v in raw.items() if k not in unrelated},
    }
    assert row.digest == server_digest(row.values)  # observations left out


def test_a_server_only_a_portal_shows_drops_the_attachment_fields_from_raw() -> None:
    raw = {**full_server("s9"), "server_id": "s9", "default_disabled": True, "on_behalf": False}
    result = transform_account([portal("p1", [raw])], [])
    row = result.snapshot["server"][("s9",)]
    dropped = {"tools", "prompts", "updated_tools", "updated_prompts", "server_id"}
    dropped |= {"default_disabled", "on_behalf"}
    assert row.values == {
        **SERVER_COLUMNS,
        "source": "portal",
        "raw": {k: v for k, v in raw.items() if k not in dropped},
    }
    assert set(result.snapshot["tool"]) == {("s9", "t")}
    assert set(result.snapshot["prompt"]) == {("s9", "p")}


def test_error_details_keep_only_what_was_sent() -> None:
    sent = {**full_server(), "error_details": {"cause": "x"}}
    row = transform_account([], [sent]).snapshot["server"][("s1",)]
    assert row.values["error_details"] == {"cause": "x"}
    none = {**full_server(), "error_details": None}
    assert transform_account([], [none]).snapshot["server"][("s1",)].values["error_details"] is None


def test_a_portals_row_has_every_column_and_raw_without_its_servers() -> None:
    raw = {
        "id": "p1",
        "name": "Portal one",
        "hostname": "p1.example.com",
        "description": "the portal",
        "secure_web_gateway": False,
        "code_mode": "enforced",
        "allow_code_mode": True,
        "created_at": WHEN,
        "created_by": "carol@example.com",
        "modified_at": WHEN,
        "modified_by": "dave@example.com",
        "servers": [embedded(server("s1"))],
        "brand_new": [1],
    }
    row = transform_account([raw], [server("s1")]).snapshot["portal"][("p1",)]
    assert row.values == {
        "name": "Portal one",
        "hostname": "p1.example.com",
        "description": "the portal",
        "secure_web_gateway": False,
        "code_mode": "enforced",
        "allow_code_mode": True,
        "created_at": WHEN_UTC,
        "created_by": "carol@example.com",
        "modified_at": WHEN_UTC,
        "modified_by": "dave@example.com",
        "raw": {k: v for k, v in raw.items() if k != "servers"},
    }


def test_the_content_hash_takes_datetimes_and_refuses_other_objects() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert content_hash({"t": at}) == content_hash({"t": at.isoformat()})
    assert content_hash({"t": at}) != content_hash({"t": str(at)})
    with pytest.raises(TypeError, match="not JSON-serialisable: set"):
        content_hash({"s": {1}})


def test_the_content_hash_keeps_non_ascii_and_lone_surrogates_apart() -> None:
    assert content_hash({"a": "é"}) != content_hash({"a": "e"})
    assert content_hash({"a": "\ud800"}) != content_hash({"a": "\ud801"})


# --- rejections and their reasons ----------------------------------------------------------------


def test_what_the_database_can_hold_is_kept_as_sent() -> None:
    record = {"a": "é", "n": None}
    assert storable_problem(record) == (None, '{"a": "é", "n": null}')
    assert storable_problem({"t": datetime(2026, 1, 1, tzinfo=UTC)})[0] is None
    assert storable_problem({"d": "a\\u0000b"})[0] is None  # an escaped backslash, not a NUL


def test_a_record_over_the_size_limit_keeps_an_excerpt() -> None:
    limit = 2_000_000
    at_limit = {"n": "x" * (limit - len('{"n": ""}'))}
    assert storable_problem(at_limit)[0] is None
    over = {"n": "é" * (limit - len('{"n": ""}') + 1)}
    text = json.dumps(over, ensure_ascii=False)
    reason, raw = storable_problem(over)
    assert reason == f"record is {len(text):,} characters, over the 2,000,000 limit"
    assert raw == json.dumps(
        {"truncated": True, "characters": len(text), "start": text[:10_000]}, ensure_ascii=True
    )


def test_a_nul_or_a_lone_surrogate_is_refused_and_kept_as_ascii_json() -> None:
    nul = {"d": "a\x00b", "e": "é"}
    assert storable_problem(nul) == (
        "contains a NUL character, which PostgreSQL cannot store",
        json.dumps(nul, ensure_ascii=True),
    )
    lone = {"d": "a\ud800b", "e": "é"}
    assert storable_problem(lone) == (
        "contains a lone surrogate, which is not valid Unicode",
        json.dumps(lone, ensure_ascii=True),
    )
    both = {"d": "a\x00\ud800"}
    assert storable_problem(both)[0] == "contains a NUL character, which PostgreSQL cannot store"


def test_a_record_nested_too_deeply_is_refused_without_its_text() -> None:
    deep: Any = "bottom"
    for _ in range(5_000):
        deep = [deep]
    assert storable_problem({"d": deep}) == (
        "nested too deeply to store (about 1,000 levels or more)",
        '"(not kept)"',
    )


def test_the_fast_check_passes_plain_records_and_defers_the_rest() -> None:
    assert plainly_storable({"a": "é", "b": [1, 2.5, None, True]})
    assert not plainly_storable({"d": "a\x00b"})
    assert not plainly_storable({"d": "a\ud800b"})
    assert not plainly_storable({"n": 2**70})
    half = 1_000_000 - len('{"n":""}')
    assert plainly_storable({"n": "x" * half})
    assert not plainly_storable({"n": "x" * (half + 1)})


def test_a_rejection_names_each_problem_by_its_place() -> None:
    bad = {**server("s1"), "name": 5, "status": 42, "tools": [{"name": "t"}, 7]}
    (rejection,) = transform_account([], [bad]).rejections
    assert (rejection.kind, rejection.entity_id) == ("server", "s1")
    parts = rejection.reason.split("; ")
    assert [p.split(": ")[0] for p in parts] == ["name", "status", "tools.1"]
    assert parts[0] == "name: Input should be a valid string"
    assert json.loads(rejection.raw) == bad


def test_past_five_problems_the_rest_are_counted() -> None:
    fields = ("name", "hostname", "auth_type", "status", "description", "error", "created_by")
    bad = {**server("s1"), **dict.fromkeys(fields, 5)}
    (rejection,) = transform_account([], [bad]).rejections
    assert rejection.reason.count("; ") == 4
    assert rejection.reason.endswith(" (and 2 more)")
    exactly_five = {**server("s1"), **dict.fromkeys(fields[:5], 5)}
    (rejection,) = transform_account([], [exactly_five]).rejections
    assert rejection.reason.count("; ") == 4
    assert "more)" not in rejection.reason


def test_a_record_that_is_not_an_object_is_rejected_as_a_record() -> None:
    (rejection,) = transform_account([], [5]).rejections  # type: ignore[list-item]
    assert rejection.entity_id is None
    assert rejection.reason.startswith("record: ")
    assert rejection.raw == "5"


@pytest.mark.parametrize(
    ("value", "entity_id"), [("s-1", "s-1"), ("", None), (5, None), (None, None)]
)
def test_a_rejection_names_the_record_only_by_a_string_id(value: Any, entity_id: Any) -> None:
    bad = {**server("x"), "id": value, "status": 42}
    (rejection,) = transform_account([], [bad]).rejections
    assert rejection.entity_id == entity_id


def test_a_record_too_big_to_store_is_rejected_with_its_excerpt() -> None:
    big = {**server("s1"), "description": "x" * 2_000_001}
    result = transform_account([], [big])
    (rejection,) = result.rejections
    assert rejection.reason.startswith("record is ")
    assert json.loads(rejection.raw)["truncated"] is True
    assert result.coverage.protected_servers == {"s1"}
    fine = transform_account([], [server("s1")])
    assert fine.rejections == []


# --- found by the second mutation run ------------------------------------------------------------


def test_the_content_hash_is_stable_across_releases() -> None:
    # Stored rows carry this digest: a new encoding would make every row of every mirror look
    # changed after an upgrade (one spurious version each): change it only with a migration that
    # rehashes the stored rows.
    assert content_hash({"b": [1, "é"], "a": {"y": None, "x": True}}) == (
        "ebcc02158ecb7099847c186408a30fca"
    )


def test_an_empty_changeset_has_every_kind_and_no_change() -> None:
    empty = ChangeSet.empty()
    assert set(empty.kinds) == set(KINDS)
    assert not empty
    assert empty.totals() == (0, 0, 0)
    assert empty.counts()["tool"] == {"added": 0, "changed": 0, "removed": 0}


def test_a_kind_missing_from_what_was_seen_is_all_deleted() -> None:
    stored = stored_from([], [server("s1")])
    changes = diff_snapshot(stored, {}, Coverage())
    assert changes.kinds["server"].deletes == [("s1",)]
    assert changes.kinds["tool"].deletes == [("s1", "a")]


def test_inserts_and_updates_carry_the_rows_seen() -> None:
    stored = stored_from([], [server("s1")])
    seen = transform_account([], [server("s1", description="new"), server("s2")]).snapshot
    changes = diff_snapshot(stored, seen, Coverage())
    assert changes.kinds["server"].inserts == {("s2",): seen["server"][("s2",)]}
    assert changes.kinds["server"].updates == {("s1",): seen["server"][("s1",)]}


def test_every_row_kept_is_counted() -> None:
    stored = stored_from([], [server("s1"), server("s2"), server("s3")])
    coverage = Coverage(protected_servers={"s1", "s2"})
    changes = diff_snapshot(stored, transform_account([], []).snapshot, coverage)
    assert (changes.kinds["server"].kept, changes.kinds["server"].deletes) == (2, [("s3",)])
    assert changes.kinds["tool"].kept == 2


def test_a_reason_past_five_problems_counts_even_one_more() -> None:
    fields = ("name", "hostname", "auth_type", "status", "description", "error")
    (rejection,) = transform_account([], [{**server("s1"), **dict.fromkeys(fields, 5)}]).rejections
    assert rejection.reason.endswith(" (and 1 more)")
    (rejection,) = transform_account([], [{**server("s1"), "name": 5}]).rejections
    assert rejection.reason == "name: Input should be a valid string"


def test_refused_records_holding_non_json_values_are_still_written_out() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ("a\x00b", "a\ud800b"):
        reason, raw = storable_problem({"d": bad, "t": when})
        assert reason is not None
        assert json.loads(raw)["t"] == str(when)


def test_a_servers_key_is_its_server_id_where_the_api_sends_one() -> None:
    shown = {
        **server("alias-id"),
        "server_id": "s9",
        "updated_tools": [{"name": "a", "enabled": False}],
    }
    result = transform_account([portal("p1", [shown])], [])
    assert set(result.snapshot["server"]) == {("s9",)}
    assert set(result.snapshot["tool"]) == {("s9", "a")}
    assert set(result.snapshot["portal_server"]) == {("p1", "s9")}
    assert set(result.snapshot["override"]) == {("p1", "s9", "tool", "a")}


def test_a_rejected_portal_of_any_shape_adds_to_the_protection_and_the_rest_go_on() -> None:
    bad_server = server("s2", status=42)
    bad_portal: dict[str, Any] = {**portal("p1", []), "name": 5, "servers": 5}
    hiding = {**portal("p2", []), "name": 5, "servers": [{"server_id": "s9"}]}
    good = portal("p3", [embedded(server("s1"))])
    result = transform_account([5, bad_portal, hiding, good], [server("s1"), bad_server])  # type: ignore[list-item]
    assert [(r.kind, r.entity_id) for r in result.rejections] == [
        ("server", "s2"),
        ("portal", None),
        ("portal", "p1"),
        ("portal", "p2"),
    ]
    assert result.coverage.protected_servers == {"s2", "s9"}
    assert result.coverage.protected_portals == {"p1", "p2"}
    assert set(result.snapshot["portal"]) == {("p3",)}
    assert set(result.snapshot["portal_server"]) == {("p3", "s1")}


# --- deletion confirmation (Coverage.gone_*, listed_*) ----------------------------------------


def test_with_confirmation_only_confirmed_portals_and_servers_go() -> None:
    c = Coverage(gone_portals={"p1"}, gone_servers={"s1"})
    assert c.may_delete("portal", ("p1",))
    assert not c.may_delete("portal", ("p2",))
    assert c.may_delete("server", ("s1",))
    assert not c.may_delete("server", ("s2",))
    assert not Coverage(portals_complete=False, gone_servers={"s1"}).may_delete("server", ("s1",))


def test_children_go_with_a_listed_or_confirmed_parent_only() -> None:
    c = Coverage(
        gone_portals=set(), gone_servers=set(), listed_portals={"p1"}, listed_servers={"s1"}
    )
    assert c.may_delete("portal_server", ("p1", "s9"))
    assert c.may_delete("override", ("p1", "s9", "tool", "a"))
    assert not c.may_delete("portal_server", ("p2", "s9"))
    assert not c.may_delete("portal", ("p1",))  # listed, not confirmed gone: the row is not
    assert c.may_delete("tool", ("s1", "a"))
    assert c.may_delete("override", ("", "s1", "prompt", "p"))
    assert not c.may_delete("tool", ("s2", "a"))
    assert not c.may_delete("server", ("s1",))


def test_transform_passes_confirmation_and_what_it_listed_to_coverage() -> None:
    result = transform_account(
        [portal("p1", [embedded(server("s9"))])],
        [server("s1")],
        gone_portals=["p2"],
        gone_servers=("s2",),
    )
    assert (result.coverage.gone_portals, result.coverage.gone_servers) == ({"p2"}, {"s2"})
    assert result.coverage.listed_portals == {"p1"}
    assert result.coverage.listed_servers == {"s1", "s9"}
    plain = transform_account([], []).coverage
    assert (plain.gone_portals, plain.gone_servers) == (None, None)


def test_portal_only_servers_go_after_two_absences_in_complete_listings() -> None:
    c = Coverage(listed_servers={"s1"}, protected_servers={"s2"})
    assert portal_only_absences({"s1", "s2", "s3", "s4"}, {"s3", "s1"}, c) == (
        {"s3"},
        {"s3", "s4"},
    )
    incomplete = Coverage(portals_complete=False)
    assert portal_only_absences({"s3"}, {"s3"}, incomplete) == (set(), set())


T1 = "2026-03-01T10:00:00Z"
T2 = "2026-03-01T11:00:00Z"


# --- warnings: enum values the schema does not list ----------------------------------------------


def test_an_unknown_status_or_auth_type_is_a_warning_naming_field_value_and_server() -> None:
    result = transform_account(
        [], [server("s1", status="exploded"), server("s2", auth_type="mtls"), server("s3")]
    )
    assert result.warnings == [
        "auth_type 'mtls' is not in the published schema; stored as text for 1 server (s2)",
        "status 'exploded' is not in the published schema; stored as text for 1 server (s1)",
    ]


def test_every_published_status_and_auth_type_passes_without_a_warning() -> None:
    servers = [
        server(f"s{n}-{a}", status=s, auth_type=a)
        for n, s in enumerate(("waiting", "ready", "stale", "error"))
        for a in ("oauth", "bearer", "unauthenticated")
    ]
    assert transform_account([], servers).warnings == []


def test_a_server_only_a_portal_shows_is_checked_too() -> None:
    only = embedded(server("s9", status="paused"))
    result = transform_account([portal("p1", [only])], [])
    assert result.warnings == [
        "status 'paused' is not in the published schema; stored as text for 1 server (s9)"
    ]


def test_one_warning_per_value_with_its_servers_sorted() -> None:
    servers = [server(sid, status="paused") for sid in ("s3", "s1", "s2")]
    servers += [server("s4", status="broken"), server("s5", status="Ready")]
    assert transform_account([], servers).warnings == [
        "status 'Ready' is not in the published schema; stored as text for 1 server (s5)",
        "status 'broken' is not in the published schema; stored as text for 1 server (s4)",
        "status 'paused' is not in the published schema; stored as text for 3 servers (s1, s2, s3)",
    ]


def test_a_warning_shows_five_examples_and_counts_the_rest() -> None:
    def warning_for(count: int) -> str:
        servers = [server(f"s{n}", auth_type="mtls") for n in range(count)]
        [warning] = transform_account([], servers).warnings
        return warning.split("stored as text for ")[1]

    assert warning_for(2) == "2 servers (s0, s1)"
    assert warning_for(5) == "5 servers (s0, s1, s2, s3, s4)"
    assert warning_for(6) == "6 servers (s0, s1, s2, s3, s4 and 1 more)"
    assert warning_for(8) == "8 servers (s0, s1, s2, s3, s4 and 3 more)"


def test_the_same_unknown_value_in_both_fields_is_two_warnings() -> None:
    result = transform_account([], [server("s1", status="odd", auth_type="odd")])
    assert [w.split(" is ")[0] for w in result.warnings] == ["auth_type 'odd'", "status 'odd'"]
    assert Notes().warnings() == []  # nothing noted, nothing said


# --- warnings: embedded copies that disagree with /servers -------------------------------------


def test_disagreeing_copies_are_one_warning_sorted_by_server_then_portal() -> None:
    s1, s2 = server("s1", description="y"), server("s2")
    portals = [
        portal("p2", [embedded(s1, name="old", description="x"), embedded(s2, status="error")]),
        portal("p1", [embedded(s1, name="older")]),
    ]
    result = transform_account(portals, [s2, s1])
    assert result.warnings == [
        "embedded copies disagree with /servers, whose copy is stored: 3 servers "
        "(s1 in portal p1: name, s1 in portal p2: description, name, s2 in portal p2: status)"
    ]


def test_disagreeing_copies_past_five_are_counted_and_come_after_unknown_values() -> None:
    listed = [server(f"s{n}", status="odd") for n in range(7)]
    portals = [portal("p1", [embedded(s, name="stale") for s in listed])]
    warnings = transform_account(portals, listed).warnings
    assert warnings[0].startswith("status 'odd' is not in the published schema")
    assert warnings[1] == (
        "embedded copies disagree with /servers, whose copy is stored: 7 servers "
        "(s0 in portal p1: name, s1 in portal p1: name, s2 in portal p1: name, "
        "s3 in portal p1: name, s4 in portal p1: name and 2 more)"
    )
    assert len(warnings) == 2


def test_copies_that_agree_with_servers_say_nothing() -> None:
    s1 = server("s1")
    assert transform_account([portal("p1", [embedded(s1)])], [s1]).warnings == []


# --- differing: which fields of an embedded copy count -------------------------------------------


def test_attachment_fields_ids_and_observations_are_not_compared() -> None:
    listed = server("s1", last_synced=T1, last_successful_sync=T1)
    copy_ = embedded(
        listed,
        id="other",
        server_id="s1",
        default_disabled=True,
        on_behalf=False,
        updated_tools=[{"name": "a", "enabled": False}],
        updated_prompts=[{"name": "p", "enabled": False}],
        last_synced=T2,
        last_successful_sync=T2,
    )
    assert differing(copy_, {**listed, "updated_tools": [], "updated_prompts": []}) == []


def test_only_fields_both_copies_carry_are_compared_and_come_sorted() -> None:
    listed = {"name": "a", "status": "ready", "hostname": "h"}
    copy_ = {"status": "error", "name": "b", "description": "only here", "hostname": "h"}
    assert differing(copy_, listed) == ["name", "status"]
    assert differing({"name": "a"}, {}) == []


def test_tools_and_prompts_are_compared_by_count_only() -> None:
    listed = {"tools": [{"name": "a"}], "prompts": [{"name": "p"}, {"name": "q"}]}
    same_count = {"tools": [{"name": "renamed"}], "prompts": [{"name": "x"}, {"name": "y"}]}
    assert differing(same_count, listed) == []
    more = {"tools": [{"name": "a"}, {"name": "b"}], "prompts": [{"name": "p"}]}
    assert differing(more, listed) == ["prompts", "tools"]
    assert differing({"tools": None, "prompts": "x"}, listed) == []
    assert differing({"tools": []}, {"tools": None}) == []


def test_a_list_in_another_order_is_the_same_value() -> None:
    listed = {"scopes": ["read", "write"], "items": [{"a": 1, "b": 2}, {"c": 3}]}
    reordered = {"scopes": ["write", "read"], "items": [{"c": 3}, {"b": 2, "a": 1}]}
    assert differing(reordered, listed) == []


def test_lists_differ_by_an_item_a_count_or_a_repeat() -> None:
    listed = {"scopes": ["read", "write"]}
    assert differing({"scopes": ["read", "admin"]}, listed) == ["scopes"]
    assert differing({"scopes": ["read"]}, listed) == ["scopes"]
    assert differing({"scopes": ["read", "read"]}, listed) == ["scopes"]
    assert differing({"scopes": ["read", "write", "read"]}, listed) == ["scopes"]
    assert differing({"scopes": "read"}, {"scopes": ["read"]}) == ["scopes"]
    assert differing({"scopes": ["read"]}, {"scopes": "read"}) == ["scopes"]


def test_a_list_differs_from_a_text_or_an_object_of_the_same_items() -> None:
    assert differing({"scopes": ["a", "b"]}, {"scopes": "ab"}) == ["scopes"]
    assert differing({"scopes": "ab"}, {"scopes": ["a", "b"]}) == ["scopes"]
    assert differing({"scopes": {"a": 1}}, {"scopes": ["a"]}) == ["scopes"]
    assert differing({"scopes": ["a"]}, {"scopes": {"a": 1}}) == ["scopes"]


def test_values_json_cannot_encode_are_compared_by_their_text() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    assert differing({"at": [when, 1]}, {"at": [1, when]}) == []
    assert differing({"at": [when]}, {"at": [datetime(2026, 3, 2, tzinfo=UTC)]}) == ["at"]


def test_list_items_are_compared_whole_not_by_their_keys_alone() -> None:
    listed = {"items": [{"a": 1}, {"a": 2}]}
    assert differing({"items": [{"a": 2}, {"a": 3}]}, listed) == ["items"]
    assert differing({"items": [{"a": 1, "b": None}, {"a": 2}]}, listed) == ["items"]


# --- embedded_entries: a server a portal embeds more than once ---------------------------------


def _entries(servers: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    raw = portal("p1", servers)
    return [(e.key, dict(r)) for e, r in embedded_entries(Portal.model_validate(raw), raw)]


def test_a_portal_keeps_every_server_it_embeds_once_in_its_order() -> None:
    servers = [embedded(server(sid)) for sid in ("s2", "s1", "s3")]
    assert [key for key, _ in _entries(servers)] == ["s2", "s1", "s3"]


def test_of_a_repeated_server_the_same_copy_is_kept_whatever_the_order() -> None:
    first = embedded(server("s1"), description="b")
    second = embedded(server("s1"), description="a")
    third = embedded(server("s1"), description="c")
    other = embedded(server("s2"))
    for order in ([first, second, third, other], [third, other, second, first]):
        kept = dict(_entries(order))
        assert set(kept) == {"s1", "s2"}
        assert kept["s1"]["description"] == "a"
        assert len(_entries(order)) == 2


def test_a_repeated_server_links_the_chosen_copy_whatever_the_order() -> None:
    one = embedded(server("s1"), default_disabled=True, on_behalf=False)
    two = embedded(server("s1"), default_disabled=False, on_behalf=True)
    links = {
        transform_account([portal("p1", order)], [])
        .snapshot["portal_server"][("p1", "s1")]
        .values["default_disabled"]
        for order in ([one, two], [two, one])
    }
    assert len(links) == 1


def test_a_server_a_portal_embeds_after_one_already_stored_is_still_linked_and_stored() -> None:
    s1, s8, s9 = server("s1"), server("s8"), server("s9")
    portals = [
        portal("p1", [embedded(s9)]),
        portal("p2", [embedded(s9), embedded(s1), embedded(s8)]),
    ]
    result = transform_account(portals, [s1])
    assert set(result.snapshot["portal_server"]) == {
        ("p1", "s9"),
        ("p2", "s9"),
        ("p2", "s1"),
        ("p2", "s8"),
    }
    assert set(result.snapshot["server"]) == {("s1",), ("s8",), ("s9",)}


def test_a_protected_server_a_portal_embeds_does_not_hide_the_ones_after_it() -> None:
    s8 = server("s8")
    bad = {"id": "s7", "name": 7}  # rejected with its id: s7 stays as stored
    portals = [portal("p1", [embedded(server("s7")), embedded(s8)])]
    result = transform_account(portals, [bad])
    assert set(result.snapshot["portal_server"]) == {("p1", "s7"), ("p1", "s8")}
    assert set(result.snapshot["server"]) == {("s8",)}


# --- the observations: Cloudflare's sync times, apart from a server's content ------------------


def test_a_server_rows_observations_are_its_sync_times_in_order() -> None:
    raw = server("s1", last_synced=T1, last_successful_sync=T2)
    row = transform_account([], [raw]).snapshot["server"][("s1",)]
    assert OBSERVED == ("last_synced", "last_successful_sync")
    assert row.observed == (
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        datetime(2026, 3, 1, 11, tzinfo=UTC),
    )
    assert make_server_row(dict(row.values)).observed == row.observed


def test_a_server_digest_leaves_out_the_sync_times_in_columns_and_raw() -> None:
    values = {"name": "a", "last_synced": 1, "last_successful_sync": 2}
    values["raw"] = {"name": "a", "last_synced": "1", "last_successful_sync": "2"}
    moved = {"name": "a", "last_synced": 3, "last_successful_sync": 4}
    moved["raw"] = {"name": "a", "last_synced": "3", "last_successful_sync": "4"}
    assert server_digest(values) == server_digest(moved)
    assert server_digest(values) == server_digest({"name": "a", "raw": {"name": "a"}})


def test_a_server_digest_counts_everything_else_in_columns_and_raw() -> None:
    values = {"name": "a", "last_synced": 1, "raw": {"name": "a", "extra": 1}}
    assert server_digest(values) != server_digest({**values, "name": "b"})
    assert server_digest(values) != server_digest({**values, "raw": {"name": "a", "extra": 2}})
    assert server_digest(values) != server_digest({**values, "raw": {"name": "a"}})
    assert server_digest({"raw": None}) != server_digest({"raw": []})
    assert server_digest({"raw": ["last_synced"]}) != server_digest({"raw": []})


Observed = dict[Kind, dict[Key, tuple[Any, ...]]]


def _server_snapshot(**times: str) -> tuple[TransformResult, Observed]:
    """One server's transform, and its observations as they would be stored."""
    result = transform_account([], [server("s1", **times)])
    rows = result.snapshot["server"]
    return result, {"server": {key: row.observed for key, row in rows.items()}}


def test_moved_sync_times_are_an_observation_not_a_change() -> None:
    _, observed = _server_snapshot(last_synced=T1, last_successful_sync=T1)
    result, _ = _server_snapshot(last_synced=T2, last_successful_sync=T1)
    stored = stored_from([], [server("s1")])
    changes = diff_snapshot(stored, result.snapshot, result.coverage, observed)
    server_changes = changes.kinds["server"]
    assert server_changes.observations == {("s1",): result.snapshot["server"][("s1",)]}
    assert not server_changes.updates
    assert not server_changes.inserts
    assert not changes
    assert changes.writes


def test_unmoved_sync_times_are_no_observation() -> None:
    result, observed = _server_snapshot(last_synced=T1, last_successful_sync=T1)
    stored = stored_from([], [server("s1")])
    assert not diff_snapshot(stored, result.snapshot, result.coverage, observed).writes


def test_without_stored_observations_nothing_is_an_observation() -> None:
    result, _ = _server_snapshot(last_synced=T2)
    stored = stored_from([], [server("s1")])
    none: list[Observed | None] = [None, {}, {"server": {}}, {"portal": {("s1",): ("x",)}}]
    for observed in none:
        changes = diff_snapshot(stored, result.snapshot, result.coverage, observed)
        assert not changes.writes, observed


def test_a_changed_server_with_moved_times_is_an_update_only() -> None:
    _, observed = _server_snapshot(last_synced=T1)
    result = transform_account([], [server("s1", name="new", last_synced=T2)])
    stored = stored_from([], [server("s1")])
    changes = diff_snapshot(stored, result.snapshot, result.coverage, observed)
    assert set(changes.kinds["server"].updates) == {("s1",)}
    assert changes.kinds["server"].observations == {}


def test_rows_without_observations_are_never_an_observation() -> None:
    seen: Snapshot = {"portal": {("p1",): Row(values={"a": 1}, digest="d")}}
    stored: dict[Kind, dict[Key, str]] = {"portal": {("p1",): "d"}}
    observed: Observed = {"portal": {("p1",): ("then",)}}
    assert not diff_snapshot(stored, seen, Coverage(), observed).writes
