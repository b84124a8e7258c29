"""Secrets never leave the process, whatever fails: the canary matrix.

Every way a credential can be given by every malformed variant of it by every command that reads
it: the canary (the valid part of the secret) is in no output, no table, no metric and no
exception message, and no output holds a traceback. A secret file's byte-order mark and one final
line ending are stripped, so those cells sync; every other cell is a configuration error (exit 2)
that names the account, the setting, and the position and kind of the offending character.

Commands run in-process through typer's CliRunner (the real CLI, configured only by environment
and files); the daemon's cycle, where one runs, is a real ``inventory run`` process.

Webhook targets' URL and secret: NOTIFY_WAYS, at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from inventory.cli import app
from inventory.db import models
from inventory.db.engine import make_engine
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from tests.support.receiver import Status, receiving

pytestmark = [pytest.mark.slow, pytest.mark.parallel]  # daemons on free ports, 60 s deadlines

CANARY = "cfut_MATRIXCANARY_5e0d17a9b2"
EMAIL_CANARY = "josé-matrixcanary@example.com"
ACCOUNT = SimulatedCloudflare(seed=11, accounts=1, portals_per_account=2).account_ids[0]
MIDDLE = len(CANARY) // 2


@dataclass(frozen=True)
class Variant:
    name: str
    value: str  # what the user's value holds
    file_bytes: bytes  # what a secret file holds for this variant
    stripped_in_files: bool  # a file's BOM and one final line ending are dropped
    kind: str  # the message's description of the first offending character
    position: int


def _middle(char: str) -> str:
    return CANARY[:MIDDLE] + char + CANARY[MIDDLE:]


VARIANTS = [
    Variant(
        "non-ascii",
        _middle("é"),
        _middle("é").encode(),
        False,
        "a non-ASCII character (U+00E9)",
        MIDDLE + 1,
    ),
    Variant(
        "bom",
        "\ufeff" + CANARY,
        ("\ufeff" + CANARY).encode(),
        True,
        "a byte-order mark (U+FEFF)",
        1,
    ),
    Variant(
        "crlf",
        CANARY + "\r\n",
        (CANARY + "\r\n").encode(),
        True,
        "a carriage return (U+000D)",
        len(CANARY) + 1,
    ),
    Variant(
        "zero-width-space",
        _middle("\u200b"),
        _middle("\u200b").encode(),
        False,
        "a zero-width space (U+200B)",
        MIDDLE + 1,
    ),
    Variant("nul", _middle("\0"), _middle("\0").encode(), False, "a NUL character (U+0000)", 0),
    Variant(
        "newline",
        _middle("\n"),
        _middle("\n").encode(),
        False,
        "a line feed (newline) (U+000A)",
        MIDDLE + 1,
    ),
]
for _v in VARIANTS:  # NUL's position, filled in here to keep the table short
    object.__setattr__(_v, "position", _v.position or MIDDLE + 1)


@dataclass
class Home:
    """One cell's working directory, environment and expectations."""

    path: Path
    env: dict[str, str]
    setting: str  # the setting named in the error


def _toml(path: Path, body: str) -> None:
    (path / "inventory.toml").write_text(body)
    (path / "inventory.toml").chmod(0o600)


def _account_toml(line: str) -> str:
    return f'[[accounts]]\nid = "{ACCOUNT}"\n{line}\n'


# JSON escapes are TOML escapes too: json.dumps gives a TOML basic string for any value.
def _inline(home: Home, variant: Variant) -> None:
    _toml(home.path, _account_toml(f"api_token = {json.dumps(variant.value)}"))
    home.setting = "api_token"


def _env(home: Home, variant: Variant) -> None:
    _toml(home.path, _account_toml('api_token_env = "CF_MATRIX_TOKEN"'))
    home.env["CF_MATRIX_TOKEN"] = variant.value
    home.setting = "api_token_env (env CF_MATRIX_TOKEN)"


def _file(home: Home, variant: Variant) -> None:
    (home.path / "token").write_bytes(variant.file_bytes)
    _toml(home.path, _account_toml('api_token_file = "token"'))
    home.setting = f"api_token_file (file {home.path / 'token'})"


