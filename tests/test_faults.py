"""The fault matrix: every way the API or the network misbehaves, on SQLite and PostgreSQL.

Each case starts from a synced inventory, syncs again under the fault and checks: nothing
stored is removed or altered that the fault hid, the run says what happened in an operator's
words, retries are bounded in count and time, the other accounts are unaffected, and the next
sync without the fault converges to what a fresh sync into an empty database gives.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.faultkit import (
    content_state,
    run_row,
    small_sim,
    snapshot,
    sync_all,
    syncer_for,
)
from tests.support.matrix import one_per_family
from tests.support.settings import settings_for
from tests.support.trial import OpenTrial

MAX_RETRIES = 3  # what settings_for configures
ATTEMPTS = MAX_RETRIES + 1


@dataclass(frozen=True)
class Case:
    id: str
    faults: Callable[[str], list[Fault]]
    status: str  # the victim's run status under the fault
    error_class: str | None = None
    words: tuple[str, ...] = ()  # each must appear in the run's error text
    retries: int = 0  # exactly this many retries in the victim's run
    sim: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    max_seconds: float = 10.0


def _on(
    kind: str, endpoint: str = "servers", page: int | None = 2, **kw: Any
) -> Callable[..., Any]:
    def make(victim: str) -> list[Fault]:
        return [Fault(kind=kind, account_id=victim, endpoint=endpoint, page=page, **kw)]  # type: ignore[arg-type]

    return make


GAVE_UP = f"gave up after {ATTEMPTS} attempts"
MIDDLE = "servers?page=2"  # 5 servers at page_size=2: pages 1, 2, 3
SLOW = {"read_timeout": 0.5}

CASES = [
    Case(
        "429-retry-after-once",
        _on("status", status=429, retry_after=1, times=2),
        "succeeded",
        retries=2,
    ),
    Case(
        "429-retry-after-forever",
        _on("status", status=429, retry_after=1),
        "failed",
        "ApiError",
        ("429 Too Many Requests", GAVE_UP, MIDDLE),
        retries=MAX_RETRIES,
    ),
    Case(
        "429-ratelimit-headers-only",
        _on("status", status=429, ratelimit_headers=True, retry_after=1, times=1),
        "succeeded",
        retries=1,
    ),
    *(
        Case(f"{code}-once", _on("status", status=code, times=1), "succeeded", retries=1)
        for code in (500, 502, 503, 504)
    ),
    *(
        Case(
            f"{code}-forever-middle-page",
            _on("status", status=code),
            "failed",
            "ApiError",
            (str(code), GAVE_UP, MIDDLE),
            retries=MAX_RETRIES,
        )
        for code in (500, 502, 503, 504)
    ),
    Case(
        "read-timeout-once",
        _on("delay", seconds=1.5, times=1),
        "succeeded",
        retries=1,
        settings=SLOW,
    ),
    Case(
        "read-timeout-forever",
        _on("delay", seconds=1.5),
        "failed",
        "TransportError",
        ("read timeout", GAVE_UP, MIDDLE),
        retries=MAX_RETRIES,
        settings=SLOW,
    ),
    Case(
        "stall-mid-body-once",
        _on("stall", seconds=1.5, times=1),
        "succeeded",
        retries=1,
        settings=SLOW,
    ),
    Case(
        "stall-mid-body-forever",
        _on("stall", seconds=1.5),
        "failed",
        "TransportError",
        ("read timeout", GAVE_UP, MIDDLE),
        retries=MAX_RETRIES,
        settings=SLOW,
    ),
    Case("truncated-body-once", _on("truncate", times=1), "succeeded", retries=1),
    Case(
        "truncated-body-forever",
        _on("truncate"),
        "failed",
        "TransportError",
        ("connection broke mid-response", GAVE_UP, MIDDLE),
        retries=MAX_RETRIES,
    ),
    Case("html-520-once", _on("html", times=1), "succeeded", retries=1),
    Case(
        "html-520-forever",
        _on("html"),
        "failed",
        "BadResponseError",
        ("520", "text/html", GAVE_UP, MIDDLE),
        retries=MAX_RETRIES,
    ),
    Case(
        "success-false-200",
        _on("success_false"),
        "failed",
        "ApiError",
        ("success: false", "10013", MIDDLE),
    ),
    Case("empty-body-200", _on("empty_body"), "failed", "BadResponseError", ("empty body", MIDDLE)),
    *(
        Case(
            f"invalid-{endpoint}-{violation}",
            _on("invalid_record", endpoint=endpoint, page=1, violation=violation),
            "partial",
            "Incomplete",
            ("1 record(s) rejected", "nothing was deleted"),
        )
        for endpoint in ("portals", "servers")
        for violation in ("missing_id", "wrong_type", "bad_enum", "long_string")
        if violation != "bad_enum"
    ),
    # An unknown enum value (code_mode, a server's status) is stored as text, not rejected.
    *(
        Case(
            f"invalid-{endpoint}-bad_enum",
            _on("invalid_record", endpoint=endpoint, page=1, violation="bad_enum"),
            "succeeded",
        )
        for endpoint in ("portals", "servers")
    ),
    Case(
        "drift-insert-portals",
        _on("drift_insert", endpoint="portals", times=1),
        "partial",
        "Incomplete",
        ("changed while it was paged", "nothing was deleted"),
    ),
    Case(
        "drift-remove-servers",
        _on("drift_remove", times=1),
        "partial",
        "Incomplete",
        ("changed while it was paged", "nothing was deleted"),
    ),
    Case(
        # 4 portals at page_size=2 and no result_info: page 3 is past the end and repeats page 2
        "last-page-repeated",
        _on("repeat_last_page", endpoint="portals", page=None),
        "succeeded",
        sim={"portals_per_account": 4, "result_info": False},
    ),
    Case(
        "401-unauthorized",
        _on("status", status=401, page=1),
        "failed",
        "AuthError",
        ("401 Unauthorized", "check the API token"),
    ),
    Case(
        "403-revoked",
        lambda victim: [],  # sim.revoke(), below
        "failed",
        "AuthError",
        ("403 Forbidden", "Authentication error", "check the API token"),
    ),
]


def _requests_of(sim: SimulatedCloudflare, account_id: str) -> int:
    return sum(1 for r in sim.requests if r.account_id == account_id)


XFAIL: dict[str, str] = {}  # case id -> known bug, as a strict xfail
PARAMS = one_per_family(
    [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(strict=True, reason=XFAIL[c.id])] if c.id in XFAIL else [],
        )
        for c in CASES
    ],
    fast={
        "429-retry-after-once",
        "503-forever-middle-page",
        "truncated-body-once",
        "html-520-forever",
        "invalid-servers-missing_id",
        "invalid-portals-bad_enum",
        "drift-insert-portals",
        "403-revoked",
    },
)


@pytest.mark.parametrize("case", PARAMS)
def test_fault(case: Case, trial: OpenTrial, engine: Engine) -> None:
    sim = small_sim(**case.sim)
    victim, *others = sim.account_ids
    with trial(sim, **case.settings) as t:
        assert {r.status for r in t.sync()} == {"succeeded"}
        before = snapshot(engine)
        before_victim = snapshot(engine, victim)
        before_others = {a: snapshot(engine, a) for a in others}
        if case.status == "failed":
            # a real change the failing listing must not record: the portal stays stored
            sim.delete_portal(victim, sim.portal_ids(victim)[-1])
        if case.id == "403-revoked":
            sim.revoke(victim)
        for fault in case.faults(victim):
            sim.faults.add(fault)
        sim.clear_requests()
        started = time.monotonic()
        results = t.sync()
        elapsed = time.monotonic() - started
        result = results[0]

        # the run says what happened, in words an operator understands
        assert result.status == case.status, result
        assert result.error_class == case.error_class
        for words in case.words:
            assert words in (result.error or ""), (words, result.error)
        run = run_row(engine, result.run_id)
        assert (run["status"], run["error_class"]) == (result.status, result.error_class)
        assert run["error_message"] == result.error
        assert run["finished_at"] is not None
        # retries bounded in count and time, and counted as the API saw them
        assert result.retries == case.retries
        assert _requests_of(sim, victim) <= result.requests <= 8 + case.retries
        if case.status != "failed":  # failed runs: see test_a_failed_run_records_its_requests
            assert (run["requests"], run["retries"]) == (result.requests, result.retries)
        assert elapsed < case.max_seconds
        # the other accounts are unaffected
        assert [r.status for r in results[1:]] == ["succeeded"] * len(others)
        assert {a: snapshot(engine, a) for a in others} == before_others

        if case.status == "failed":
            assert snapshot(engine) == before
        elif case.status == "partial" and case.id.startswith("invalid"):
            assert snapshot(engine, victim) == before_victim  # the rejected record kept its rows
            assert result.rejected == 1
        elif case.status == "partial":  # the listing drifted: additions only, no deletion
            assert result.consistent is False
            assert all(c["removed"] == 0 for c in result.counts.values())
            after = content_state(engine, victim)
            for kind, keys in _keys(before_victim).items():
                assert keys <= {r[:-1] for r in after[kind]}, kind
        elif case.id == "invalid-portals-bad_enum":
            assert result.counts["portal"] == {"added": 0, "changed": 1, "removed": 0}
        elif case.id == "invalid-servers-bad_enum":
            assert result.counts["server"] == {"added": 0, "changed": 1, "removed": 0}
        else:
            assert snapshot(engine, victim) == before_victim

        # without the fault, the next sync converges to the truth
        sim.faults.clear()
        sim.unrevoke(victim)
        assert {r.status for r in t.sync()} == {"succeeded"}
    assert t.converged()


def _keys(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, set[tuple[Any, ...]]]:
    """account_id + key columns of the current tables in a snapshot, by kind."""
    from inventory.db.tables import TABLES

    keyed: dict[str, set[tuple[Any, ...]]] = {}
    for kind, spec in TABLES.items():
        names = [c.name for c in spec.current.columns]
        idx = [names.index("account_id"), *(names.index(k) for k in spec.keys)]
        keyed[kind] = {tuple(r[i] for i in idx) for r in rows[spec.current.name]}
    return keyed


def test_unknown_account_id_is_a_404_naming_the_account(trial: OpenTrial, engine: Engine) -> None:
    sim = small_sim()
    unknown = "0123456789abcdef0123456789abcdef"
    accounts = [{"id": a, "api_token": sim.api_token} for a in [*sim.account_ids, unknown]]
    with trial(sim, page_size=100, accounts=json.dumps(accounts)) as t:
        results = t.sync()
    assert [r.status for r in results] == ["succeeded"] * 3 + ["failed"]
    bad = results[-1]
    assert bad.error_class == "ApiError"
    assert "404 Not Found" in (bad.error or "")
    assert unknown in (bad.error or "")
    assert "check the account id" in (bad.error or "")
    assert run_row(engine, bad.run_id)["retries"] == 0
    assert t.converged()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_fails_every_account_cleanly(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim = small_sim()
    url = f"http://127.0.0.1:{_closed_port()}/client/v4"
    settings = settings_for(sim, url, db_url, cwd=tmp_path, page_size=2)
    started = time.monotonic()
    with syncer_for(engine, settings) as syncer:
        results = sync_all(syncer, settings)
    assert time.monotonic() - started < 10
    assert {r.status for r in results} == {"failed"}
    for result in results:
        assert result.error_class == "TransportError"
        assert "could not connect" in (result.error or "")
        assert GAVE_UP in (result.error or "")
        assert result.retries == MAX_RETRIES
    assert all(not rows for rows in snapshot(engine).values())


@pytest.fixture
def never_accepts() -> Iterator[str]:
    """A listening socket whose backlog is full: new connections are never completed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue; later SYNs are dropped
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/client/v4"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_connect_timeout_is_bounded_and_reported(
    never_accepts: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim = small_sim(accounts=1)
    settings = settings_for(sim, never_accepts, db_url, cwd=tmp_path, connect_timeout=0.1)
    started = time.monotonic()
    with syncer_for(engine, settings) as syncer:
        (result,) = sync_all(syncer, settings)
    assert time.monotonic() - started < ATTEMPTS * 0.1 + 5
    assert result.status == "failed"
    assert result.error_class == "TransportError"
    assert "could not connect within 0.1 s" in (result.error or "")
    assert result.retries == MAX_RETRIES


