"""Security: no secret in the database or the logs, credentials only where they belong, TLS.

The audit runs syncs under faults (including refused credentials) through the CLI, with a
PostgreSQL role whose password is in the database URL, then searches every column of every
table, stdout and stderr for each configured secret.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from inventory.cloudflare.client import CloudflareClient
from inventory.daemon.service import open_client
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.errors import ApiError, TransportError
from inventory.settings import AccountConfig
from inventory.simulator import Fault, SimulatedCloudflare, serve_in_thread
from inventory.sync.syncer import Syncer
from tests.support.faultkit import Clock
from tests.support.settings import settings_for

TOKEN = "cfut_AUDITCANARY_TOKEN_7f3a9c"
API_KEY = "AUDITCANARYKEY0123456789abcdef"
WRONG_TOKEN = "cfut_AUDITCANARY_WRONG_51be"
DB_PASSWORD = "pw_AUDITCANARY_db_93d1"


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args],
        cwd=cwd,
        env={**base, "INVENTORY_LOG_FORMAT": "json", "INVENTORY_LOG_LEVEL": "debug", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def audited_db_url(db_url: str) -> Iterator[str]:
    """The test database; on PostgreSQL reached as a role whose password is a canary."""
    if not db_url.startswith("postgresql"):
        yield db_url
        return
    url = make_url(db_url)
    role = f"inv_audit_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        yield url.set(username=role, password=DB_PASSWORD).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
            )
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _every_stored_value(engine: Engine) -> str:
    parts: list[str] = []
    with engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(json.dumps(v, default=str) for v in row)
    return "\n".join(parts)


@pytest.mark.slow
def test_no_secret_in_any_table_log_or_output(
    audited_db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim = SimulatedCloudflare(seed=5, accounts=3, portals_per_account=2, api_token=TOKEN)
    sim.api_key = API_KEY
    with serve_in_thread(sim) as api_url:
        accounts = [
            {"id": sim.account_ids[0], "name": "token", "api_token": TOKEN},
            {"id": sim.account_ids[1], "api_email": sim.api_email, "api_key": API_KEY},
            {"id": sim.account_ids[2], "name": "refused", "api_token": WRONG_TOKEN},
        ]
        env = {
            "INVENTORY_API_BASE_URL": api_url,
            "INVENTORY_DATABASE_URL": audited_db_url,
            "INVENTORY_ACCOUNTS": json.dumps(accounts),
            "INVENTORY_PAGE_SIZE": "1",
            "INVENTORY_MAX_RETRIES": "1",
            "INVENTORY_READ_TIMEOUT": "0.5",
        }
        outputs: list[str] = []
        for fault in (
            None,
            Fault(kind="status", status=500),
            Fault(kind="status", status=401, account_id=sim.account_ids[1]),
            Fault(kind="success_false"),
            Fault(kind="invalid_record", violation="wrong_type"),
        ):
            sim.faults.clear()
            if fault is not None:
                sim.faults.add(fault)
            done = _cli(["sync"], env, tmp_path)
            assert done.returncode in (0, 1), done.stderr
            outputs += [done.stdout, done.stderr]
        checked = _cli(["config", "check", "--json"], env, tmp_path)
        outputs += [checked.stdout, checked.stderr]
        sim.revoke(sim.account_ids[0])
        done = _cli(["sync", "--json"], env, tmp_path)
        outputs += [done.stdout, done.stderr]
    stored = _every_stored_value(engine)
    assert "AuthError" in stored  # the refused account's runs are there, explained
    assert "Incomplete" in stored
    everything = "\n".join([stored, *outputs])
    for secret in (TOKEN, API_KEY, WRONG_TOKEN, DB_PASSWORD):
        assert secret not in everything, secret


def test_no_secret_in_in_process_logs_errors_or_reprs(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim = SimulatedCloudflare(seed=5, accounts=2, portals_per_account=2, api_token=TOKEN)
    with serve_in_thread(sim) as api_url:
        settings = settings_for(sim, api_url, db_url, cwd=tmp_path, page_size=1)
        sim.faults.add(Fault(kind="status", status=503, account_id=sim.account_ids[0]))
        sim.revoke(sim.account_ids[1])
        with capture_logs() as logs, open_client(settings) as client:
            syncer = Syncer(engine=engine, client=client, per_page=1, clock=Clock())
            results = syncer.sync_all(settings.accounts)
            text = repr(client) + repr(settings) + str(settings.redacted())
    assert [r.status for r in results] == ["failed", "failed"]
    everything = text + repr(results) + json.dumps(logs, default=str) + _every_stored_value(engine)
    assert TOKEN not in everything


class _Recorder:
    def __init__(self, redirect_to: str | None = None) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # host, path, authorization
        self.redirect_to = redirect_to

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.url.path, request.headers.get("authorization")))
        if self.redirect_to is not None:
            return httpx.Response(302, headers={"location": self.redirect_to})
        body = {"success": True, "errors": [], "messages": [], "result": []}
        return httpx.Response(200, json=body)


def test_each_account_credential_goes_only_with_its_own_requests(
    engine: Engine,
) -> None:
    recorder = _Recorder()
    accounts = [
        AccountConfig.model_validate({"id": uuid.uuid4().hex, "api_token": f"cfut_TOKEN_{i}"})
        for i in range(4)
    ]
    with CloudflareClient(
        base_url="https://api.cloudflare.test/client/v4", transport=httpx.MockTransport(recorder)
    ) as client:
        results = Syncer(engine=engine, client=client, clock=Clock()).sync_all(
            accounts, max_concurrency=4
        )
    assert {r.status for r in results} == {"succeeded"}
    token_of = {a.id: f"Bearer cfut_TOKEN_{i}" for i, a in enumerate(accounts)}
    assert len(recorder.seen) == 2 * len(accounts)
    for host, path, authorization in recorder.seen:
        assert host == "api.cloudflare.test"
        account_id = path.split("/accounts/")[1].split("/")[0]
        assert authorization == token_of[account_id]


def test_a_redirect_is_not_followed_so_the_credential_stays_home(engine: Engine) -> None:
    recorder = _Recorder(redirect_to="https://evil.example/steal")
    account = AccountConfig.model_validate({"id": uuid.uuid4().hex, "api_token": TOKEN})
    with CloudflareClient(
        base_url="https://api.cloudflare.test/client/v4", transport=httpx.MockTransport(recorder)
    ) as client:
        result = Syncer(engine=engine, client=client, clock=Clock()).sync_account(account)
    assert result.status == "failed"
    assert "redirects are not followed" in (result.error or "")
    assert {host for host, _, _ in recorder.seen} == {"api.cloudflare.test"}
    assert TOKEN not in (result.error or "")


def test_the_simulator_saw_every_request_authenticated_and_on_its_own_account(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    sim = SimulatedCloudflare(seed=5, accounts=2, portals_per_account=3)
    with serve_in_thread(sim) as api_url:
        settings = settings_for(sim, api_url, db_url, cwd=tmp_path, page_size=1)
        with open_client(settings) as client:
            Syncer(engine=engine, client=client, per_page=1, clock=Clock()).sync_all(
                settings.accounts
            )
    assert sim.requests
    assert {r.auth for r in sim.requests} == {"bearer"}
    assert {r.account_id for r in sim.requests} == set(sim.account_ids)
    assert {r.status for r in sim.requests} == {200}


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An https server on loopback with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name the base class dispatches to
            body = b'{"success":true,"errors":[],"messages":[],"result":[]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/client/v4|{cert}"
    finally:
        server.shutdown()
        server.server_close()


def _get(client: CloudflareClient) -> dict[str, Any]:
    return client.get_page(
        f"/accounts/{'a' * 32}/access/ai-controls/mcp/portals",
        params={"page": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        credential_key="k",
    ).decoded()


def test_tls_is_verified_by_default(self_signed: str) -> None:
    base, _ = self_signed.split("|")
    with (
        CloudflareClient(base_url=base, max_retries=0) as client,
        pytest.raises(TransportError) as caught,
    ):
        _get(client)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) or "certificate" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_ca_bundle_makes_the_self_signed_server_trusted(self_signed: str) -> None:
    base, cert = self_signed.split("|")
    with CloudflareClient(base_url=base, verify=cert) as client:
        assert _get(client)["success"] is True


@pytest.mark.slow
def test_turning_tls_verification_off_warns_at_every_start(
    self_signed: str, tmp_path: Path
) -> None:
    base, _ = self_signed.split("|")
    env = {
        "INVENTORY_API_BASE_URL": base,
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "INVENTORY_VERIFY_TLS": "false",
        "INVENTORY_ACCOUNTS": json.dumps([{"id": "a" * 32, "api_token": TOKEN}]),
    }
    assert _cli(["db", "upgrade"], env, tmp_path).returncode == 0
    done = _cli(["sync"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [
        line
        for line in done.stderr.splitlines()
        if '"warning"' in line and ("tls" in line.lower() or "verif" in line.lower())
    ]
    assert warnings, done.stderr


# --- the SQLite file ---------------------------------------------------------------------------


def test_the_sqlite_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    from inventory.db.migrate import upgrade

    old = os.umask(0o022)  # a typical umask, which would make it world-readable
    try:
        path = tmp_path / "sub" / "inventory.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            for suffix in ("", "-wal", "-shm"):
                side = Path(f"{path}{suffix}")
                if side.exists():
                    assert side.stat().st_mode & 0o077 == 0, (suffix, oct(side.stat().st_mode))
        engine.dispose()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_api_error_names_no_credential() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        text = f"token {request.headers['authorization']} is not valid"
        return httpx.Response(
            403, json={"success": False, "errors": [{"code": 10000, "message": text}]}
        )

    with (
        CloudflareClient(
            base_url="https://api.cloudflare.test/client/v4", transport=httpx.MockTransport(refuse)
        ) as client,
        pytest.raises(ApiError) as caught,
    ):
        _get(client)
    assert TOKEN not in str(caught.value)
    assert "[redacted]" in str(caught.value)
