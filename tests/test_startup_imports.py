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


_SEEN: dict[tuple[str, ...], set[str]] = {}  # one process per command for the module


def imported_modules(args: list[str], cwd: Path) -> set[str]:
    if tuple(args) not in _SEEN:
        _SEEN[tuple(args)] = _imported_modules(args, cwd)
    return _SEEN[tuple(args)]


def _imported_modules(args: list[str], cwd: Path) -> set[str]:
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
    return set(re.findall(r"^import time:.*\|\s+([\w.]+)$", done.stderr, re.MULTILINE))


def imported(args: list[str], cwd: Path) -> set[str]:
    """The top-level packages ``inventory ARGS`` imports."""
    return {name.split(".")[0] for name in imported_modules(args, cwd)}


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


def test_config_check_loads_neither_the_reports_nor_the_daemon(tmp_path: Path) -> None:
    """`config check` prints one table: not the history's tables (inventory.reports pulls in the
    change plan), not the daemon, the database layer or the sync (but its pure ``outcome``, for
    ``describe_error``), and not rich's emoji codes (3,600 of them, read to look for a
    ``:code:`` in a string; the table's cells are Text)."""
    modules = imported_modules(["config", "check"], tmp_path)
    unwanted = ("inventory.reports", "inventory.daemon", "inventory.db", "rich._emoji_codes")
    loaded = sorted(
        m
        for m in modules
        if m.startswith(unwanted)
        or (m.startswith("inventory.sync.") and m != "inventory.sync.outcome")
    )
    assert not loaded, f"inventory config check imports {loaded}"
