"""The Compose entrypoint outside Docker: secrets written private to another user (``umask 077``,
as the docs have the operator do) are read as root, and inventory then runs as uid 10001.

Needs root (to own files as other users and to drop privileges): skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.entrypoint import _arguments, _user

HOST_USER = 12345  # the operator who wrote the secret files
RUN_AS = 10001  # the image's user

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to change users"
)


@pytest.fixture
def base() -> Iterator[Path]:
    # Not under pytest's tmp_path, whose parents only root may enter.
    where = Path(tempfile.mkdtemp(prefix="inventory-entrypoint-", dir="/tmp"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def entrypoint(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory.entrypoint", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # three processes: the entrypoint, the command it drops privileges for, id
@needs_root
def test_the_entrypoint_reads_private_secrets_then_runs_unprivileged(base: Path) -> None:
    host = base / "host-secrets"
    host.mkdir(mode=0o700)
    data = base / "data"
    data.mkdir(mode=0o700)
    os.chown(data, RUN_AS, RUN_AS)
    database = data / "inventory.db"
    secrets = {
        "inventory_database_url": f"sqlite:///{database}\n",
        "cf_token": "a-cloudflare-token-1234\n",
    }
    for name, value in secrets.items():
        fd = os.open(host / name, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, value.encode())
        os.close(fd)
        os.chown(host / name, HOST_USER, HOST_USER)
    os.chown(host, HOST_USER, HOST_USER)
    copies = base / "secrets"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        INVENTORY_SECRETS_DIR=str(copies),
        INVENTORY_LOG_FORMAT="json",
        INVENTORY_ACCOUNTS=json.dumps(
            [{"id": "a" * 32, "name": "prod", "api_token_file": str(copies / "cf_token")}]
        ),
    )
    ours = [
        "--secrets-from",
        str(host),
        "--secrets-to",
        str(copies),
        "--user",
        f"{RUN_AS}:{RUN_AS}",
    ]

    # Without the copy, the unprivileged user cannot read what the operator wrote: the bug.
    as_is = entrypoint(
        "--user", f"{RUN_AS}:{RUN_AS}", "--", "config", "check",
        env=dict(env, INVENTORY_SECRETS_DIR=str(host)), cwd=base,
    )  # fmt: skip
    assert as_is.returncode == 2
    assert "Permission denied" in as_is.stderr

    upgraded = entrypoint(*ours, "--", "db", "upgrade", env=env, cwd=base)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database upgraded from empty" in upgraded.stdout
    # The database URL came from the secret, and the process that created the file was 10001.
    assert database.stat().st_uid == RUN_AS

    checked = entrypoint(*ours, "--", "config", "check", "--json", env=env, cwd=base)
    assert checked.returncode == 0, checked.stderr
    assert "a-cloudflare-token" not in checked.stdout
    (account,) = json.loads(checked.stdout)["accounts"]
    assert account["name"] == "prod"

    for name, value in secrets.items():
        original = (host / name).stat()
        assert (original.st_uid, oct(original.st_mode & 0o777)) == (HOST_USER, "0o600")
        copy = (copies / name).stat()
        assert (copy.st_uid, copy.st_gid, oct(copy.st_mode & 0o777)) == (RUN_AS, RUN_AS, "0o400")
        assert (copies / name).read_text() == value
    assert (copies.stat().st_uid, oct(copies.stat().st_mode & 0o777)) == (RUN_AS, "0o700")


def test_the_entrypoint_arguments() -> None:
    options, command = _arguments(["--secrets-from", "/run/host-secrets", "--", "run", "--upgrade"])
    assert options.secrets_from == Path("/run/host-secrets")
    assert options.secrets_to == Path("/run/secrets")
    assert command == ["run", "--upgrade"]
    assert _user("10001:10001") == (10001, 10001)
    assert _user("10001") == (10001, 10001)
    with pytest.raises(SystemExit, match="must not be root"):
        _user("0:0")
    with pytest.raises(SystemExit, match="no user"):
        _user("no-such-user-here")
