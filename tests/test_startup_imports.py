"""Commands import what they use: `--help` and `config check` load no database, HTTP or logging
stack (start-up time; the figures come from `python -m benchmarks.startup`, not from a test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "httpx", "structlog", "apscheduler", "alembic", "psycopg", "stamina")


def imported(args: list[str], cwd: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    env["INVENTORY_ACCOUNTS"] = json.dumps([{"id": "0" * 32, "api_token": "t" * 40}])
    env["INVENTORY_DATABASE_URL"] = "postgresql://inventory:secretpassword@db/inventory"
    env["INVENTORY_SECRETS_DIR"] = str(cwd)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "inventory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        match[1].split(".")[0]
        for match in re.finditer(r"^import time:.*\|\s+([\w.]+)$", done.stderr, re.MULTILINE)
    }


@pytest.mark.parametrize(
    ("args", "also_absent"),
    [
        (["--help"], ("rich", "pydantic")),
        (["changes", "--help"], ("rich",)),
        (["config", "check"], ()),
        (["config", "check", "--json"], ()),
    ],
)
def test_a_command_imports_only_what_it_uses(
    tmp_path: Path, args: list[str], also_absent: tuple[str, ...]
) -> None:
    modules = imported(args, tmp_path)
    assert "inventory" in modules
    loaded = sorted(set(HEAVY + also_absent) & modules)
    assert not loaded, f"inventory {' '.join(args)} imports {loaded}"
