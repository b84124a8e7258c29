"""``inventory simulate`` as a user starts it: its banner only once the port is its own, with
commands that work as printed; a bad or busy port is one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.cli import INVENTORY, run
from tests.support.daemon import free_port


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "0"], "--port"),
        (["--accounts", "0"], "--accounts"),
    ],
)
def test_an_impossible_option_is_a_usage_error(tmp_path: Path, args: list[str], named: str) -> None:
    done = run(["simulate", *args], tmp_path)
    assert done.returncode == 2
    assert named in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "token:" not in done.stdout


def test_a_busy_port_prints_no_banner_only_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["simulate", "--port", str(port)], tmp_path, process=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use"
    ]
    assert done.stdout == ""  # no URL, token or "try" for a server that is not there


def test_the_banner_comes_once_serving_and_its_commands_work(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    server = subprocess.Popen(
        [*INVENTORY, "simulate", "--port", str(port), "--accounts", "1"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        for line in server.stdout:  # the banner is printed once the port is bound
            lines.append(line.strip())
            if "inventory sync" in line:
                break
        base = f"http://127.0.0.1:{port}/client/v4"
        assert lines[0] == f"simulated Cloudflare API at {base}"
        assert httpx.get(f"{base}/accounts/x/access/ai-controls/mcp/portals").status_code in (
            400,
            401,
            403,
            404,
        )
        export, then = lines[-2], lines[-1]
        assert then == "inventory db upgrade && inventory sync"
        assert export.startswith("export ")
        # The commands as printed, in a shell: the schema first, then a sync that succeeds.
        done = subprocess.run(
            ["bash", "-c", f"{export}; {then.replace('inventory', ' '.join(INVENTORY))}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "inventory.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