def test_a_failed_run_records_its_requests_and_retries(trial: OpenTrial, engine: Engine) -> None:
    sim = small_sim(accounts=1)
    sim.faults.add(Fault(kind="status", status=503, endpoint="servers", page=2))
    with trial(sim) as t:
        result = t.sync_one()
    assert result.status == "failed"
    run = run_row(engine, result.run_id)
    # 3 pages of portals... no: 2 of portals, then servers page 1 and 4 attempts at page 2
    assert (result.requests, result.retries) == (2 + 1 + ATTEMPTS, MAX_RETRIES)
    assert (run["requests"], run["retries"]) == (result.requests, result.retries)


def test_the_rate_limit_block_fails_fast_and_clearly(trial: OpenTrial, engine: Engine) -> None:
    # Cloudflare blocks a credential for a whole window once it goes over the limit; the
    # simulator's window is 6 s here (300 s in production) and request_deadline 1 s.
    sim = small_sim()
    with trial(sim, request_deadline=1, max_concurrency=1) as t:
        accounts = t.settings.accounts
        assert {r.status for r in t.syncer.sync_all(accounts, max_concurrency=1)} == {"succeeded"}
        before = snapshot(engine)
        sim.rate_limit = (10, 6.0)  # 15 requests just made: the next one starts the block
        started = time.monotonic()
        results = t.syncer.sync_all(accounts, max_concurrency=1)
        elapsed = time.monotonic() - started
    assert results[0].status == "failed"
    assert "429" in (results[0].error or "")
    assert "Cloudflare asked to wait 6 s" in (results[0].error or "")
    assert snapshot(engine) == before
    # every account on the blocked credential fails within the retry budget, not after the block
    assert {r.status for r in results} == {"failed"}
    assert elapsed < 4
    sim.rate_limit = None
    with syncer_for(engine, t.settings) as syncer:  # a new process: its limiter starts afresh
        assert {r.status for r in sync_all(syncer, t.settings)} == {"succeeded"}
    assert t.converged()


