"""The Settings model: every top-level setting, its default and its checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inventory import timespec
from inventory.redaction import register_secret
from inventory.settings.accounts import AccountConfig
from inventory.settings.dburl import parse_database_url
from inventory.settings.notify import NotifyTarget, check_target_accounts, check_targets
from inventory.settings.sources import (
    CURRENT_LOAD,
    ENV_PREFIX,
    absent,
    build_sources,
    current_environment,
    listed_once,
    prepare_load,
)

__all__ = ["Settings"]

# The databases (and drivers) inventory is built and tested for.
_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"})
_SUPPORTED_DATABASES = (
    "use SQLite (sqlite:///inventory.db) or PostgreSQL (postgresql://user@host/database)"
)


def url_passwords(text: str) -> list[str]:
    """The passwords a database URL holds: its user's, and any ``?password=`` in the query."""
    try:
        return list(parse_database_url(text).passwords)
    except ValueError:  # not a URL: then it holds no password we can find
        return []


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Seconds = Annotated[float, BeforeValidator(timespec.seconds)]
OptionalSeconds = Annotated[float | None, BeforeValidator(timespec.optional_seconds)]


class _MaskedURL(str):
    """A database URL whose text has the password masked; the real URL is kept aside."""

    secret: str | None

    def __new__(cls, masked: str, secret: str | None = None) -> Self:
        url = super().__new__(cls, masked)
        url.secret = secret
        return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, env_ignore_empty=True
    )

    database_url: str = Field(
        "sqlite:///inventory.db",
        description="SQLAlchemy URL of the database (SQLite or PostgreSQL)",
    )
    api_base_url: str = Field(
        "https://api.cloudflare.com/client/v4", description="Cloudflare API base URL"
    )
    page_size: int = Field(100, ge=1, le=100, description="items requested per page, 1 to 100")
    connect_timeout: Seconds = Field(10.0, description="seconds to wait for a connection")
    read_timeout: Seconds = Field(30.0, description="seconds to wait for a response")
    max_retries: int = Field(5, ge=0, le=20, description="retries after the first attempt")
    request_deadline: Seconds = Field(
        120.0, description="most seconds one request takes: connect, headers, body, retries"
    )
    account_deadline: Seconds = Field(900.0, description="most seconds one account's sync takes")
    retry_max_time: OptionalSeconds = Field(
        None, description="deprecated: the old name of request_deadline"
    )
    max_concurrency: int = Field(4, ge=1, le=64, description="accounts fetched at once")
    rate_limit_requests: int = Field(1200, ge=1, description="requests allowed per period")
    rate_limit_period: Seconds = Field(300.0, description="rate limit window, seconds")
    max_pages: int = Field(1000, ge=1, description="page cap per listing")
    confirm_threshold: int = Field(
        20,
        ge=0,
        description="deletion candidates in one listing above which it is read again first",
    )
    max_response_bytes: int = Field(50_000_000, ge=1, description="largest response body accepted")
    verify_tls: bool = Field(True, description="verify the API's TLS certificate")
    ca_bundle: Path | None = Field(None, description="CA bundle file to verify TLS with")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe level logged"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON otherwise"
    )
    sync_interval: Seconds = Field(900.0, description="seconds between daemon runs")
    sync_cron: str | None = Field(None, description="crontab schedule; replaces sync_interval")
    metrics_address: str = Field("127.0.0.1:9108", description="host:port of /metrics")
    history_retention: OptionalSeconds = Field(None, description="keep history this long")
    accounts: list[AccountConfig] = Field(default_factory=list)
    # Webhook targets ([[notify]]; INVENTORY_NOTIFY as JSON): inventory.notify, notifications.md
    notify: list[NotifyTarget] = Field(default_factory=list)

    # Where each value came from, filled in by load_settings; shows where inline tokens live.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    # What load_settings found usable but unwise (short secrets, a readable file holding one).
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        load = CURRENT_LOAD.get()
        if load is None:  # built directly rather than by load_settings
            load = prepare_load(settings_cls, os.environ, Path.cwd())
        return build_sources(settings_cls, init_settings, load)

    @model_validator(mode="before")
    @classmethod
    def _deprecated_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("retry_max_time") is not None:
            if data.get("request_deadline") is not None:
                raise ValueError(
                    "retry_max_time is the deprecated name of request_deadline: "
                    "set request_deadline only"
                )
            data = {**data, "request_deadline": data["retry_max_time"]}
        return data

    @field_validator("database_url")
    @classmethod
    def _mask_password(cls, value: str) -> str:
        try:
            url = parse_database_url(value)
        except ValueError:
            raise ValueError(
                f"is not a valid SQLAlchemy database URL: {_SUPPORTED_DATABASES}"
            ) from None
        if url.drivername not in _DRIVERS:
            raise ValueError(f"unsupported database {url.drivername!r}: {_SUPPORTED_DATABASES}")
        for password in url.passwords:
            register_secret(password)
        return _MaskedURL(url.masked, value)

    @field_validator("api_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip().rstrip("/")

    @field_validator("ca_bundle", "sync_cron", mode="before")
    @classmethod
    def _unset_when_blank(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("ca_bundle")
    @classmethod
    def _check_ca_bundle(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = current_environment().path(value)
        if not path.is_file():
            raise ValueError(f"file {path} {absent(path)}")
        return path

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        return _lower(value)

    @field_validator("sync_cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return timespec.check_cron(value)  # the daemon's own parser

    @field_validator("metrics_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        _, colon, port = value.strip().rpartition(":")
        if not colon or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port, like 127.0.0.1:9108")
        return value.strip()

    @field_validator("accounts")
    @classmethod
    def _unique_ids(cls, accounts: list[AccountConfig]) -> list[AccountConfig]:
        listed_once([a.id for a in accounts], field="accounts", what=lambda i: f"account {i}")
        return accounts

    @field_validator("notify")
    @classmethod
    def _check_targets(
        cls, targets: list[NotifyTarget], info: ValidationInfo
    ) -> list[NotifyTarget]:
        # "accounts" is validated first (declared first); absent from info.data when it failed
        return check_target_accounts(check_targets(targets), info.data.get("accounts") or [])

    def deprecations(self) -> list[str]:
        """One line per deprecated setting in use, for a warning at start-up."""
        if self.retry_max_time is None:
            return []
        where = self._origins.get("retry_max_time")
        return [
            "retry_max_time is deprecated: it now sets request_deadline, which also bounds "
            "connect, headers and the whole body; rename it" + (f" (from {where})" if where else "")
        ]

    def database_url_secret(self) -> str:
        secret = getattr(self.database_url, "secret", None)
        return secret if isinstance(secret, str) else self.database_url

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings)

    def redacted(self) -> dict[str, object]:
        values: dict[str, object] = self.model_dump(mode="json", exclude={"accounts", "notify"})
        origin = self._origins.get("accounts")
        values["accounts"] = [_redact(account, origin) for account in self.accounts]
        values["notify"] = [target.redacted(self._origins.get("notify")) for target in self.notify]
        return values


def _redact(account: AccountConfig, origin: str | None) -> dict[str, Any]:
    where = origin if account.credential_source == "inline" else account.credential_source
    masked = f"*** ({where})" if where else "***"
    values: dict[str, Any] = {"id": account.id, "name": account.name, "auth": account.auth_scheme}
    if account.auth_scheme == "token":
        values["api_token"] = masked
    else:
        values.update(api_email=account.api_email, api_key=masked)
    values["credential_key"] = account.credential_key
    return values
