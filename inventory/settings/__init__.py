"""Configuration, layered with pydantic-settings.

Sources, highest priority first::

    overrides           command-line options (load_settings(overrides=...))
    environment         INVENTORY_<NAME>; INVENTORY_ACCOUNTS holds a JSON list
    .env                in the working directory, same names
    TOML                INVENTORY_CONFIG, else ./inventory.toml if it exists
    secrets directory   INVENTORY_SECRETS_DIR, else /run/secrets if it exists; files named
                        like the variables (inventory_database_url)
    CLOUDFLARE_*        CLOUDFLARE_ACCOUNT_ID + CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL +
                        CLOUDFLARE_API_KEY), only when no source lists any account

``load_settings`` turns every problem into one ConfigError line naming the setting and the place
its value came from. No message, repr or redacted view contains a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from inventory.errors import ConfigError
from inventory.settings.accounts import AccountConfig
from inventory.settings.model import Settings
from inventory.settings.sources import CURRENT_LOAD, TracedSource, did_you_mean, prepare_load

__all__ = ["AccountConfig", "Settings", "load_settings"]

NO_ACCOUNTS = (
    "no accounts configured: add [[accounts]] to inventory.toml, set INVENTORY_ACCOUNTS, "
    "or set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN"
)


def load_settings(
    *,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    require_accounts: bool = True,
) -> Settings:
    """Settings from every source; raises ConfigError, never ValidationError."""
    load = prepare_load(
        Settings, dict(os.environ if environ is None else environ), cwd or Path.cwd()
    )
    init = _checked_overrides(overrides or {})
    token = CURRENT_LOAD.set(load)
    error: ConfigError | None = None
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        error = _explain(exc, load.traces)
    except SettingsError as exc:  # a source failed in a way TracedSource did not foresee
        error = ConfigError(f"cannot load settings: {exc}")
    finally:
        CURRENT_LOAD.reset(token)
    # Raised outside the except block so the ValidationError, whose text quotes input values,
    # is not chained to it.
    if error is not None:
        raise error
    for trace in load.traces:
        for name in trace.data:
            settings._origins.setdefault(name, trace.describe(name))
    if require_accounts and not settings.accounts:
        raise ConfigError(NO_ACCOUNTS)
    return settings


def _checked_overrides(overrides: Mapping[str, object]) -> dict[str, Any]:
    # Options left unset arrive as None; they must not hide lower sources.
    init = {key: value for key, value in overrides.items() if value is not None}
    for key in init:
        if key not in Settings.model_fields:
            hint = did_you_mean(key, Settings.model_fields)
            raise ConfigError(f"unknown setting {key!r}{hint}", source="command line")
    return init


def _explain(exc: ValidationError, traces: Sequence[TracedSource]) -> ConfigError:
    problems: list[tuple[str, str | None]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else ""
        trace = next((trace for trace in traces if name in trace.data), None)
        origin = trace.describe(name) if trace is not None else None
        problems.append((_describe(error, trace), origin))
    origins = {origin for _, origin in problems}
    if len(origins) == 1:
        return ConfigError("; ".join(line for line, _ in problems), source=origins.pop())
    return ConfigError(
        "; ".join(f"{line} (from {origin})" if origin else line for line, origin in problems)
    )


def _describe(error: ErrorDetails, trace: TracedSource | None) -> str:
    """'<setting>: <what is wrong>' from pydantic's message, which never holds the input here."""
    loc = error["loc"]
    message = error["msg"].removeprefix("Value error, ")
    if message[1:2].islower():
        message = message[0].lower() + message[1:]
    if error["type"] == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown setting {loc[0]!r}{did_you_mean(str(loc[0]), Settings.model_fields)}"
        message, loc = f"unknown key {loc[-1]!r}", loc[:-1]
    subject = [str(loc[0])] if loc else []
    rest = loc[1:]
    if loc[:1] == ("accounts",) and rest and isinstance(rest[0], int):
        subject = [f"accounts[{rest[0]}]{_account_name(trace, rest[0])}"]
        rest = rest[1:]
    subject.extend(str(part) for part in rest)
    return ": ".join([*subject, message])


def _account_name(trace: TracedSource | None, index: int) -> str:
    accounts = trace.data.get("accounts") if trace is not None else None
    if isinstance(accounts, list) and index < len(accounts) and isinstance(accounts[index], dict):
        name = accounts[index].get("name")
        if isinstance(name, str) and name.strip():
            return f" ({name.strip()!r})"
    return ""
