"""The daemon's start-up: the schema checked (or upgraded) and the runs left behind closed,
waiting out a database that is down.

Retried by stamina, like the client's requests; the wait is the stop event's, so a signal ends
it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import stamina
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inventory.db.migrate import ensure_current, upgrade
from inventory.db.runs import close_abandoned_runs, mark_unconfigured
from inventory.sync.outcome import describe_error
from inventory.sync.syncer import utc_now

__all__ = ["START_UP_WAITS", "prepare_database"]

log = structlog.get_logger("inventory.daemon")
# Seconds between attempts to reach the database at start-up: doubling, then every 30 s.
START_UP_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


def prepare_database(
    engine: Engine, *, account_ids: Sequence[str], upgrade_schema: bool, stopping: threading.Event
) -> bool:
    """True once the database is ready; False when ``stopping`` was set first."""
    waits = iter(START_UP_WAITS)

    def database_down(exc: Exception) -> bool | float:
        """stamina's predicate: wait (or until a signal) and try again, or give up."""
        if not isinstance(exc, SQLAlchemyError):
            return False
        delay = next(waits, START_UP_WAITS[-1])
        reason = describe_error(exc, database="")
        log.warning("database unreachable at start-up", error=reason, retry_in_s=delay)
        if stopping.wait(delay):
            return False
        return 0.0  # waited already, on the stop event

    try:
        for attempt in stamina.retry_context(on=database_down, attempts=None, timeout=None):
            with attempt:
                if stopping.is_set():
                    return False
                _check_database(engine, account_ids, upgrade_schema=upgrade_schema)
    except SQLAlchemyError:  # given up: a signal came while the database was down
        return False
    return True


def _check_database(engine: Engine, account_ids: Sequence[str], *, upgrade_schema: bool) -> None:
    if upgrade_schema:
        before, after = upgrade(engine)
        if before != after:
            log.info("schema upgraded", before=before, after=after)
    else:
        ensure_current(engine)
    mark_unconfigured(engine, list(account_ids))
    close_abandoned_runs(engine, now=utc_now())
