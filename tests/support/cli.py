"""Running `inventory` as a user does, its environment cleaned of ours: in-process by default
(``run``), or as a real process (``run(..., process=True)``) where the process is what a test is
about (signals, start-up, what the interpreter prints when the program crashes)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import structlog
import typer
from typer.testing import CliRunner

from inventory.cli import Options, app
from inventory.cli.commands.reports import register
from inventory.simulator import SimulatedCloudflare

__all__ = ["INVENTORY", "accounts_env", "invoke_reports", "run"]

INVENTORY = [sys.executable, "-m", "inventory"]
_OURS = ("INVENTORY_", "CLOUDFLARE_")


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, *, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """``inventory ARGS`` in ``cwd`` with ``env`` (plus JSON logs) and none of our variables.

    In-process it is the same app as the command's (``inventory.cli.app``), some 20 times
    quicker than a process; an exception that escapes it is printed as the process would print
    it (a traceback on stderr, exit 1), so "no traceback" assertions hold either way.
    """
    wanted = {"INVENTORY_LOG_FORMAT": "json", **(env or {})}
    if process:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        return subprocess.run(
            [*INVENTORY, *args],
            cwd=cwd,
            env={**base, **wanted},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return _in_process(args, cwd, wanted)


def _in_process(
    args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_OURS)}
    saved_logging = structlog.get_config(), logging.getLogger().handlers[:]
    saved_level = logging.getLogger().level
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, args, env={**unset, **env}, prog_name="inventory")
    finally:
        os.chdir(before)
        structlog.configure(**saved_logging[0])
        logging.getLogger().handlers[:] = saved_logging[1]
        logging.getLogger().setLevel(saved_level)
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
        code = 1
    return subprocess.CompletedProcess([*INVENTORY, *args], code, result.stdout, stderr)


def accounts_env(sim: SimulatedCloudflare, api_url: str, db_url: str) -> dict[str, str]:
    return {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [{"id": a, "api_token": sim.api_token} for a in sim.account_ids]
        ),
    }


def invoke_reports(db_url: str, *args: str) -> Any:
    """The report commands in-process, on an app built with ``register`` as the CLI's is."""
    app = typer.Typer()

    @app.callback()
    def _global(ctx: typer.Context) -> None:
        ctx.obj = Options({"database_url": db_url}, None)

    register(app)
    return CliRunner().invoke(app, list(args), env={"INVENTORY_LOG_FORMAT": "json"})
