"""Running `inventory` as a user does: a real process, its environment cleaned of ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from inventory.cli import Options
from inventory.cli.commands.reports import register
from inventory.simulator import SimulatedCloudflare

__all__ = ["INVENTORY", "accounts_env", "invoke_reports", "run"]

INVENTORY = [sys.executable, "-m", "inventory"]


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    base["INVENTORY_LOG_FORMAT"] = "json"
    return subprocess.run(
        [*INVENTORY, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
