"""request_deadline and account_deadline: a server that trickles cannot hold an account.

The trickling server is a real socket on 127.0.0.1 that answers every request with a valid,
empty listing, one byte at a time (status line and headers included), each byte well within
read_timeout: httpx's timeouts alone would let it run for as long as it likes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from inventory.cli import app
from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.deadline import Deadline
from inventory.cloudflare.ratelimit import RateLimiter
from inventory.daemon.service import run_sync
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.errors import ConfigError, DeadlineError
from inventory.settings import Settings, load_settings
from inventory.simulator import Fault, SimulatedCloudflare
from tests.support.daemon import daemon_env, running, runs, wait_until

ACCOUNT = "a86a8f5c339544d7bdc89926de14fb8c"
TOKEN = "cfut_TRICKLECANARY_5e6f7a8b9c0d"
EMPTY_PAGE = json.dumps({"success": True, "errors": [], "messages": [], "result": []}).encode()


class TricklingServer:
    """Answers each request with an empty listing, one byte every ``interval`` seconds.

    Every loop is bounded (the request's header size, the response's length) and the server
    stops by itself when the block ends: it closes its socket and every connection.
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self.requests: list[str] = []
        self.bytes_sent = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, suppress(OSError):
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            with self._lock:
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
            response = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + b"Cf-Ray: "
                + b"7" * 100
                + b"\r\n"  # long headers, trickled too
                + f"Content-Length: {len(EMPTY_PAGE)}\r\n\r\n".encode()
                + EMPTY_PAGE
            )
            for byte in range(len(response)):  # bounded: one pass over one response
                if self._stop.wait(self.interval):
                    return
                conn.sendall(response[byte : byte + 1])
                with self._lock:
                    self.bytes_sent += 1

    @contextmanager
    def running(self) -> Iterator[TricklingServer]:
        server = threading.Thread(target=self._serve, name="trickle", daemon=True)
        server.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._listener.close()
            server.join(timeout=5)
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(timeout=5)


def trickle_settings(base_url: str, db_url: str, cwd: Path, **extra: object) -> Settings:
    environ = {
        "INVENTORY_API_BASE_URL": base_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps([{"id": ACCOUNT, "name": "slow", "api_token": TOKEN}]),
        "INVENTORY_READ_TIMEOUT": "3",
        "INVENTORY_MAX_RETRIES": "1",
        **{f"INVENTORY_{k.upper()}": str(v) for k, v in extra.items()},
    }
    return load_settings(environ=environ, cwd=cwd)


def run_rows(engine: Engine) -> list[models.SyncRun]:
    with engine.connect() as conn:
        runs = models.table_of(models.SyncRun)
        return list(conn.execute(select(runs)).all())  # type: ignore[arg-type]


