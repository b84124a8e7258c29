"""Schema upgrades through Alembic, and the check that the schema matches the code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from inventory.errors import SchemaOutOfDateError

__all__ = ["current_revision", "ensure_current", "head_revision", "migrations_dir", "upgrade"]


def migrations_dir() -> Path:
    """The Alembic scripts: beside the package in a checkout, or in the working directory."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "migrations",
        Path.cwd() / "migrations",
    ):
        if (candidate / "env.py").is_file():
            return candidate
    msg = "cannot find the migrations/ directory (run from the project's checkout or image)"
    raise SchemaOutOfDateError(msg)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; returns (before, after)."""
    before = current_revision(engine)
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def ensure_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = f"at revision {current}" if current else "empty"
        msg = (
            f"the database schema is {where} but this version of inventory needs {head}: "
            "run `inventory db upgrade`"
        )
        raise SchemaOutOfDateError(msg)
