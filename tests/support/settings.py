"""Settings as a user would write them: environment variables only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inventory.settings import Settings, load_settings
from inventory.simulator import SimulatedCloudflare


def settings_for(
    sim: SimulatedCloudflare, api_url: str, db_url: str, *, cwd: Path, **extra: Any
) -> Settings:
    """Settings for every account of ``sim`` at ``api_url``, storing into ``db_url``."""
    environ = {
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [
                {"id": account_id, "name": f"acct-{i}", "api_token": sim.api_token}
                for i, account_id in enumerate(sim.account_ids)
            ]
        ),
        "INVENTORY_MAX_RETRIES": "3",
        "INVENTORY_READ_TIMEOUT": "5",
        **{f"INVENTORY_{k.upper()}": str(v) for k, v in extra.items()},
    }
    return load_settings(environ=environ, cwd=cwd)
