"""``inventory doctor`` against the simulator over real HTTP and real SQLite and PostgreSQL.

Each account costs one request (``per_page=1``); the database is never created or changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from inventory.cli.doctor import Check, check_database, run_doctor
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.migrate import head_revision, upgrade
from inventory.settings import Settings, load_settings
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.cli import run
from tests.support.daemon import free_port
from tests.support.db import IN_CI, PG_ADMIN_URL


def doctor_settings(
    api_url: str, db_url: str, accounts: list[dict[str, Any]], tmp_path: Path, **extra: str
) -> Settings:
    environ = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(accounts),
        **{f"INVENTORY_{k.upper()}": v for k, v in extra.items()},
    }
    return load_settings(environ=environ, cwd=tmp_path)


def by(checks: list[Check], check: str, account: str | None = None) -> Check:
    (found,) = [c for c in checks if c.check == check and c.account == account]
    return found


def statuses(checks: list[Check]) -> dict[tuple[str, str | None], str]:
    return {(c.check, c.account): c.status for c in checks}


def test_a_good_setup_passes_every_check_with_one_request_per_account(
    settings: Settings, sim: SimulatedCloudflare
) -> None:
    checks = run_doctor(settings, settings.accounts)
    assert {c.status for c in checks} == {"ok"}, checks
    assert [c.check for c in checks[:3]] == ["database", "schema", "writable"]
    for account in settings.accounts:
        names = [c.check for c in checks if c.account_id == account.id]
        assert names == ["credential", "rate limit", "clock"]
    # The accounts share one token and are checked at once: whichever asked first saw 1199 left.
    left = sorted(
        int(re.search(r"(\d+) of 1200 requests left in the 300 s window", c.detail)[1])  # type: ignore[index]
        for c in checks
        if c.check == "rate limit"
    )
    assert left == list(range(1200 - len(settings.accounts), 1200))
    assert len(sim.requests) == len(settings.accounts)
    for record in sim.requests:
        assert (record.endpoint, record.page, record.per_page) == ("portals", 1, 1)
        assert record.status == 200
    # Nothing was written: a write was tried and rolled back.
    engine = make_engine(settings.database_url_secret())
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one() == 0
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
                head_revision()
            )
    finally:
        engine.dispose()


def test_a_refused_credential_names_both_causes_of_a_403(
    sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path
) -> None:
    good, revoked, other = sim.account_ids
    sim.revoke(revoked)
    sim.add_token("limited-token", portals_read=False)
    settings = doctor_settings(
        api_url,
        db_url,
        [
            {"id": good, "name": "good", "api_token": sim.api_token},
            {"id": revoked, "name": "revoked", "api_token": sim.api_token},
            {"id": other, "name": "no-permission", "api_token": "limited-token"},
        ],
        tmp_path,
    )
    checks = run_doctor(settings, settings.accounts)
    assert by(checks, "credential", "good").status == "ok"
    for name in ("revoked", "no-permission"):
        refused = by(checks, "credential", name)
        assert refused.status == "fail"
        assert "403" in refused.detail
        assert "revoked" in refused.hint
        assert "lacks the MCP Portals Read permission" in refused.hint
        assert by(checks, "rate limit", name).status == "skip"
        assert by(checks, "clock", name).status == "skip"
    # The simulator answers the two alike, as Cloudflare does: the hint is all that can help.
    revoked_detail = by(checks, "credential", "revoked").detail.replace(revoked, "ID")
    other_detail = by(checks, "credential", "no-permission").detail.replace(other, "ID")
    assert revoked_detail == other_detail
    for check in checks:
        assert "limited-token" not in json.dumps(check.as_dict())
        assert sim.api_token not in json.dumps(check.as_dict())


def test_a_wrong_key_and_an_unknown_account(
    sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path
) -> None:
    settings = doctor_settings(
        api_url,
        db_url,
        [
            {"id": sim.account_ids[0], "name": "key", "api_email": sim.api_email,
             "api_key": "wrong-key"},
            {"id": "0" * 32, "name": "nowhere", "api_token": sim.api_token},
        ],
        tmp_path,
    )  # fmt: skip
    checks = run_doctor(settings, settings.accounts)
    assert by(checks, "credential", "key").status == "fail"
    assert "MCP Portals Read" in by(checks, "credential", "key").hint
    unknown = by(checks, "credential", "nowhere")
    assert unknown.status == "fail"
    assert "404" in unknown.detail
    assert "check the account id" in unknown.hint


def test_an_unreachable_api(db_url: str, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/client/v4"
    settings = doctor_settings(
        closed, db_url, [{"id": "a" * 32, "name": "a", "api_token": "t0ken"}], tmp_path
    )
    checks = run_doctor(settings, settings.accounts)
    failed = by(checks, "credential", "a")
    assert failed.status == "fail"
    assert "could not connect" in failed.detail
    assert "api_base_url" in failed.hint
    assert by(checks, "database").status == "ok"  # the database is checked all the same


def test_an_answer_that_is_not_the_api(
    sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path
) -> None:
    sim.faults.add(Fault("html"))  # every request: a 520 HTML page, retried once
    settings = doctor_settings(
        api_url,
        db_url,
        [{"id": sim.account_ids[0], "name": "a", "api_token": sim.api_token}],
        tmp_path,
    )
    checks = run_doctor(settings, settings.accounts)
    failed = by(checks, "credential", "a")
    assert failed.status == "fail"
    assert "text/html" in failed.detail
    assert "not Cloudflare's JSON API" in failed.hint
    assert len(sim.requests) == 2  # one retry, not the configured five


@pytest.mark.parametrize(
    ("style", "expected"),
    [("ietf", "ok"), ("x", "ok"), ("none", "skip")],
)
def test_the_rate_limit_budget_from_either_header_style(
    sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path, style: Any, expected: str
) -> None:
    sim.ratelimit_headers = style
    settings = doctor_settings(
        api_url,
        db_url,
        [{"id": sim.account_ids[0], "name": "a", "api_token": sim.api_token}],
        tmp_path,
    )
    budget = by(run_doctor(settings, settings.accounts), "rate limit", "a")
    assert budget.status == expected
    if expected == "ok":
        assert budget.detail.startswith("1199 of 1200 requests left")


def spend(api_url: str, account_id: str, token: str, requests: int) -> None:
    url = f"{api_url}/accounts/{account_id}/access/ai-controls/mcp/portals"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(requests):
            client.get(url, params={"per_page": 1})


def test_a_budget_running_low_warns_and_an_exhausted_one_fails(db_url: str, tmp_path: Path) -> None:
    from inventory.simulator import serve_in_thread

    sim = SimulatedCloudflare(seed=5, accounts=1, rate_limit=(20, 300.0))
    with serve_in_thread(sim) as api_url:
        account = sim.account_ids[0]
        settings = doctor_settings(
            api_url, db_url, [{"id": account, "name": "a", "api_token": sim.api_token}], tmp_path
        )
        spend(api_url, account, sim.api_token, 18)  # another tool's requests
        low = by(run_doctor(settings, settings.accounts), "rate limit", "a")
        assert (low.status, low.detail) == ("warn", "1 of 20 requests left in the 300 s window")
        assert "another tool shares this token" in low.hint
        empty = by(run_doctor(settings, settings.accounts), "rate limit", "a")  # the 20th
        assert empty.status == "fail"
        assert empty.detail.startswith("no requests left")


@pytest.mark.parametrize(
    ("skew", "expected", "words"),
    [(0.0, "ok", "within 5 s"), (-30.0, "warn", "behind"), (600.0, "fail", "ahead of")],
)
def test_the_clock_against_the_response_date(
    sim: SimulatedCloudflare,
    api_url: str,
    db_url: str,
    tmp_path: Path,
    skew: float,
    expected: str,
    words: str,
) -> None:
    sim.clock_skew = skew
    settings = doctor_settings(
        api_url,
        db_url,
        [{"id": sim.account_ids[0], "name": "a", "api_token": sim.api_token}],
        tmp_path,
    )
    clock = by(run_doctor(settings, settings.accounts), "clock", "a")
    assert clock.status == expected
    assert words in clock.detail
    if expected != "ok":
        # Date has whole seconds: what is certain of the skew is within a second of it.
        shown = int(clock.detail.split(" is ")[1].split(" s ")[0])
        assert abs(skew) - 2 <= shown <= abs(skew)
        assert "NTP" in clock.hint


# --- the database ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind with nothing in it, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {exc}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"inventory_doctor_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_database_behind_the_code_and_one_ahead_of_it(empty_db_url: str) -> None:
    path = sqlite_path(empty_db_url)
    if path is not None:
        missing = check_database(empty_db_url)
        assert [c.status for c in missing] == ["fail", "skip", "skip"]
        assert "inventory db upgrade" in missing[0].hint
        assert not path.exists()  # the doctor does not create what it was asked about
        make_engine(empty_db_url).dispose()  # an empty file
    empty = check_database(empty_db_url)
    assert [c.status for c in empty] == ["ok", "fail", "ok"]
    assert empty[1].detail.startswith("empty")

    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0003")
        behind = check_database(empty_db_url)
        assert [c.status for c in behind] == ["ok", "fail", "ok"]
        assert f"at revision 0003, behind the {head_revision()}" in behind[1].detail
        assert "inventory db upgrade" in behind[1].hint

        upgrade(engine)
        assert [c.status for c in check_database(empty_db_url)] == ["ok", "ok", "ok"]

        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        ahead = check_database(empty_db_url)
        assert ahead[1].status == "fail"
        assert "does not know" in ahead[1].detail
        assert "newer inventory" in ahead[1].hint
    finally:
        engine.dispose()


def test_a_read_only_postgresql_user_fails_the_write_check(empty_db_url: str) -> None:
    if sqlite_path(empty_db_url) is not None:
        pytest.skip("PostgreSQL privileges (the tests run as root: file modes do not bind)")
    engine = make_engine(empty_db_url)
    role = f"inventory_ro_{uuid.uuid4().hex[:8]}"
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        read_only = empty_db_url.replace("postgres@", f"{role}@", 1)
        assert read_only != empty_db_url
        checks = check_database(read_only)
        assert [c.status for c in checks] == ["ok", "ok", "fail"]
        assert "permission denied" in checks[2].detail
        assert "grant this user" in checks[2].hint
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        engine.dispose()


def test_an_unreachable_database() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    checks = check_database(url, shown="postgresql://nobody@127.0.0.1/nothing")
    assert [c.status for c in checks] == ["fail", "skip", "skip"]
    assert "cannot connect" in checks[0].detail
    assert "pg_hba.conf" in checks[0].hint


# --- the command -------------------------------------------------------------------------------


def doctor(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(["doctor", *args], cwd, env)


def test_the_command_exit_codes_json_and_account_selection(
    sim: SimulatedCloudflare, api_url: str, db_url: str, tmp_path: Path
) -> None:
    good, revoked, _ = sim.account_ids
    sim.revoke(revoked)
    env = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [
                {"id": good, "name": "Prod", "api_token": sim.api_token},
                {"id": revoked, "name": "old", "api_token": sim.api_token},
            ]
        ),
    }
    everything = doctor(tmp_path, env)
    assert everything.returncode == 1, everything.stderr
    lines = everything.stdout.splitlines()
    assert any(line.startswith("FAIL  credential  old: 403") for line in lines)
    assert any(line.startswith("ok    credential  Prod: API token accepted") for line in lines)
    assert any("hint:" in line and "revoked" in line for line in lines)
    assert lines[-1] == "1 of 9 checks failed"

    by_name = doctor(tmp_path, env, "--account", "prod")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    assert by_name.stdout.splitlines()[-1] == "ready: 6 checks passed"

    as_json = doctor(tmp_path, env, "--json", "--account", revoked, "-a", "old")
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert document["ok"] is False
    assert [(c["check"], c["status"]) for c in document["checks"]] == [
        ("database", "ok"),
        ("schema", "ok"),
        ("writable", "ok"),
        ("credential", "fail"),
        ("rate limit", "skip"),
        ("clock", "skip"),
    ]
    assert document["checks"][3]["account_id"] == revoked
    for done in (everything, by_name, as_json):
        assert sim.api_token not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


def test_the_command_exits_2_on_configuration_errors(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    env = {"INVENTORY_API_BASE_URL": api_url}
    nothing = doctor(tmp_path, env)
    assert nothing.returncode == 2
    assert "account" in nothing.stderr
    env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": sim.account_ids[0], "api_token": "x" * 8}])
    unknown = doctor(tmp_path, env, "--account", "staging")
    assert unknown.returncode == 2
    assert "--account 'staging' is not a configured account" in unknown.stderr
    env["INVENTORY_MAX_RETRIES"] = "many"
    bad = doctor(tmp_path, env)
    assert bad.returncode == 2
    for done in (nothing, unknown, bad):
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "inventory.db").exists()
