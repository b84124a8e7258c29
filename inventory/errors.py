"""The exceptions inventory raises on purpose.

    InventoryError
    ├── ConfigError            bad configuration; the CLI exits 2 with one line
    ├── SchemaOutOfDateError   the database schema is behind the code
    ├── AlreadyRunningError    another daemon already uses this SQLite database
    ├── Aborted                a sync stopped (the daemon shuts down) before writing anything
    ├── TimeSpecError          a time, duration or crontab a user typed that cannot be read
    │   └── CrontabError       not a five-field crontab the scheduler can run
    ├── RateLimitBlocked       the server blocks a credential longer than the caller may wait
    ├── SelectionError         a filter (--account, --kind, --field) that names nothing there is
    ├── EntityNotFoundError    no such portal or server at the instant asked for
    └── FetchError             an account's listing could not be fetched completely
        ├── TransportError     timeouts and connection errors, after retries
        ├── ApiError           Cloudflare answered with an error status or ``success: false``
        │   └── AuthError      401/403: the credential was refused
        ├── BadResponseError   not JSON, truncated, too large, or not the envelope we expect
        ├── PagingError        the listing never ended (page cap reached)
        └── DeadlineError      request_deadline or account_deadline ran out (a slow server)

Every message is written for an operator and never contains a credential.
"""

from __future__ import annotations

__all__ = [
    "Aborted",
    "AlreadyRunningError",
    "ApiError",
    "AuthError",
    "BadResponseError",
    "ConfigError",
    "CrontabError",
    "DeadlineError",
    "EntityNotFoundError",
    "FetchError",
    "InventoryError",
    "PagingError",
    "RateLimitBlocked",
    "SchemaOutOfDateError",
    "SelectionError",
    "TimeSpecError",
    "TransportError",
]


class InventoryError(Exception):
    """Base of every error inventory raises on purpose."""


class ConfigError(InventoryError):
    """The configuration is unusable. ``source`` names where the bad value came from."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{message} (from {source})" if source else message)


class SchemaOutOfDateError(InventoryError):
    """The database is not at the code's Alembic head."""


class AlreadyRunningError(InventoryError):
    """Another daemon already works on this SQLite database."""


class Aborted(InventoryError):  # noqa: N818 - its name is the error_class runs record
    """The sync was stopped (the daemon is shutting down) before it wrote anything."""


class TimeSpecError(InventoryError, ValueError):
    """A time or duration the user typed that we cannot read; the message names the option.

    A ValueError too, so a pydantic validator that raises it reports one line naming the source.
    """


class CrontabError(TimeSpecError):
    """An expression that is not a five-field crontab APScheduler can schedule."""


class RateLimitBlocked(InventoryError):  # noqa: N818 - a condition, reported by the client
    """The server has blocked this credential for longer than the caller is willing to wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the server blocks this credential for another {seconds:.0f} s")


class SelectionError(InventoryError):
    """A filter that names nothing that exists; the message lists what would."""


class EntityNotFoundError(InventoryError):
    """No such portal or server at the instant asked for (or several, and no account given)."""


class FetchError(InventoryError):
    """Fetching an account's listing failed; nothing from this attempt may be applied."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class TransportError(FetchError):
    """No usable HTTP response (timeout, refused or dropped connection) after all retries."""


class ApiError(FetchError):
    """Cloudflare answered with an error: an HTTP error status or ``success: false``."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int | None = None,
        codes: tuple[int, ...] = (),
    ) -> None:
        self.status_code = status_code
        self.codes = codes
        super().__init__(message, url=url)


class AuthError(ApiError):
    """The API refused the credential (401/403)."""


class BadResponseError(FetchError):
    """The body is not the JSON envelope the API documents (HTML page, truncated, too large)."""


class PagingError(FetchError):
    """The listing did not end within the page cap."""


class DeadlineError(FetchError):
    """A request or an account's sync ran past its deadline; ``setting`` names which one."""

    def __init__(self, message: str, *, setting: str, url: str | None = None) -> None:
        self.setting = setting
        super().__init__(message, url=url)
