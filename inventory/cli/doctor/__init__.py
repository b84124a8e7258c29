"""``inventory doctor``: is this setup ready for its first sync?

The database: reachable, its schema at this code's revision, and writable (a write in a
transaction that is rolled back). For each account, one real request, the first portal of the
listing (``per_page=1``), through the client a sync uses (base URL, TLS settings, headers): the
credential works and has MCP Portals Read; then, from that response, the rate-limit budget the
credential has left and the clock's skew against the response's ``Date``.

Each check is one line; a check that does not pass says what to do about it. ``warn`` is worth
reading but does not stop a sync; ``skip`` could not be checked because an earlier check failed
or the server said nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from inventory.cli.doctor.account import check_account
from inventory.cli.doctor.check import Check, Status, doctor_lines
from inventory.cli.doctor.database import check_database
from inventory.cloudflare.client import CloudflareClient
from inventory.daemon.service import open_client

if TYPE_CHECKING:
    from inventory.settings import AccountConfig, Settings

__all__ = ["Check", "Status", "check_account", "check_database", "doctor_lines", "run_doctor"]

# A doctor answers in seconds: at most one retry, and a short deadline per request.
DOCTOR_MAX_RETRIES, DOCTOR_REQUEST_DEADLINE = 1, 10.0


def run_doctor(
    settings: Settings,
    accounts: Sequence[AccountConfig],
    *,
    client_factory: Callable[[Settings], CloudflareClient] | None = None,
) -> list[Check]:
    """Every check, the database's first, then each account's in configuration order."""
    checks = check_database(settings.database_url_secret(), shown=str(settings.database_url))
    if not accounts:
        return checks
    if client_factory is None:
        client_factory = open_client
    quick = settings.model_copy(
        update={
            "max_retries": min(settings.max_retries, DOCTOR_MAX_RETRIES),
            "request_deadline": min(settings.request_deadline, DOCTOR_REQUEST_DEADLINE),
        }
    )
    with (
        client_factory(quick) as client,
        ThreadPoolExecutor(
            max_workers=max(1, min(settings.max_concurrency, len(accounts)))
        ) as pool,
    ):
        for found in pool.map(lambda account: check_account(client, account), accounts):
            checks.extend(found)
    return checks
