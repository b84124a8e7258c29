"""The global options every command shares, and the settings they load."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

if TYPE_CHECKING:  # a hint only: importing pydantic costs `--help` start-up time
    from inventory.settings import Settings

__all__ = ["Options", "options"]


class Options:
    """Global options, passed on to the settings as the highest-priority source."""

    def __init__(self, overrides: dict[str, object], config: Path | None) -> None:
        self.overrides = overrides
        self.config = config
        self._warned: set[str] = set()  # a command may load the settings several times

    def settings(self, *, require_accounts: bool = True, log_warnings: bool = True) -> Settings:
        """Load the settings and configure logging; warnings are logged once, here.

        ``log_warnings=False``: a command that logs nothing and prints the warnings itself;
        logging is not configured (structlog is not even imported).
        """
        settings = self.load(require_accounts=require_accounts)
        if not log_warnings:  # the command shows them itself and logs nothing (start-up time)
            return settings
        import structlog  # lazily: start-up time of the commands that log nothing

        from inventory.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        log = structlog.get_logger("inventory.settings")
        for warning in settings.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning(warning)
        return settings

    def load(self, *, require_accounts: bool = True) -> Settings:
        """The settings from every source, read afresh (the daemon's SIGHUP reads them again)."""
        from inventory.settings import load_settings  # lazily: pydantic costs `--help` time

        return load_settings(
            overrides=self.overrides,
            environ=dict(os.environ),
            config=self.config,
            require_accounts=require_accounts,
        )


def options(ctx: typer.Context) -> Options:
    """The global options the main callback put on the context."""
    return cast(Options, ctx.obj)
