"""The daemon's start-up waits out a database that is down (stamina retries, like the client's
requests) and a signal ends the wait at once."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from inventory.daemon.startup import START_UP_WAITS, prepare_database
from inventory.db.engine import make_engine

ACCOUNT = "0123456789abcdef0123456789abcdef"


def _on_first_warning(action: Any) -> tuple[threading.Event, Any]:
    """A structlog processor that runs ``action`` at the first "database unreachable" line."""
    seen = threading.Event()

    def processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") == "database unreachable at start-up" and not seen.is_set():
            seen.set()
            action(event)
        raise structlog.DropEvent

    return seen, processor


def test_a_database_that_is_ready_is_prepared_at_once(engine: Engine) -> None:
    stopping = threading.Event()
    ready = prepare_database(engine, account_ids=[ACCOUNT], upgrade_schema=False, stopping=stopping)
    assert ready


def test_a_signal_ends_the_wait_for_a_database_that_is_down(tmp_path: Path) -> None:
    (tmp_path / "inventory.db").mkdir()  # a volume not mounted yet: the file cannot be opened
    engine = make_engine(f"sqlite:///{tmp_path / 'inventory.db'}")
    stopping = threading.Event()
    warnings: list[dict[str, Any]] = []

    def stop(event: dict[str, Any]) -> None:
        warnings.append(event)
        stopping.set()  # as SIGTERM does

    seen, processor = _on_first_warning(stop)
    structlog.configure(processors=[processor])
    try:
        ready = prepare_database(
            engine, account_ids=[ACCOUNT], upgrade_schema=False, stopping=stopping
        )
    finally:
        structlog.reset_defaults()
        engine.dispose()
    assert seen.is_set()
    assert not ready
    assert warnings[0]["retry_in_s"] == START_UP_WAITS[0]
    assert "unable to open database file" in warnings[0]["error"]


def test_start_up_goes_on_once_the_database_answers(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "inventory.db"
    path.mkdir()  # a volume not mounted yet: the file cannot be opened
    engine = make_engine(f"sqlite:///{path}")

    def come_up(_event: dict[str, Any]) -> None:
        path.rmdir()  # the volume is mounted, with a migrated database on it
        shutil.copyfile(sqlite_template, path)

    seen, processor = _on_first_warning(come_up)
    structlog.configure(processors=[processor])
    try:
        ready = prepare_database(
            engine, account_ids=[ACCOUNT], upgrade_schema=False, stopping=threading.Event()
        )
    finally:
        structlog.reset_defaults()
        engine.dispose()
    assert seen.is_set()
    assert ready