@pytest.mark.slow
def test_a_new_process_on_a_token_just_used_stays_under_the_limit(
    served: Callable[[SimulatedCloudflare], str], db_url: str, engine: Engine, tmp_path: Path
) -> None:
    # Two `inventory sync` processes back to back on one token: the second one's limiter starts
    # empty, so it must learn what is left from the first answer before it sends more.
    sim = small_sim()
    sim.rate_limit = (10, 4.0)
    api_url = served(sim)
    settings = settings_for(
        sim, api_url, db_url, cwd=tmp_path, page_size=2, max_concurrency=3,
        rate_limit_requests=10, rate_limit_period=4.0,
    )  # fmt: skip
    for _ in range(2):
        with syncer_for(engine, settings) as syncer:  # a fresh client and limiter each time
            results = syncer.sync_all(settings.accounts, max_concurrency=3)
        assert {r.status for r in results} == {"succeeded"}
    statuses = [r.status for r in sim.requests]
    assert len(statuses) > 2 * 10  # more than two windows' worth: the limiter had to pace
    assert 429 not in statuses


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> Any:
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args],
        cwd=cwd,
        env={**base, "INVENTORY_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_a_database_refusing_connections_is_one_clear_line(
    served: Callable[[SimulatedCloudflare], str], tmp_path: Path
) -> None:
    sim = small_sim(accounts=1)
    api_url = served(sim)
    db = f"postgresql://inventory:pw-CANARY-51@127.0.0.1:{_closed_port()}/inventory"
    env = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db,
        "INVENTORY_ACCOUNTS": json.dumps([{"id": sim.account_ids[0], "api_token": sim.api_token}]),
    }
    done = _run_cli(["sync"], env, tmp_path)
    assert done.returncode == 1
    assert "database error" in done.stderr
    assert "Connection refused" in done.stderr or "connection refused" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert "pw-CANARY-51" not in done.stdout + done.stderr
    assert sim.requests == []  # nothing fetched while the database cannot take the result


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    return db_url


