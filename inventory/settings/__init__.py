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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from inventory.errors import ConfigError
from inventory.redaction import MIN_LENGTH
from inventory.settings.accounts import AccountConfig
from inventory.settings.model import Settings, url_passwords
from inventory.settings.sources import (
    CURRENT_LOAD,
    Load,
    TracedSource,
    did_you_mean,
    prepare_load,
)

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
    config: Path | None = None,
    require_accounts: bool = True,
    files: bool = True,
) -> Settings:
    """Settings from every source; raises ConfigError, never ValidationError.

    ``config`` is a TOML file named on the command line: it replaces ``INVENTORY_CONFIG``, and
    an error about it names ``--config``. ``files=False``: ``overrides`` and ``environ`` only,
    no ``.env``, TOML file or secrets directory (the demo's settings: a user's own
    configuration must not reach them).
    """
    load = prepare_load(
        Settings,
        dict(os.environ if environ is None else environ),
        cwd or Path.cwd(),
        config=config,
        files=files,
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
    settings._warnings = [*_short_secrets(settings), *_exposed_file(load), *settings.deprecations()]
    return settings


def _short_secrets(settings: Settings) -> list[str]:
    """Secrets too short for the log scrubber, which would mangle ordinary words hunting them."""
    found: list[str] = []
    for index, account in enumerate(settings.accounts):
        setting, secret = (
            ("api_token", account.api_token) if account.api_token else ("api_key", account.api_key)
        )
        if secret is not None and len(secret.get_secret_value()) < MIN_LENGTH:
            found.append(f"accounts[{index}] ({account.label}): {setting}")
    for index, target in enumerate(settings.notify):
        if target.secret is not None and len(target.secret.get_secret_value()) < MIN_LENGTH:
            found.append(f"notify[{index}] ({target.name}): secret")
    if any(len(p) < MIN_LENGTH for p in url_passwords(settings.database_url_secret())):
        found.append("database_url: the password")
    return [
        f"{what} is shorter than {MIN_LENGTH} characters: logs cannot redact it if it ever "
        "reached one; use a longer secret"
        for what in found
    ]


def _exposed_file(load: Load) -> list[str]:
    """As ssh does for keys: a config file holding a secret must be readable by its owner only."""
    path = load.toml_path
    trace = next((t for t in load.traces if t.is_toml), None)
    if path is None or trace is None:
        return []
    accounts = trace.data.get("accounts")
    inline = isinstance(accounts, list) and any(
        isinstance(a, dict) and ("api_token" in a or "api_key" in a) for a in accounts
    )
    targets = trace.data.get("notify")
    inline = inline or (
        isinstance(targets, list)
        and any(isinstance(t, dict) and ("url" in t or "secret" in t) for t in targets)
    )
    url = trace.data.get("database_url")
    if not inline and not (isinstance(url, str) and url_passwords(url)):
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & 0o077:
        return []
    return [
        f"{path} holds a secret inline and is readable by group or others "
        f"(mode {mode & 0o777:o}): run `chmod 600 {path}`, or read the secret from a variable "
        "or a file (api_token_env, api_token_file, the secrets directory)"
    ]


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
    elif loc[:1] == ("notify",) and rest and isinstance(rest[0], int):
        subject, rest = [f"notify[{rest[0]}]"], rest[1:]
    subject.extend(str(part) for part in rest)
    return ": ".join([*subject, message])


def _account_name(trace: TracedSource | None, index: int) -> str:
    accounts = trace.data.get("accounts") if trace is not None else None
    if isinstance(accounts, list) and index < len(accounts) and isinstance(accounts[index], dict):
        name, account_id = accounts[index].get("name"), accounts[index].get("id")
        if isinstance(name, str) and name.strip():
            return f" ({name.strip()!r})"
        if isinstance(account_id, str) and re.fullmatch(r"[0-9a-fA-F]{32}", account_id.strip()):
            return f" ({account_id.strip().lower()})"  # an account id is no secret
    return ""
