"""Hostile and odd payloads: never a crash; every record stored or quarantined with a reason.

Records are generated from Cloudflare's published schema (tests/data/mcp-openapi.json, a copy of
../shared/cloudflare/mcp-openapi.json) with unknown fields added at every level and constraints
sometimes broken; many go through the pure ``transform_account``, fewer through a whole sync
into SQLite and PostgreSQL, served by the simulator (``set_listing``) over ``httpx.MockTransport``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from inventory.cloudflare.client import CloudflareClient
from inventory.cloudflare.envelope import MAX_DEPTH, decode_envelope
from inventory.db import models
from inventory.errors import BadResponseError, FetchError
from inventory.settings import AccountConfig
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from inventory.sync.transform import transform_account
from inventory.sync.validation import plainly_storable, storable_problem
from tests.support.api import Only, SimulatorTransport, reply
from tests.support.faultkit import Clock, run_row, small_sim, snapshot, sync_all, syncer_for
from tests.support.settings import settings_for

SPEC_PATH = Path(
    os.environ.get("INVENTORY_MCP_OPENAPI", Path(__file__).parent / "data" / "mcp-openapi.json")
)
BASE = "https://api.cloudflare.test/client/v4"
TOKEN = "hostile-token"
Json = Any


def _item_schema(endpoint: str) -> dict[str, Any]:
    spec = json.loads(SPEC_PATH.read_text())
    path = f"/accounts/{{account_id}}/access/ai-controls/mcp/{endpoint}"
    ok = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    items: dict[str, Any] = ok["schema"]["properties"]["result"]["items"]
    return items


needs_spec = pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"{SPEC_PATH} is not there")

# --- strategies from the schema -------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
EXTRA_KEYS = st.text(min_size=1, max_size=12).map(lambda s: f"x_{s}")
TIMESTAMPS = st.sampled_from(
    [
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T10:00:00+05:30",
        "2026-03-01T10:00:00-08:00",
        "2026-03-01T10:00:00.123456Z",
        "2026-03-01T10:00:00.1Z",
        "2026-03-01t10:00:00z",
        "2026-03-01 10:00:00Z",
        "20260301T100000Z",
        "not a date",
    ]
)
# Lone surrogates next to other non-ASCII text crash transform_account today (see
# test_a_lone_surrogate_beside_non_ascii_text_is_quarantined); switch back on once fixed.
GENERATE_LONE_SURROGATES = True
ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "a\x00b", "\U0001f600", "x" * 600, "DROP TABLE portals;--"]),
    *([st.just("\ud800")] if GENERATE_LONE_SURROGATES else []),
)


def from_schema(  # noqa: PLR0911 - one return per JSON Schema type reads best
    schema: dict[str, Any], *, depth: int = 0
) -> st.SearchStrategy[Json]:
    """Mostly valid values for ``schema``; sometimes a broken one, sometimes odd text."""
    kind = schema.get("type")
    if "enum" in schema:
        valid: st.SearchStrategy[Json] = st.sampled_from(schema["enum"])
        return valid | st.just("exploded") if depth else valid | st.just("unknown_value")
    if kind == "boolean":
        return st.booleans()
    if kind in ("number", "integer"):
        return st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        if schema.get("format") == "date-time":
            return TIMESTAMPS
        if "pattern" in schema and schema.get("maxLength") == 32:  # ids
            return st.from_regex(r"\A[a-z0-9_]{1,12}(-[a-z0-9_]{1,8})?\Z") | st.sampled_from(
                ["", "UPPER", "with space", "a" * 33, "ünï", "-lead"]
            )
        return st.text(max_size=schema.get("maxLength", 40) or 40) | ODD_TEXT
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(from_schema(items, depth=depth + 1), max_size=3)
    if kind == "object" or "properties" in schema:
        return _object(schema, depth)
    return ANY_JSON


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Json]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:  # additionalProperties: {} (tools, prompts): any MCP-ish object
        return st.fixed_dictionaries(
            {},
            optional={
                "name": ODD_TEXT,
                "title": ODD_TEXT,
                "description": ODD_TEXT,
                "inputSchema": ANY_JSON,
                "annotations": ANY_JSON,
            },
        ) | st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=4)
    required = set(schema.get("required", []))
    values = {name: from_schema(sub, depth=depth + 1) for name, sub in properties.items()}
    for name, sub in properties.items():
        if sub.get("nullable") or name not in required:
            values[name] = values[name] | st.none()
    mandatory = {k: v for k, v in values.items() if k in required}
    optional = {k: v for k, v in values.items() if k not in required}
    record = st.fixed_dictionaries(mandatory, optional=optional)
    extra = st.dictionaries(EXTRA_KEYS, ANY_JSON, max_size=2)
    broken = record.flatmap(
        lambda r: st.sampled_from(sorted(r) or [""]).map(
            lambda k: {x: v for x, v in r.items() if x != k}
        )
    )
    return st.one_of(record, record, record, broken).flatmap(
        lambda r: extra.map(lambda e: {**e, **r})
    )


def _records(endpoint: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(_object(_item_schema(endpoint), 0), max_size=4)


def _ids(raws: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in raws if isinstance(r, dict) and isinstance(r.get("id"), str)]


# --- the pure transform --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parallel
@needs_spec
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    portals=st.deferred(lambda: _records("portals")),
    servers=st.deferred(lambda: _records("servers")),
)
def test_transform_stores_or_quarantines_every_generated_record(
    portals: list[dict[str, Any]], servers: list[dict[str, Any]]
) -> None:
    result = transform_account(portals, servers)
    rejected = {(r.kind, r.entity_id) for r in result.rejections}
    assert all(r.reason for r in result.rejections)
    assert all(isinstance(r.raw, str) for r in result.rejections)
    for kind, raws in (("portal", portals), ("server", servers)):
        without_id = [r for r in raws if r.get("id") is None or not isinstance(r.get("id"), str)]
        quarantined_anonymous = sum(1 for k, i in rejected if k == kind and i is None)
        assert quarantined_anonymous <= len(without_id) + len(raws)
        for record_id in _ids(raws):
            stored = (record_id,) in result.snapshot[kind]  # type: ignore[index]
            assert stored or (kind, record_id) in rejected or (kind, None) in rejected, record_id
        if without_id:  # an id-less record is always quarantined
            assert any(k == kind for k, _ in rejected)
    # everything stored is something the database can hold
    for rows in result.snapshot.values():
        for row in rows.values():
            blob = json.dumps(row.values, default=str, ensure_ascii=False)
            assert "\x00" not in blob
            blob.encode("utf-8")  # no lone surrogate


# --- a whole sync, over a fake API, into both databases --------------------------------------


@pytest.fixture
def fake_sync(engine: Engine) -> Iterator[Callable[..., AccountResult]]:
    """Sync one new account whose listings are exactly these records (or these bytes)."""
    clients: list[CloudflareClient] = []
    seeds = itertools.count(1)

    def run(portals: list[Any] | bytes, servers: list[Any] | bytes, **client: Any) -> AccountResult:
        sim = SimulatedCloudflare(
            seed=next(seeds), accounts=1, portals_per_account=0, api_token=TOKEN
        )
        (account_id,) = sim.account_ids
        api = SimulatorTransport(sim)
        for endpoint, listing in (("portals", portals), ("servers", servers)):
            if isinstance(listing, bytes):
                api.ahead.append(Only(endpoint, reply(200, listing)))
            else:
                sim.set_listing(account_id, endpoint, listing)
        http = CloudflareClient(base_url=BASE, transport=api, **client)
        clients.append(http)
        account = AccountConfig.model_validate({"id": account_id, "api_token": TOKEN})
        return Syncer(engine=engine, client=http, clock=Clock()).sync_account(account)

    yield run
    for http in clients:
        http.close()


def _stored_ids(engine: Engine, table: str, account_id: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT id FROM {table} WHERE account_id = :a"), {"a": account_id}
        )
        return {r[0] for r in rows}


def _rejections(engine: Engine, run_id: int | None) -> list[dict[str, Any]]:
    table = models.table_of(models.RejectedRecord)
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.run_id == run_id)).mappings()
        return [dict(r) for r in rows]


@pytest.mark.slow
@pytest.mark.parallel
@needs_spec
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    portals=st.deferred(lambda: _records("portals")),
    servers=st.deferred(lambda: _records("servers")),
)
def test_sync_never_crashes_on_generated_records(
    fake_sync: Callable[..., AccountResult],
    engine: Engine,
    portals: list[dict[str, Any]],
    servers: list[dict[str, Any]],
) -> None:
    result = fake_sync(portals, servers)
    assert result.status in ("succeeded", "partial"), result.error
    rejections = _rejections(engine, result.run_id)
    assert len(rejections) == result.rejected
    assert all(r["reason"] for r in rejections)
    rejected = {(r["kind"], r["entity_id"]) for r in rejections}
    for kind, table, raws in (("portal", "portals", portals), ("server", "servers", servers)):
        stored = _stored_ids(engine, table, result.account_id)
        for record_id in _ids(raws):
            assert record_id in stored or (kind, record_id) in rejected or (kind, None) in rejected


def _server(**fields: Any) -> dict[str, Any]:
    return {
        "id": "srv-1",
        "name": "Server",
        "hostname": "https://mcp.example.com/mcp",
        "auth_type": "oauth",
        "tools": [],
        "prompts": [],
        **fields,
    }


def _portal(**fields: Any) -> dict[str, Any]:
    return {
        "id": "portal-1",
        "name": "Portal",
        "hostname": "mcp.example.com",
        "servers": [],
        **fields,
    }


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth


QUARANTINED = [
    ("nul-in-name", _server(name="a\x00b"), "NUL"),
    ("nul-in-tool", _server(tools=[{"name": "t", "description": "a\x00b"}]), "NUL"),
    ("lone-surrogate-in-name", _server(name="a\ud800b"), "surrogate"),
    ("lone-surrogate-in-tool", _server(tools=[{"name": "t\udc00"}]), "surrogate"),
    ("name-over-350", _server(name="n" * 351), "name"),
    ("record-over-2MB", _server(tools=[{"name": "t", "description": "x" * 2_100_000}]), "limit"),
    ("id-too-long", _server(id="a" * 33), "id"),
    ("id-upper-case", _server(id="UPPER"), "id"),
    ("id-with-space", _server(id="a b"), "id"),
    ("id-empty", _server(id=""), "id"),
    ("id-not-a-string", _server(id=12345), "id"),
    ("status-null", _server(status=None), "status"),
    ("timestamp-basic-format", _server(created_at="20260301T100000Z"), "created_at"),
]


@pytest.mark.parametrize(
    ("record", "reason"), [pytest.param(r, w, id=i) for i, r, w in QUARANTINED]
)
def test_records_a_database_cannot_hold_are_quarantined(
    fake_sync: Callable[..., AccountResult], engine: Engine, record: dict[str, Any], reason: str
) -> None:
    good = _server(id="srv-good")
    result = fake_sync([], [record, good])
    assert result.status == "partial", result.error
    assert result.error_class == "Incomplete"
    (rejection,) = _rejections(engine, result.run_id)
    assert rejection["kind"] == "server"
    assert reason in rejection["reason"], rejection["reason"]
    if reason != "limit":  # an over-long record keeps only its first 10,000 characters
        json.loads(rejection["raw"])  # kept as valid JSON text whatever it held
    assert _stored_ids(engine, "servers", result.account_id) == {"srv-good"}


@pytest.mark.parametrize("depth", [50, 500, 5000])
def test_deeply_nested_tool_schemas_are_stored_or_quarantined(
    fake_sync: Callable[..., AccountResult], engine: Engine, depth: int
) -> None:
    server = json.dumps(_server(tools=[{"name": "deep", "inputSchema": "HOLE"}]))
    body = server.replace('"HOLE"', _deep(depth).decode()).encode()
    page = b'{"success":true,"errors":[],"messages":[],"result":[' + body + b"]}"
    result = fake_sync([], page)
    assert result.status in ("succeeded", "partial"), result.error
    stored = _stored_ids(engine, "servers", result.account_id)
    assert stored == {"srv-1"} or result.rejected == 1


class _Call:
    what = "GET /accounts/x/access/ai-controls/mcp/servers?page=1"

    def error(self, cls: type[FetchError], text: str, **kwargs: Any) -> FetchError:
        return cls(text, url="/x", **kwargs)


def test_deep_json_is_decoded_without_touching_the_recursion_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Other sync threads run meanwhile: nothing process-wide may change while one page decodes.
    limit = sys.getrecursionlimit()
    changes: list[object] = []
    monkeypatch.setattr(sys, "setrecursionlimit", changes.append)

    def stack_size(*size: int) -> int:
        changes.append(size)
        return 0

    monkeypatch.setattr(threading, "stack_size", stack_size)
    body = b'{"success":true,"result":[' + _deep(20_000) + b"]}"
    envelope = decode_envelope(body, call=_Call(), status_code=200)
    value, depth = envelope["result"][0], 0
    while value:
        value, depth = value["a"], depth + 1
    assert depth == 20_000
    assert changes == []
    assert sys.getrecursionlimit() == limit


def _nested_in_result(fragment: str, depth: int) -> bytes:
    return f'{{"success":true,"result":[{"[" * depth}{fragment}{"]" * depth}]}}'.encode()


def test_deep_json_decodes_to_what_shallow_json_does() -> None:
    inner = '{"a": [1, 2.5, -3e4, "\\u00e9x", null, true, false, {}, []], "b": {"c": [0]}, "a": 2}'
    envelope = decode_envelope(_nested_in_result(inner, 3000), call=_Call(), status_code=200)
    value = envelope["result"][0]
    for _ in range(3000):
        (value,) = value
    assert value == json.loads(inner)


@pytest.mark.parametrize(
    "fragment",
    ["1,", '{"a" 1}', '{"a":1,}', "{1:2}", "1 2", "nul", "NaN", "-Infinity", '{"a":1 "b":2}', "01"],
)
def test_malformed_deep_json_is_refused_as_shallow_json_is(fragment: str) -> None:
    messages = []
    for depth in (1, 3000):
        with pytest.raises(BadResponseError) as caught:
            decode_envelope(_nested_in_result(fragment, depth), call=_Call(), status_code=200)
        messages.append(re.sub(r"at byte \d+", "at byte N", str(caught.value)))
    assert messages[0] == messages[1]


def test_json_nested_deeper_than_the_limit_is_refused_clearly() -> None:
    body = b'{"success":true,"result":[' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"]}"
    with pytest.raises(BadResponseError) as caught:
        decode_envelope(body, call=_Call(), status_code=200)
    assert str(caught.value) == (
        f"unusable JSON from {_Call.what}: JSON nested deeper than {MAX_DEPTH:,} levels"
    )
    assert not isinstance(caught.value.__context__, RecursionError)


def test_odd_but_valid_records_are_stored_as_sent(
    fake_sync: Callable[..., AccountResult], engine: Engine
) -> None:
    nulls = _server(
        id="all-null",
        **dict.fromkeys(
            [
                "description",
                "error",
                "error_details",
                "authentication_status",
                "last_synced",
                "last_successful_sync",
                "created_at",
                "created_by",
                "modified_at",
                "modified_by",
                "secure_web_gateway",
                "is_shared_oauth_callback_enabled",
                "auth_config_summary",
                "updated_tools",
                "updated_prompts",
                "tools",
                "prompts",
            ]
        ),
    )
    tools = _server(
        id="odd-tools",
        tools=[
            {"description": "no name"},
            {"name": None, "description": "null name"},
            {"name": "dup", "description": "one"},
            {"name": "dup", "description": "two"},
            {"name": "same", "description": "x"},
            {"name": "same", "description": "x"},
            {"name": "n" * 300},
            {"name": "ünïcødé 🙂", "x_extra": {"nested": [1, {"deeper": True}]}},
        ],
        x_unknown_top={"a": [1, 2]},
    )
    portal = _portal(
        id="p",
        description=None,
        code_mode=None,
        servers=[{**_server(id="odd-tools"), "x_portal_field": 1, "server_id": "odd-tools"}],
        x_new_field="kept",
    )
    result = fake_sync([portal], [nulls, tools])
    assert result.status == "succeeded", result.error
    with engine.connect() as conn:
        names: dict[str, Any] = dict(
            conn.execute(
                text(
                    "SELECT name, derived_key FROM tools WHERE account_id = :a AND server_id = :s"
                ),
                {"a": result.account_id, "s": "odd-tools"},
            ).all()
        )
        raw = conn.execute(
            select(models.Portal.raw).where(models.Portal.account_id == result.account_id)
        ).scalar_one()
    # missing/null/over-long names get derived keys; duplicates are told apart; twins collapse
    assert sum(1 for n in names if n.startswith("~")) == 3
    assert sum(1 for n in names if n.startswith("dup~")) == 2
    assert "same" in names
    assert not names["same"]
    assert "ünïcødé 🙂" in names
    assert len(names) == 7
    assert raw["x_new_field"] == "kept"
    assert _stored_ids(engine, "servers", result.account_id) == {"all-null", "odd-tools"}


TIMESTAMP_CASES = [
    ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ("2026-03-01T10:00:00+00:00", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ("2026-03-01T10:00:00+05:30", datetime(2026, 3, 1, 4, 30, tzinfo=UTC)),
    ("2026-03-01T10:00:00-08:00", datetime(2026, 3, 1, 18, 0, tzinfo=UTC)),
    ("2026-03-01T10:00:00.123456Z", datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-03-01T10:00:00.5+01:00", datetime(2026, 3, 1, 9, 0, 0, 500000, tzinfo=UTC)),
    ("2026-03-01t10:00:00z", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ("2026-03-01 10:00:00Z", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),  # no offset: read as UTC
]


@pytest.mark.parametrize(
    ("sent", "expected"), [pytest.param(s, e, id=s) for s, e in TIMESTAMP_CASES]
)
def test_timestamps_in_every_iso_8601_variant_are_stored_in_utc(
    fake_sync: Callable[..., AccountResult], engine: Engine, sent: str, expected: datetime
) -> None:
    result = fake_sync([], [_server(created_at=sent, last_synced=sent)])
    assert result.status == "succeeded", result.error
    with engine.connect() as conn:
        created, synced = conn.execute(
            select(models.Server.created_at, models.Server.last_synced).where(
                models.Server.account_id == result.account_id
            )
        ).one()
    for stored in (created, synced):
        assert stored is not None
        assert stored.utcoffset() == timedelta(0)
        assert stored == expected


def test_truncated_json_with_a_matching_length_is_a_clear_bad_response(
    fake_sync: Callable[..., AccountResult], engine: Engine
) -> None:
    result = fake_sync(b'{"success":true,"result":[{"id":"p1",', [])
    assert result.status == "failed"
    assert result.error_class == "BadResponseError"
    assert "truncated JSON at byte" in (result.error or "")
    assert run_row(engine, result.run_id)["status"] == "failed"


def test_a_body_over_max_response_bytes_is_refused_clearly(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim: SimulatedCloudflare = small_sim(accounts=1)
    with serve_in_thread(sim) as api_url:
        settings_ = settings_for(sim, api_url, db_url, cwd=tmp_path, max_response_bytes=2000)
        with syncer_for(engine, settings_) as syncer:
            (result,) = sync_all(syncer, settings_)
    assert result.status == "failed"
    assert result.error_class == "BadResponseError"
    assert "2,000-byte limit (max_response_bytes)" in (result.error or "")
    assert all(not rows for name, rows in snapshot(engine).items())


def test_a_lone_surrogate_beside_non_ascii_text_is_quarantined_by_transform() -> None:
    result = transform_account([], [_server(name="a\ud800b", description="café")])
    (rejection,) = result.rejections
    assert "surrogate" in rejection.reason
    assert result.snapshot["server"] == {}


def test_a_lone_surrogate_beside_non_ascii_text_is_quarantined_by_sync(
    fake_sync: Callable[..., AccountResult], engine: Engine
) -> None:
    result = fake_sync([], [_server(name="a\ud800b", description="café"), _server(id="ok")])
    assert result.status == "partial", result.error
    (rejection,) = _rejections(engine, result.run_id)
    assert "surrogate" in rejection["reason"]
    assert _stored_ids(engine, "servers", result.account_id) == {"ok"}


ODD_SCALARS = st.one_of(
    SCALARS,
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xFFFF)),
    st.sampled_from(["\x00", "a\ud800b", "\\u0000", "\\\\u0000", "\u2028", "ü🙂"]),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
ODD_JSON = st.recursive(
    ODD_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.slow
@pytest.mark.parallel
@given(ODD_JSON)
@settings(max_examples=300, deadline=None)
def test_the_fast_storability_check_never_passes_what_the_exact_one_refuses(value: Any) -> None:
    if plainly_storable(value):
        assert storable_problem(value)[0] is None


@pytest.mark.parametrize(
    ("value", "storable"),
    [
        pytest.param({"name": "a\x00b"}, False, id="nul"),
        pytest.param({"name": "a\ud800b"}, False, id="surrogate"),
        pytest.param({"big": 2**70}, True, id="int-past-64-bits"),
        pytest.param(_nested(300), True, id="300-deep"),
        pytest.param({"d": "x" * 1_500_000}, True, id="1.5M-characters"),
        pytest.param([0] * 700_000, False, id="2.1M-characters-once-spaced"),
    ],
)
def test_what_the_fast_check_cannot_vouch_for_gets_the_exact_check(
    value: Any, storable: bool
) -> None:
    assert not plainly_storable(value)
    problem, _ = storable_problem(value)
    assert (problem is None) == storable, problem
