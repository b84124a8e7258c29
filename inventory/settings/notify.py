"""A webhook target of ``[[notify]]`` (or ``INVENTORY_NOTIFY``, the same list as JSON).

The URL and the secret are secrets: given inline, by a variable (``url_env``, ``secret_env``) or
by a file (``url_file``, ``secret_file``), they are read while validating, registered with the
log scrubber, held as SecretStr and never shown: a repr, an error and ``config check`` name
where they came from, never what they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from inventory.settings.accounts import AccountConfig, _read_secret
from inventory.settings.sources import current_environment, listed_once
from inventory.timespec import seconds

__all__ = ["EVENT_TYPES", "NotifyTarget", "check_target_accounts", "check_targets"]

_KINDS = ("portal", "server", "link", "tool", "prompt", "override")
EVENT_TYPES: tuple[str, ...] = (
    *(
        f"{kind}.{change}"
        for kind in _KINDS
        for change in ("created", "updated", "deleted", "restored")
    ),
    "exposure.added",
    "exposure.removed",
    "server.status_changed",
    "sync.first",
    "sync.failed",
    "sync.recovered",
    "notify.test",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")
_LISTED = 12  # valid accounts named in an error at most
_SECRET_WAYS = {
    "url": ("url", "url_env", "url_file"),
    "secret": ("secret", "secret_env", "secret_file"),
}


class NotifyTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: SecretStr
    format: Literal["json", "slack"] = "json"
    secret: SecretStr | None = None
    events: tuple[str, ...] | None = None  # None: every event
    accounts: tuple[str, ...] | None = None  # ids or names; None: every account
    # Where the URL and the secret were read from ("env HOOK_URL", "file /run/…", "inline").
    url_source: str = "inline"
    secret_source: str | None = None
    failed_runs: int = Field(3, ge=1, le=1000)  # consecutive failed runs before sync.failed
    max_age: float = 86400.0  # seconds an event is retried before it is dead
    batch_size: int = Field(20, ge=1, le=1000)  # events per request at most
    batch_window: float = 1.0  # seconds the first event waits for others to join it
    timeout: float = 10.0  # seconds per request (connect, send, answer)

    @model_validator(mode="before")
    @classmethod
    def _resolve_secrets(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        env = current_environment()
        for field, ways in _SECRET_WAYS.items():
            given = [way for way in ways if data.get(way) is not None]
            if len(given) > 1:
                raise ValueError(f"give the {field} one way only, not {' and '.join(given)}")
            if not given:
                if field == "url":
                    raise ValueError("no url: set url, url_env or url_file")
                continue
            value, source = _read_secret(given[0], data.pop(given[0]), env)
            data[field] = SecretStr(value)
            data[f"{field}_source"] = source or "inline"
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")  # never the URL
        try:
            parts.port  # noqa: B018 -- reading it checks it
        except ValueError:
            # else every delivery fails as a connection error, retried until max_age
            raise ValueError("has a port that is not a number from 0 to 65535") from None
        return value

    @field_validator("events")
    @classmethod
    def _check_events(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        unknown = [e for e in value if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}; see docs/notifications.md")
        return value

    @field_validator("accounts")
    @classmethod
    def _account_ids_in_lower_case(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Account ids as the accounts hold them (any case given); names as given, stripped."""
        if value is None:
            return None
        return tuple(
            entry.strip().lower() if _ACCOUNT_ID.fullmatch(entry.strip()) else entry.strip()
            for entry in value
        )

    @field_validator("max_age", "batch_window", "timeout", mode="before")
    @classmethod
    def _durations(cls, value: object) -> float:
        if value in {0, "0"}:
            return 0.0
        return seconds(value)

    def wants(self, event_type: str, account_id: str, account_name: str | None) -> bool:
        """Whether this target receives an event of this type about this account."""
        if (
            self.events is not None
            and event_type not in self.events
            and event_type != "notify.test"
        ):
            return False
        return self.covers(account_id, account_name)

    def covers(self, account_id: str, account_name: str | None) -> bool:
        """Whether this target wants events about this account (by id or name)."""
        if self.accounts is None:
            return True
        return account_id in self.accounts or (
            account_name is not None and account_name in self.accounts
        )

    def redacted(self, origin: str | None = None) -> dict[str, Any]:
        """For ``config check``: where the URL and the secret came from, never what they are."""

        def where(source: str | None) -> str:
            return origin if source == "inline" and origin else source or "inline"

        values: dict[str, Any] = {
            "name": self.name,
            "url": f"*** ({where(self.url_source)})",
            "format": self.format,
        }
        if self.secret is not None:
            values["secret"] = f"*** ({where(self.secret_source)})"
        values.update(
            events=list(self.events) if self.events is not None else "all",
            accounts=list(self.accounts) if self.accounts is not None else "all",
            failed_runs=self.failed_runs,
            max_age=self.max_age,
            batch_size=self.batch_size,
            batch_window=self.batch_window,
            timeout=self.timeout,
        )
        return values


def check_targets(targets: list[NotifyTarget]) -> list[NotifyTarget]:
    listed_once(
        [t.name for t in targets], field="notify", what=lambda name: f"notify target {name!r}"
    )
    return targets


def check_target_accounts(
    targets: list[NotifyTarget], accounts: list[AccountConfig]
) -> list[NotifyTarget]:
    """Refuse a target's ``accounts`` entry that names no configured account (by id or name).

    Such a target would silently never get an event about it. With no account configured at
    all there is nothing to check against (the commands that need accounts say so).
    """
    if not accounts:
        return targets
    known = {a.id for a in accounts} | {a.name for a in accounts if a.name is not None}
    for target in targets:
        unknown = [entry for entry in target.accounts or () if entry not in known]
        if unknown:
            raise ValueError(
                f"target {target.name!r}: accounts: {unknown[0]!r} is not a configured "
                f"account id or name; {_valid(accounts)}"
            )
    return targets


def _valid(accounts: list[AccountConfig]) -> str:
    labels = [f"{a.name} ({a.id})" if a.name else a.id for a in accounts]
    more = f" and {len(labels) - _LISTED} more" if len(labels) > _LISTED else ""
    return f"valid: {', '.join(labels[:_LISTED])}{more}"