def _secrets_dir(home: Home, variant: Variant) -> None:
    document = json.dumps([{"id": ACCOUNT, "api_token": CANARY}])
    if variant.stripped_in_files:  # the file itself carries the BOM or CRLF
        data = variant.file_bytes.replace(CANARY.encode(), document.encode())
    else:
        data = json.dumps([{"id": ACCOUNT, "api_token": variant.value}]).encode()
    (home.path / "secrets" / "inventory_accounts").write_bytes(data)
    home.setting = "api_token"


def _inventory_accounts(home: Home, variant: Variant) -> None:
    home.env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": ACCOUNT, "api_token": variant.value}])
    home.setting = "api_token"


def _cloudflare(home: Home, variant: Variant) -> None:
    home.env.update(CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_TOKEN=variant.value)
    home.setting = "api_token_env (env CLOUDFLARE_API_TOKEN)"


WAYS: dict[str, Callable[[Home, Variant], None]] = {
    "inline": _inline,
    "_env": _env,
    "_file": _file,
    "secrets-dir": _secrets_dir,
    "INVENTORY_ACCOUNTS": _inventory_accounts,
    "CLOUDFLARE_*": _cloudflare,
}
FILE_WAYS = {"_file", "secrets-dir"}
ENV_WAYS = {"_env", "CLOUDFLARE_*"}  # an environment variable cannot hold a NUL


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[SimulatedCloudflare, str]]:
    sim = SimulatedCloudflare(seed=11, accounts=1, portals_per_account=2, api_token=CANARY)
    assert sim.account_ids == [ACCOUNT]
    with serve_in_thread(sim) as url:
        yield sim, url


def _home(tmp_path: Path, api_url: str) -> Home:
    (tmp_path / "secrets").mkdir()
    env = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'inventory.db'}",
        "INVENTORY_SECRETS_DIR": str(tmp_path / "secrets"),
        "INVENTORY_MAX_RETRIES": "0",
    }
    return Home(tmp_path, env, "")


