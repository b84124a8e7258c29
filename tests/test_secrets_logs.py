"""What reaches a log line when something fails: frames without locals, secrets redacted.

The crash test raises, inside a real sync against the simulator over HTTP, an exception whose
message, args, notes and chained cause carry the token; the seam is the Syncer's page callback.
Both log formats are read as the process writes them (stderr).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from inventory.cli import app
from inventory.cloudflare.client import CloudflareClient
from inventory.daemon.service import open_client
from inventory.db import models
from inventory.errors import AuthError
from inventory.logs import configure_logging
from inventory.redaction import REDACTED, register_secret, scrub_event
from inventory.settings import load_settings
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from inventory.sync.syncer import Syncer
from tests.support.cli import run
from tests.support.faultkit import Clock
from tests.support.settings import settings_for

TOKEN = "cfut_LOGCANARY_token_4be1c07d"
SHORT = "s3kr1t"  # too short to be redacted: it must not reach a log by any other way
LOCAL_MARKER = "LOCALMARKER_only_in_a_frame_local"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


class PageHandlerError(RuntimeError):
    """A bug inside a sync: its message, args, notes and cause all carry the token."""


def _crashing_page_callback(token: str) -> Any:
    def on_page(account_id: str, endpoint: str, page: int, items: int) -> None:
        # A local only a traceback that renders locals would show (SHORT is not redacted).
        headers = {"Authorization": f"Bearer {token}", "X-Short": SHORT, "X-Mark": LOCAL_MARKER}
        try:
            headers["Authorization"].encode("ascii")
            (headers["Authorization"] + "é").encode("ascii")
        except UnicodeEncodeError as cause:  # its args hold the whole header value
            error = PageHandlerError(
                f"page {page} of {endpoint} failed for {token}", headers["Authorization"]
            )
            error.add_note(f"while sending {token!r}")
            raise error from cause

    return on_page


def _stored(engine: Engine) -> str:
    parts: list[str] = []
    with engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            parts.extend(json.dumps(list(row), default=str) for row in conn.execute(select(table)))
    return "\n".join(parts)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_crash_inside_a_sync_logs_type_scrubbed_message_and_frames_only(
    fmt: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = SimulatedCloudflare(seed=5, accounts=1, portals_per_account=2, api_token=TOKEN)
    with serve_in_thread(sim) as api_url:
        settings = settings_for(sim, api_url, db_url, cwd=tmp_path)
        configure_logging("debug", fmt)  # type: ignore[arg-type]
        capsys.readouterr()
        with open_client(settings) as client:
            syncer = Syncer(
                engine=engine, client=client, clock=Clock(), on_page=_crashing_page_callback(TOKEN)
            )
            (result,) = syncer.sync_all(settings.accounts)
    err = capsys.readouterr().err
    assert result.status == "failed"
    assert result.error_class == "PageHandlerError"
    assert result.error is not None
    assert REDACTED in result.error
    everything = "\n".join([err, result.error, _stored(engine)])
    for leaked in (TOKEN, SHORT, LOCAL_MARKER):
        assert leaked not in everything, (leaked, everything)
    assert "locals" not in err
    if fmt == "json":
        (crash,) = [json.loads(line) for line in err.splitlines() if '"sync crashed"' in line]
        boom, cause = crash["exception"]
        assert boom["exc_type"] == "PageHandlerError"
        assert f"failed for {REDACTED}" in boom["exc_value"]
        assert boom["exc_notes"] == [f"while sending '{REDACTED}'"]
        assert cause["exc_type"] == "UnicodeEncodeError"
        frames = boom["frames"]
        assert {frozenset(frame) for frame in frames} == {frozenset({"filename", "lineno", "name"})}
        assert frames[-1]["name"] == "on_page"
        assert any(frame["name"].endswith("sync_account") for frame in frames)
    else:
        assert "sync crashed" in err
        assert f"PageHandlerError: ('page 1 of portals failed for {REDACTED}'" in err
        assert "caused by:" in err
        assert "UnicodeEncodeError" in err
        assert ", in on_page" in err
        assert "sync_account" in err  # the frame that caught it
        assert "headers = {" not in err  # no source lines either


def test_the_scrubber_reaches_every_escape() -> None:
    secret = 'pw"with\\quote@and/slash'
    register_secret(secret)
    register_secret(TOKEN)

    class Holder:
        def __repr__(self) -> str:
            return f"Holder(token={TOKEN!r})"

    event = {
        "event": f"message with {TOKEN}",
        "nested": {"list": [{"deep": (TOKEN, {TOKEN})}], TOKEN: "as a key"},
        "bytes": b"Bearer " + TOKEN.encode(),
        "bytearray": bytearray(TOKEN.encode()),
        "exception": ValueError("failed", {"authorization": f"Bearer {TOKEN}"}),
        "object": Holder(),
        "repr_escaped": repr(secret),
        "json_escaped": json.dumps({"password": secret}),
        "url_encoded": "postgresql://u:pw%22with%5Cquote%40and%2Fslash@db/x",
        "plain": 12345678,
    }
    scrubbed = scrub_event(None, "info", event)
    rendered = repr(scrubbed)
    assert TOKEN not in rendered
    assert TOKEN.encode() not in scrubbed["bytes"]
    assert "quote@and" not in rendered
    assert "quote%40and" not in rendered
    assert "quote\\\\" not in rendered
    assert scrubbed["plain"] == 12345678
    assert scrubbed["exception"].startswith("ValueError('failed'")


def test_a_secret_registered_after_lines_were_scrubbed_is_scrubbed_too() -> None:
    # The patterns are compiled when a line needs them, not at each registration: one registered
    # later must still make them stale.
    first, later = "first-secret-" + "a" * 20, "later-secret-" + "b" * 20
    register_secret(first)
    assert scrub_event(None, "info", {"event": first})["event"] == REDACTED
    assert scrub_event(None, "info", {"event": later})["event"] == later
    register_secret(later)
    event = scrub_event(None, "info", {"event": f"{first} {later}", "raw": later.encode()})
    assert event == {"event": f"{REDACTED} {REDACTED}", "raw": REDACTED.encode()}


def test_short_secrets_are_left_alone_and_warned_about(tmp_path: Path) -> None:
    register_secret("short")
    assert scrub_event(None, "info", {"event": "a short story"})["event"] == "a short story"
    account = {"id": "a" * 32, "api_token": "tok123"}
    environ = {
        "INVENTORY_ACCOUNTS": json.dumps([account]),
        "INVENTORY_SECRETS_DIR": str(tmp_path),
        "INVENTORY_DATABASE_URL": "postgresql://inv:pw@db/inventory",
    }
    settings = load_settings(environ=environ, cwd=tmp_path)
    assert any("accounts[0]" in w and "api_token is shorter than 8" in w for w in settings.warnings)
    assert any("database_url: the password is shorter than 8" in w for w in settings.warnings)
    for warning in settings.warnings:
        assert "tok123" not in warning
        assert ":pw@" not in warning


def _invoke(cwd: Path, env: dict[str, str], *args: str) -> Any:
    cleared: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("INVENTORY_", "CLOUDFLARE_"))
    }
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env={**cleared, **env})
    finally:
        os.chdir(old)


@pytest.mark.parametrize(
    ("body", "mode", "warned"),
    [
        (f'[[accounts]]\nid = "{"a" * 32}"\napi_token = "{TOKEN}"\n', 0o644, True),
        (f'[[accounts]]\nid = "{"a" * 32}"\napi_token = "{TOKEN}"\n', 0o640, True),
        (f'[[accounts]]\nid = "{"a" * 32}"\napi_token = "{TOKEN}"\n', 0o600, False),
        ('database_url = "postgresql://inv:longpassword1@db/x"\n', 0o604, True),
        (f'[[accounts]]\nid = "{"a" * 32}"\napi_token_env = "CF_T"\n', 0o644, False),
    ],
)
def test_a_readable_config_file_holding_a_secret_is_warned_about_once(
    tmp_path: Path, body: str, mode: int, warned: bool
) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(body)
    path.chmod(mode)
    env = {
        "INVENTORY_SECRETS_DIR": str(tmp_path),
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "CF_T": TOKEN,
        "INVENTORY_LOG_FORMAT": "json",
    }
    if "database_url" in body:
        del env["INVENTORY_DATABASE_URL"]
        env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": "a" * 32, "api_token": TOKEN}])
    checked = _invoke(tmp_path, env, "config", "check", "--json")
    assert checked.exit_code == 0, checked.output
    expected = f"{path} holds a secret inline and is readable by group or others"
    assert (expected in checked.stderr) is warned, checked.stderr
    assert checked.stderr.count("readable by group or others") == int(warned)
    status = _invoke(tmp_path, env, "status")  # any start logs it, once
    lines = [json.loads(line) for line in status.stderr.splitlines() if "readable by" in line]
    assert len(lines) == int(warned), status.stderr
    assert all(line["level"] == "warning" for line in lines)
    assert TOKEN not in checked.output + status.output
    assert "longpassword1" not in checked.output + status.output


def test_the_client_refuses_a_header_it_cannot_send_before_building_the_request() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    with CloudflareClient(
        base_url="https://api.cloudflare.test/client/v4", transport=httpx.MockTransport(record)
    ) as client:
        for value in (f"Bearer {TOKEN}é", f"Bearer {TOKEN}\u200b", f"Bearer {TOKEN}\n"):
            with pytest.raises(AuthError) as caught:
                client.get_page(
                    f"/accounts/{'a' * 32}/access/ai-controls/mcp/portals",
                    params={"page": 1},
                    headers={"Authorization": value},
                    credential_key="k",
                )
            assert "not printable ASCII; not sent" in str(caught.value)
            assert TOKEN not in str(caught.value)
            assert caught.value.__cause__ is None
            assert caught.value.__context__ is None
    assert sent == []


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_standard_library_records_get_the_same_treatment(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """APScheduler reports a job's exception through logging, not structlog."""
    register_secret(TOKEN)
    configure_logging("info", fmt)  # type: ignore[arg-type]
    capsys.readouterr()
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Mark": LOCAL_MARKER}
    try:
        raise ValueError(f"job failed with {headers['Authorization']}")
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception(
            "Job %r raised an exception", f"sync {TOKEN}"
        )
    err = capsys.readouterr().err
    assert "raised an exception" in err
    assert "ValueError: job failed with Bearer [redacted]" in err or (
        '"exc_value": "job failed with Bearer [redacted]"' in err
    )
    for leaked in (TOKEN, LOCAL_MARKER, "locals"):
        assert leaked not in err, err


@pytest.mark.parametrize("args", [["changes", "--account", "prod"], ["status", "-a", "prod"]])
def test_a_command_that_reads_its_settings_twice_warns_once(
    tmp_path: Path, db_url: str, args: list[str]
) -> None:
    account = {"id": "a" * 32, "name": "prod", "api_token": "tok123"}
    env = {
        "INVENTORY_ACCOUNTS": json.dumps([account]),
        "INVENTORY_SECRETS_DIR": str(tmp_path),
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_LOG_FORMAT": "json",
    }
    result = run(args, tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("api_token is shorter than 8") == 1, result.stderr
