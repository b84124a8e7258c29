"""Schema upgrades through Alembic, and the check that the schema matches the code."""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from inventory.errors import SchemaOutOfDateError

__all__ = [
    "current_revision",
    "ensure_current",
    "head_revision",
    "known_revision",
    "migrations_dir",
    "upgrade",
]


def migrations_dir() -> Path:
    """The Alembic scripts, shipped inside the package as ``inventory/_migrations``.

    In a checkout (and an editable install) that is a link to the top-level ``migrations/``; a
    wheel carries a copy, so any directory works. A checkout without symbolic links (``git
    config core.symlinks false``) still has the top-level directory beside the package.
    """
    shipped = files("inventory").joinpath("_migrations")
    for candidate in (shipped, Path(__file__).resolve().parents[2] / "migrations"):
        if isinstance(candidate, Path) and (candidate / "env.py").is_file():
            return candidate.resolve()
    msg = (
        f"this installation of inventory has no migrations ({shipped} is missing): "
        "reinstall it from a wheel or the project's checkout"
    )
    raise SchemaOutOfDateError(msg)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process (they ship with the code; reading them again
    for every schema check cost each command and each daemon engine some 20 ms)."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (else a newer version wrote it)."""
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


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