def test_request_deadline_stops_a_trickling_response(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    # Each response takes about 250 bytes x 0.05 s = 12 s, every byte within read_timeout (3 s);
    # its headers alone take 10 s, so checks between body chunks could not keep the deadline.
    with TricklingServer(interval=0.05).running() as server:
        settings = trickle_settings(
            server.base_url, db_url, tmp_path, request_deadline="1.5s", account_deadline="10m"
        )
        started = time.monotonic()
        [result] = run_sync(settings, settings.accounts)
        elapsed = time.monotonic() - started
        sent = server.bytes_sent
    assert result.status == "failed"
    assert result.error_class == "DeadlineError"
    url = f"{server.base_url}/accounts/{ACCOUNT}/access/ai-controls/mcp/portals?page=1&per_page=100"
    assert result.error is not None
    assert result.error.startswith(
        f"GET {url}: stopped by request_deadline (1.5 s for a request: connect, headers, body "
        "and retries; rate-limit waits not counted) after 1 attempt; raise it if"
    )  # no "read timeout": that is not what stopped it
    assert elapsed < 5, elapsed  # without the deadline: 12 s per page
    assert sent < 100  # the headers never finished
    assert len(server.requests) == 1  # a deadline spent is not retried
    [run] = run_rows(engine)
    assert (run.status, run.error_class) == ("failed", "DeadlineError")
    assert run.error_message == result.error
    assert TOKEN not in run.error_message


def test_account_deadline_bounds_the_whole_sync(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    # Each request alone fits request_deadline; their sum does not fit account_deadline.
    with TricklingServer(interval=0.01).running() as server:
        settings = trickle_settings(
            server.base_url, db_url, tmp_path, request_deadline="1m", account_deadline="2s"
        )
        started = time.monotonic()
        [result] = run_sync(settings, settings.accounts)
        elapsed = time.monotonic() - started
    assert result.status == "failed"
    assert result.error_class == "DeadlineError"
    assert result.error is not None
    assert "stopped by account_deadline (2 s for the account's whole sync" in result.error
    assert f"GET {server.base_url}/accounts/{ACCOUNT}/access/ai-controls/mcp/" in result.error
    assert elapsed < 6, elapsed
    [run] = run_rows(engine)
    assert run.error_message == result.error


# The same rules with a fake clock over httpx.MockTransport: no socket, no sleeping.


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class SlowBody(httpx.SyncByteStream):
    """A valid page whose every byte costs ``per_byte`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, per_byte: float) -> None:
        self.clock, self.per_byte = clock, per_byte

    def __iter__(self) -> Iterator[bytes]:
        for byte in range(len(EMPTY_PAGE)):
            self.clock.now += self.per_byte
            yield EMPTY_PAGE[byte : byte + 1]


def account_deadline(seconds: float, clock: FakeClock) -> Deadline:
    return Deadline(
        seconds, setting="account_deadline", covers="the account's whole sync", clock=clock
    )


def page(
    client: CloudflareClient, *, deadline: Deadline | None = None, stats: RequestStats | None = None
) -> object:
    return client.get_page(
        f"/accounts/{ACCOUNT}/access/ai-controls/mcp/portals",
        params={"page": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        credential_key="token:x",
        deadline=deadline,
        stats=stats,
    )


def mock_client(
    clock: FakeClock, handler: object, *, limiter: RateLimiter | None = None, **options: float
) -> CloudflareClient:
    return CloudflareClient(
        base_url="https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        clock=clock,
        limiter_factory=lambda _key: limiter or RateLimiter(clock=clock, sleep=clock.sleep),
        **options,  # type: ignore[arg-type]
    )


def test_a_body_that_outlasts_the_deadline_is_cut_between_chunks() -> None:
    clock = FakeClock()
    client = mock_client(
        clock,
        lambda _r: httpx.Response(
            200, headers={"Content-Type": "application/json"}, stream=SlowBody(clock, 1.0)
        ),
        request_deadline=10,
    )
    with client, pytest.raises(DeadlineError) as caught:
        page(client)
    assert caught.value.setting == "request_deadline"
    assert clock.now - 1_000 <= 11  # stopped at the first chunk past the deadline


def test_waits_for_rate_limit_budget_count_toward_no_deadline() -> None:
    clock = FakeClock()
    # A limiter of one request per 60 s: the second request waits 60 s for its slot.
    limiter = RateLimiter(requests=1, period=60, clock=clock, sleep=clock.sleep)
    client = mock_client(
        clock,
        lambda _r: httpx.Response(200, json={"success": True, "errors": [], "result": []}),
        limiter=limiter,
        request_deadline=10,
    )
    account = account_deadline(20, clock)
    stats = RequestStats()
    with client:
        page(client, deadline=account, stats=stats)
        page(client, deadline=account, stats=stats)
    assert stats.throttled_seconds == pytest.approx(60)
    assert account.elapsed() == pytest.approx(0)


def test_a_spent_account_deadline_sends_nothing() -> None:
    clock = FakeClock()
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"success": True, "errors": [], "result": []})

    account = account_deadline(5, clock)
    clock.now += 6
    with mock_client(clock, handler) as client, pytest.raises(DeadlineError) as caught:
        page(client, deadline=account)
    assert not sent
    assert caught.value.setting == "account_deadline"
    assert "not sent: account_deadline (5 s for the account's whole sync" in str(caught.value)


# The settings: documented defaults, and retry_max_time as a deprecated alias.


def test_the_deadlines_default_to_two_and_fifteen_minutes(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path, require_accounts=False)
    assert (settings.request_deadline, settings.account_deadline) == (120, 900)
    assert settings.retry_max_time is None
    assert settings.deprecations() == []


def test_durations_and_bad_values(tmp_path: Path) -> None:
    environ = {"INVENTORY_REQUEST_DEADLINE": "90s", "INVENTORY_ACCOUNT_DEADLINE": "1h"}
    settings = load_settings(environ=environ, cwd=tmp_path, require_accounts=False)
    assert (settings.request_deadline, settings.account_deadline) == (90, 3600)
    with pytest.raises(ConfigError, match="account_deadline: must be a positive duration"):
        load_settings(
            environ={"INVENTORY_ACCOUNT_DEADLINE": "0"}, cwd=tmp_path, require_accounts=False
        )
    with pytest.raises(ConfigError, match="request_deadline: must be seconds or a duration"):
        load_settings(
            environ={"INVENTORY_REQUEST_DEADLINE": "soon"}, cwd=tmp_path, require_accounts=False
        )


@pytest.mark.usefixtures("keep_logging")
def test_retry_max_time_sets_request_deadline_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "inventory.toml").write_text('retry_max_time = "45s"\n')
    settings = load_settings(environ={}, cwd=tmp_path, require_accounts=False)
    assert settings.request_deadline == 45
    [warning] = settings.deprecations()
    assert warning.startswith("retry_max_time is deprecated: it now sets request_deadline")
    assert str(tmp_path / "inventory.toml") in warning

    result = CliRunner().invoke(
        app,
        ["--config", str(tmp_path / "inventory.toml"), "config", "check"],
        env={"INVENTORY_ACCOUNTS": json.dumps([{"id": ACCOUNT, "api_token": TOKEN}])},
    )
    assert result.exit_code == 0, result.output
    assert "retry_max_time is deprecated" in result.stderr
    assert TOKEN not in result.output

    (tmp_path / "inventory.toml").write_text('retry_max_time = "45s"\nrequest_deadline = 60\n')
    with pytest.raises(ConfigError, match="set request_deadline only"):
        load_settings(environ={}, cwd=tmp_path, require_accounts=False)


# The daemon: an account the API holds does not hold the next cycle.


@pytest.mark.slow
def test_a_held_account_fails_at_its_deadline_and_the_next_cycle_runs(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    held = sim.account_ids[0]
    db = tmp_path / "inventory.db"
    db.write_bytes(sqlite_template.read_bytes())
    # The API answers nothing for the held account's servers listing: read_timeout (10 s)
    # alone would keep each sync 10 s; account_deadline stops it after 1.5 s.
    sim.faults.add(Fault(kind="hold", account_id=held, endpoint="servers", seconds=60))
    env = daemon_env(sim, api_url, f"sqlite:///{db}", tmp_path, account_deadline="1.5s")
    engine = make_engine(f"sqlite:///{db}", read_only=True)
    try:
        with running(env, tmp_path) as daemon:
            failed = wait_until(
                lambda: [r for r in runs(engine) if r.account_id == held and r.status == "failed"][
                    1:
                ],
                timeout=30,
            )
            sim.faults.release()
            assert daemon.stop() == 0, daemon.output()
    finally:
        sim.faults.release()
        engine.dispose()
    for run in failed:
        assert run.error_class == "DeadlineError"
        assert "stopped by account_deadline (1.5 s" in run.error_message
        assert f"/accounts/{held}/access/ai-controls/mcp/servers?page=1" in run.error_message
        assert (run.finished_at - run.started_at).total_seconds() < 6
    others = [r for r in runs(engine) if r.account_id != held]
    assert {r.status for r in others} == {"succeeded"}


def test_a_spent_deadline_stops_deletion_confirmation_rather_than_reading_as_unknown() -> None:
    clock = FakeClock()
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"success": True, "errors": [], "result": {"id": "p"}})

    account = account_deadline(5, clock)
    clock.now += 6
    with mock_client(clock, handler) as client, pytest.raises(DeadlineError) as caught:
        client.get_detail(
            f"/accounts/{ACCOUNT}/access/ai-controls/mcp/portals/p",
            headers={"Authorization": f"Bearer {TOKEN}"},
            credential_key="token:x",
            deadline=account,
        )
    assert not sent
    assert caught.value.setting == "account_deadline"