def _invoke(home: Home, *args: str) -> tuple[int, str]:
    """The CLI in-process, with only this cell's environment; exit code and all output."""
    cleared: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("INVENTORY_", "CLOUDFLARE_"))
    }
    old = Path.cwd()
    os.chdir(home.path)
    try:
        result = CliRunner().invoke(app, list(args), env={**cleared, **home.env})
    finally:
        os.chdir(old)
    output = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\nexception {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, output


COMMANDS = [
    ("config", "check"),
    ("config", "check", "--json"),
    ("--log-level", "debug", "--log-format", "json", "sync"),
    ("--log-level", "debug", "--log-format", "console", "sync"),
    ("status",),
    ("--log-level", "debug", "--log-format", "json", "doctor"),
    ("doctor", "--json"),
]


def _stored(url: str) -> str:
    engine: Engine = make_engine(url)
    parts: list[str] = []
    with engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            parts.extend(json.dumps(list(row), default=str) for row in conn.execute(select(table)))
    engine.dispose()
    return "\n".join(parts)


def _assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked:\n{text}"
    assert "Traceback" not in text, text
    assert "locals" not in text.lower(), text


def _one_daemon_cycle(home: Home) -> str:
    """``inventory run`` until the account's first sync is logged; its log and /metrics."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))},
        **home.env,
        "INVENTORY_LOG_FORMAT": "json",
        "INVENTORY_LOG_LEVEL": "debug",
        "INVENTORY_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "INVENTORY_SYNC_INTERVAL": "1",  # the one-shot syncs counted for the current cycle
    }
    log = home.path / "daemon.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inventory", "run", "--upgrade"],
            cwd=home.path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while '"account synced"' not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                metrics: str = r.read().decode()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "inventory_sync_runs_total" in metrics
    text: str = log.read_text(errors="replace")
    return text + metrics


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("way", list(WAYS))
def test_canary_matrix(
    way: str, variant: Variant, api: tuple[SimulatedCloudflare, str], tmp_path: Path
) -> None:
    if way in ENV_WAYS and variant.name == "nul":
        pytest.skip("an environment variable cannot hold a NUL character")
    sim, api_url = api
    home = _home(tmp_path, api_url)
    WAYS[way](home, variant)
    accepted = way in FILE_WAYS and variant.stripped_in_files
    outputs: list[str] = []
    if accepted:
        code, text = _invoke(home, "db", "upgrade")
        assert code == 0, text
    for args in COMMANDS:
        code, text = _invoke(home, *args)
        outputs.append(text)
        if accepted:
            assert code == 0, (args, text)
        else:
            assert code == 2, (args, text)
            assert f"accounts[0] ({ACCOUNT}): {home.setting} holds {variant.kind}" in text, text
            assert f"at position {variant.position}" in text, text
    if accepted:
        assert '"account synced"' in outputs[2]
        assert "account synced" in outputs[3]
        assert {r.auth for r in sim.requests} == {"bearer"}
        assert {r.status for r in sim.requests} == {200}
        outputs.append(_one_daemon_cycle(home))
        outputs.append(_stored(home.env["INVENTORY_DATABASE_URL"]))
    else:
        code, text = _invoke(home, "run")
        assert code == 2, text
        outputs.append(text)
    _assert_clean("\n".join(outputs), CANARY, variant.value)


EMAIL_WAYS: dict[str, Callable[[Home], object]] = {
    "inline": lambda home: _toml(
        home.path,
        _account_toml(f'api_email = "{EMAIL_CANARY}"\napi_key = "{CANARY}"'),
    ),
    "secrets-dir": lambda home: (home.path / "secrets" / "inventory_accounts").write_text(
        json.dumps([{"id": ACCOUNT, "api_email": EMAIL_CANARY, "api_key": CANARY}])
    ),
    "INVENTORY_ACCOUNTS": lambda home: home.env.update(
        INVENTORY_ACCOUNTS=json.dumps(
            [{"id": ACCOUNT, "api_email": EMAIL_CANARY, "api_key": CANARY}]
        )
    ),
    "CLOUDFLARE_*": lambda home: home.env.update(
        CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_EMAIL=EMAIL_CANARY, CLOUDFLARE_API_KEY=CANARY
    ),
}


@pytest.mark.parametrize("way", list(EMAIL_WAYS))
def test_an_email_with_an_accent_is_refused_at_every_command(
    way: str, api: tuple[SimulatedCloudflare, str], tmp_path: Path
) -> None:
    home = _home(tmp_path, api[1])
    EMAIL_WAYS[way](home)
    outputs = []
    for args in [*COMMANDS, ("run",)]:
        code, text = _invoke(home, *args)
        assert code == 2, (args, text)
        assert (
            f"accounts[0] ({ACCOUNT}): api_email: holds a non-ASCII character (U+00E9) "
            "at position 4" in text
        ), text
        outputs.append(text)
    _assert_clean("\n".join(outputs), CANARY, EMAIL_CANARY, "matrixcanary")


# --- webhook targets: the URL and the secret -----------------------------------------------------

URL_CANARY = "T0URLCANARY_B1c9d2e7f4"
HOOK_CANARY = "whsec_HOOKCANARY_77ab1e0c"


def _notify_inline(home: Home, url: str, secret: str) -> None:
    _toml(
        home.path,
        _account_toml(f'api_token = "{CANARY}"')
        + f'\n[[notify]]\nname = "sec"\nurl = {json.dumps(url)}\nsecret = {json.dumps(secret)}\n',
    )
    home.setting = "secret"


def _notify_env(home: Home, url: str, secret: str) -> None:
    _toml(
        home.path,
        _account_toml(f'api_token = "{CANARY}"')
        + '\n[[notify]]\nname = "sec"\nurl_env = "HOOK_URL"\nsecret_env = "HOOK_SECRET"\n',
    )
    home.env.update(HOOK_URL=url, HOOK_SECRET=secret)
    home.setting = "secret_env (env HOOK_SECRET)"


def _notify_file(home: Home, url: str, secret: str) -> None:
    (home.path / "hook-url").write_text(url + "\n")
    (home.path / "hook-secret").write_bytes(secret.encode())
    _toml(
        home.path,
        _account_toml(f'api_token = "{CANARY}"')
        + '\n[[notify]]\nname = "sec"\nurl_file = "hook-url"\nsecret_file = "hook-secret"\n',
    )
    home.setting = f"secret_file (file {home.path / 'hook-secret'})"


def _notify_json(home: Home, url: str, secret: str) -> None:
    home.env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": ACCOUNT, "api_token": CANARY}])
    home.env["INVENTORY_NOTIFY"] = json.dumps([{"name": "sec", "url": url, "secret": secret}])
    home.setting = "secret"


def _notify_secrets_dir(home: Home, url: str, secret: str) -> None:
    home.env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": ACCOUNT, "api_token": CANARY}])
    (home.path / "secrets" / "inventory_notify").write_text(
        json.dumps([{"name": "sec", "url": url, "secret": secret}])
    )
    home.setting = "secret"


NOTIFY_WAYS: dict[str, Callable[[Home, str, str], None]] = {
    "inline": _notify_inline,
    "_env": _notify_env,
    "_file": _notify_file,
    "INVENTORY_NOTIFY": _notify_json,
    "secrets-dir": _notify_secrets_dir,
}
NOTIFY_COMMANDS = [
    ("config", "check"),
    ("config", "check", "--json"),
    ("--log-level", "debug", "--log-format", "json", "sync"),
    ("--log-level", "debug", "--log-format", "console", "notify", "pending"),
    ("notify", "pending", "--json"),
    ("--log-level", "debug", "notify", "test"),
    ("--log-level", "debug", "--log-format", "json", "notify", "deliver", "--budget", "0"),
    ("status",),
    ("status", "--json"),
    ("status", "--csv"),
]


@pytest.mark.parametrize("way", list(NOTIFY_WAYS))
def test_webhook_url_and_secret_never_leave_the_process(
    way: str, api: tuple[SimulatedCloudflare, str], tmp_path: Path
) -> None:
    with receiving() as receiver:
        url = f"{receiver.url}/{URL_CANARY}"
        home = _home(tmp_path, api[1])
        NOTIFY_WAYS[way](home, url, HOOK_CANARY)
        # failures speak: a 500 then a 400 (dead) for the sync's event, a 400 to the test event
        receiver.answers.extend([Status(500), Status(400), Status(400)])
        code, text = _invoke(home, "db", "upgrade")
        assert code == 0, text
        outputs = []
        for args in NOTIFY_COMMANDS:
            code, text = _invoke(home, *args)
            outputs.append(text)
            assert code in (0, 1), (args, text)
        outputs.append(_stored(home.env["INVENTORY_DATABASE_URL"]))
    assert receiver.requests, outputs
    for request in receiver.requests:
        assert request.path == f"/hook/{URL_CANARY}"
        expected = (
            "sha256=" + hmac.new(HOOK_CANARY.encode(), request.body, hashlib.sha256).hexdigest()
        )
        assert request.headers["x-inventory-signature"] == expected
    assert "sec: failed: HTTP 400" in outputs[5]
    assert "will retry" in outputs[2]  # the failures were logged, and the logs are clean
    assert "notification dead" in outputs[2]
    assert '"dead": 1' in outputs[4]
    assert '"notify_dead": 1' in outputs[8]  # status --json counts what is dead, by account
    _assert_clean("\n".join(outputs), URL_CANARY, HOOK_CANARY, CANARY)


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS if not v.stripped_in_files and v.name != "nul"],
    ids=lambda v: v.name,
)
@pytest.mark.parametrize("way", ["inline", "_env", "INVENTORY_NOTIFY"])
def test_a_malformed_webhook_secret_is_named_never_shown(
    way: str, variant: Variant, api: tuple[SimulatedCloudflare, str], tmp_path: Path
) -> None:
    home = _home(tmp_path, api[1])
    NOTIFY_WAYS[way](home, "https://hooks.example.com/" + URL_CANARY, variant.value)
    outputs = []
    for args in [("config", "check"), ("sync",), ("notify", "test"), ("run",)]:
        code, text = _invoke(home, *args)
        assert code == 2, (args, text)
        assert f"notify[0]: {home.setting}" in text, text
        assert f"holds {variant.kind}" in text, text
        outputs.append(text)
    _assert_clean("\n".join(outputs), URL_CANARY, CANARY, variant.value)