@pytest.mark.usefixtures("pg_url")
def test_connection_dropped_mid_transaction_commits_nothing(
    trial: OpenTrial, engine: Engine
) -> None:
    import threading

    from sqlalchemy import text

    sim = small_sim()
    victim = sim.account_ids[0]
    with trial(sim) as t:
        t.sync()
        before = snapshot(engine)
        # changes of every kind, so a partial commit would show; the slow tool is inserted last
        sim.rename_portal(victim, sim.portal_ids(victim)[0], "renamed while the DB dies")
        sim.delete_portal(victim, sim.portal_ids(victim)[-1])
        sim.add_tool(victim, sim.server_ids(victim)[0], {"name": "slow", "description": "zz"})
        # two new tools: the slow row is one of a bulk insert (COPY)
        sim.add_tool(victim, sim.server_ids(victim)[0], {"name": "also", "description": "zz"})
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE FUNCTION slow_insert() RETURNS trigger AS $$ BEGIN "
                "IF NEW.name = 'slow' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END "
                "$$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER slow_insert BEFORE INSERT ON tools "
                "FOR EACH ROW EXECUTE FUNCTION slow_insert()"
            )
        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.extend(t.syncer.sync_all(t.settings.accounts[:1]))
        )
        started = time.monotonic()
        worker.start()
        killed = 0
        try:
            while not killed and time.monotonic() - started < 20:
                time.sleep(0.05)
                with engine.connect() as conn:
                    killed = len(
                        conn.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND wait_event = 'PgSleep'"
                            )
                        ).all()
                    )
        finally:
            worker.join(timeout=40)
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TRIGGER slow_insert ON tools")
                conn.exec_driver_sql("DROP FUNCTION slow_insert()")
        assert killed == 1
        (result,) = results
        assert result.status == "failed"
        assert result.error_class in ("OperationalError", "DBAPIError", "InternalError")
        assert "database error" in (result.error or "")
        assert "terminat" in (result.error or "")
        assert time.monotonic() - started < 15
        assert snapshot(engine) == before  # nothing of the account's transaction survived
        assert run_row(engine, result.run_id)["status"] == "failed"
        assert {r.status for r in t.sync()} == {"succeeded"}
    assert t.converged()
