"""``inventory doctor``: is this setup ready for its first sync?

The database: reachable, its schema at this code's revision, and writable (a write in a
transaction that is rolled back). For each account, one real request, the first portal of the
listing (``per_page=1``), through the client a sync uses (base URL, TLS settings, headers): the
credential works and has MCP Portals Read; then, from that response, the rate-limit budget the
credential has left and the clock's skew against the response's ``Date``.

Each check is one line; a check that does not pass says what to do about it. ``warn`` is worth
reading but does not stop a sync; ``skip`` could not be checked because an earlier check failed
or the server said nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from inventory.cloudflare.budget_headers import read_budget
from inventory.cloudflare.client import CloudflareClient, Page
from inventory.cloudflare.listing import listing_path
from inventory.daemon.service import open_client
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.migrate import head_revision, known_revision
from inventory.errors import ApiError, BadResponseError, FetchError, TransportError

if TYPE_CHECKING:
    from inventory.settings import AccountConfig, Settings

__all__ = ["Check", "Status", "check_account", "check_database", "doctor_lines", "run_doctor"]

Status = Literal["ok", "warn", "fail", "skip"]

# Beyond these many seconds off Cloudflare's clock the history's timestamps mislead.
CLOCK_WARN, CLOCK_FAIL = 5.0, 60.0
# Below this share of the budget left, a sync will likely wait for it.
BUDGET_WARN = 0.1
# A doctor answers in seconds: at most one retry, and a short deadline per request.
DOCTOR_MAX_RETRIES, DOCTOR_REQUEST_DEADLINE = 1, 10.0

_AUTH_HINTS = {
    401: (
        "Cloudflare did not accept the credential: the API token is wrong or has expired (or "
        "api_email/api_key do not match); create a token with Account > MCP Portals > Read "
        "for this account"
    ),
    403: (
        "Cloudflare's 403 does not say which of two causes it is: the token was revoked, "
        "deleted or has expired, OR it is valid but lacks the MCP Portals Read permission on "
        "this account. Check both in the dashboard (My Profile > API Tokens): the token must "
        "be active and include Account > MCP Portals > Read for this account"
    ),
    404: (
        "check the account id (Cloudflare dashboard > Account home > the account's menu > "
        "Copy account ID) and that MCP portals (Zero Trust > AI controls) exist on this account"
    ),
    429: (
        "Cloudflare's rate limit blocks this credential right now: something else spends its "
        "budget (another inventory, another tool with the same token); a sync would wait"
    ),
}


@dataclass(frozen=True)
class Check:
    check: str  # "database", "schema", "writable", "credential", "rate limit", "clock"
    status: Status
    detail: str
    hint: str = ""
    account_id: str | None = None
    account: str | None = None  # the account's name, else its id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_doctor(
    settings: Settings,
    accounts: Sequence[AccountConfig],
    *,
    client_factory: Callable[[Settings], CloudflareClient] | None = None,
) -> list[Check]:
    """Every check, the database's first, then each account's in configuration order."""
    checks = check_database(settings.database_url_secret(), shown=str(settings.database_url))
    if not accounts:
        return checks
    if client_factory is None:
        client_factory = open_client
    quick = settings.model_copy(
        update={
            "max_retries": min(settings.max_retries, DOCTOR_MAX_RETRIES),
            "request_deadline": min(settings.request_deadline, DOCTOR_REQUEST_DEADLINE),
        }
    )
    with (
        client_factory(quick) as client,
        ThreadPoolExecutor(
            max_workers=max(1, min(settings.max_concurrency, len(accounts)))
        ) as pool,
    ):
        for found in pool.map(lambda account: check_account(client, account), accounts):
            checks.extend(found)
    return checks


# --- the database ------------------------------------------------------------------------------


def check_database(url: str, *, shown: str | None = None) -> list[Check]:
    """Reachable, schema current, writable; never creates a database that is not there."""
    shown = shown or url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return [
            Check(
                "database",
                "fail",
                f"{shown}: no database file at {path}",
                "run `inventory db upgrade` to create it, or point database_url at the "
                "existing database",
            ),
            _skipped("schema", "no database"),
            _skipped("writable", "no database"),
        ]
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A black-holed server fails the check in seconds, not after the OS's TCP timeout.
        url = parsed.update_query_dict({"connect_timeout": "10"}).render_as_string(
            hide_password=False
        )
    engine = make_engine(url, pool_size=1)
    try:
        return _check_engine(engine, shown)
    finally:
        engine.dispose()


def _check_engine(engine: Engine, shown: str) -> list[Check]:
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = ".".join(str(part) for part in engine.dialect.server_version_info or ())
            revision = current_revision_on(conn)
    except SQLAlchemyError as exc:
        hint = (
            "check that the file and its directory are readable and writable by this user"
            if sqlite
            else "check the host, port, database name, user and password in database_url, "
            "and that the server accepts this client (listen_addresses, pg_hba.conf)"
        )
        return [
            Check("database", "fail", f"{shown}: cannot connect: {_first_line(exc)}", hint),
            _skipped("schema", "the database is unreachable"),
            _skipped("writable", "the database is unreachable"),
        ]
    kind = "SQLite" if sqlite else "PostgreSQL"
    checks = [Check("database", "ok", f"{shown}: reachable ({kind} {version})".rstrip())]
    checks.append(_schema_check(revision))
    checks.append(_writable_check(engine, has_schema=revision is not None))
    return checks


def current_revision_on(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _schema_check(revision: str | None) -> Check:
    head = head_revision()
    if revision == head:
        return Check("schema", "ok", f"at revision {head}, the one this version needs")
    if revision is None:
        return Check(
            "schema",
            "fail",
            f"empty: no inventory schema (this version needs revision {head})",
            "run `inventory db upgrade`",
        )
    if known_revision(revision):
        return Check(
            "schema",
            "fail",
            f"at revision {revision}, behind the {head} this version needs",
            "run `inventory db upgrade` (the daemon does it itself with `inventory run --upgrade`)",
        )
    return Check(
        "schema",
        "fail",
        f"at revision {revision}, which this version of inventory does not know (it needs {head})",
        "a newer inventory migrated this database: run that version, or upgrade this one",
    )


def _writable_check(engine: Engine, *, has_schema: bool) -> Check:
    # What a sync needs: to change a row of inventory's (or, before the first upgrade, to
    # create a table); rolled back either way.
    probe = (
        "UPDATE alembic_version SET version_num = version_num"
        if has_schema
        else "CREATE TABLE inventory_doctor_probe (id INTEGER)"
    )
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                conn.execute(text(probe))
            finally:
                transaction.rollback()
    except SQLAlchemyError as exc:
        hint = (
            "SQLite writes the file and -wal/-shm files beside it: the file and its "
            "directory must be writable by this user"
            if engine.dialect.name == "sqlite"
            else "grant this user INSERT, UPDATE and DELETE on inventory's tables (and CREATE "
            "on the schema for `inventory db upgrade`); check the database is not a read-only "
            "replica"
        )
        return Check("writable", "fail", f"cannot write: {_first_line(exc)}", hint)
    return Check("writable", "ok", "a write in a transaction (rolled back) succeeded")


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(exc).__name__])[0]


def _skipped(check: str, why: str, account: AccountConfig | None = None) -> Check:
    return Check(
        check,
        "skip",
        f"not checked: {why}",
        account_id=getattr(account, "id", None),
        account=getattr(account, "label", None),
    )


# --- an account ----------------------------------------------------------------------------------


def check_account(
    client: CloudflareClient, account: AccountConfig, *, clock: Callable[[], float] = time.time
) -> list[Check]:
    """One request for the first portal: the credential, the budget left, the clock."""

    def check(name: str, status: Status, detail: str, hint: str = "") -> Check:
        return Check(name, status, detail, hint, account_id=account.id, account=account.label)

    before = clock()
    try:
        page = client.get_page(
            listing_path(account.id, "portals"),
            params={"page": 1, "per_page": 1},
            headers=account.auth_headers(),
            credential_key=account.credential_key,
        )
        page.decoded()
    except FetchError as exc:
        return [
            check("credential", "fail", str(exc), _fetch_hint(exc)),
            _skipped("rate limit", "the request failed", account),
            _skipped("clock", "the request failed", account),
        ]
    after = clock()
    how = "API token" if account.auth_scheme == "token" else "global API key"
    return [
        check(
            "credential",
            "ok",
            f"{how} accepted, MCP Portals Read granted (listed portals in "
            f"{(after - before) * 1000:.0f} ms)",
        ),
        _budget_check(page, check),
        _clock_check(page, before, after, check),
    ]


def _fetch_hint(exc: FetchError) -> str:
    if isinstance(exc, ApiError) and exc.status_code in _AUTH_HINTS:
        return _AUTH_HINTS[exc.status_code]
    if isinstance(exc, TransportError):
        return (
            "check api_base_url, DNS, the network path and any proxy (HTTPS_PROXY), and TLS "
            "(verify_tls, ca_bundle); `inventory config check` shows the settings in use"
        )
    if isinstance(exc, BadResponseError):
        return (
            "what answered is not Cloudflare's JSON API: check api_base_url "
            "(https://api.cloudflare.com/client/v4) and any proxy in between"
        )
    if isinstance(exc, ApiError) and exc.status_code is not None and exc.status_code >= 500:
        return "Cloudflare's side failed: try again later (https://www.cloudflarestatus.com)"
    return "see the message; `inventory config check` shows the settings in use"


def _budget_check(page: Page, check: Callable[..., Check]) -> Check:
    budget = read_budget(page.headers)
    if budget.remaining is None:
        return check("rate limit", "skip", "not checked: the response has no rate-limit headers")
    limit = budget.limit if budget.limit is not None else _header_limit(page.headers)
    window = f" in the {budget.window:g} s window" if budget.window is not None else ""
    of = f" of {limit}" if limit is not None else ""
    detail = f"{budget.remaining}{of} requests left{window}"
    if budget.remaining <= 0:
        reset = f" (it refills in {budget.reset:.0f} s)" if budget.reset is not None else ""
        return check(
            "rate limit",
            "fail",
            f"no requests left: Cloudflare refuses the next one and blocks this credential{reset}",
            "something else spends this token's budget (another inventory, another tool): "
            "give inventory a token of its own, or wait",
        )
    if limit and budget.remaining < limit * BUDGET_WARN:
        return check(
            "rate limit",
            "warn",
            detail,
            "little budget left: another tool shares this token, and a sync may have to wait",
        )
    return check("rate limit", "ok", detail)


def _header_limit(headers: Mapping[str, str]) -> int | None:
    """The older headers' quota (``x-ratelimit-limit``), which carries no window."""
    for name in ("ratelimit-limit", "x-ratelimit-limit"):
        value = headers.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def _clock_check(page: Page, before: float, after: float, check: Callable[..., Check]) -> Check:
    date = page.headers.get("date")
    try:
        server = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        server = None
    if server is None:
        return check("clock", "skip", "not checked: the response has no readable Date header")
    # Date has whole seconds: the server's clock read [server, server + 1) while the request was
    # between ``before`` and ``after`` by ours. Only what lies outside both is skew.
    if server + 1 < before:
        skew = server + 1 - before
    elif server > after:
        skew = server - after
    else:
        skew = 0.0
    way = "behind" if skew < 0 else "ahead of"
    detail = f"Cloudflare's clock is {abs(skew):.0f} s {way} this machine's"
    hint = (
        "history timestamps (valid_from, valid_to, sync runs) come from this machine's clock: "
        "synchronise it (NTP: `timedatectl set-ntp true`, chrony)"
    )
    if abs(skew) > CLOCK_FAIL:
        return check("clock", "fail", detail, hint)
    if abs(skew) > CLOCK_WARN:
        return check("clock", "warn", detail, hint)
    return check("clock", "ok", f"within {CLOCK_WARN:g} s of Cloudflare's clock")


# --- for people ----------------------------------------------------------------------------------

_LABEL = {
    "ok": "[green]ok[/]  ",
    "warn": "[yellow]warn[/]",
    "fail": "[bold red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


def doctor_lines(checks: Sequence[Check]) -> list[str]:
    """One line per check (rich markup), a hint line under each that does not pass, a verdict."""
    from rich.markup import escape

    lines: list[str] = []
    for c in checks:
        who = f"{escape(c.account)}: " if c.account else ""
        lines.append(f"{_LABEL[c.status]}  {c.check:<10}  {who}{escape(c.detail)}")
        if c.hint and c.status in ("fail", "warn"):
            lines.append(f"{'':16}[dim]hint:[/] {escape(c.hint)}")
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        lines.append(f"[bold red]{failed} of {len(checks)} checks failed[/]")
    else:
        lines.append(f"[green]ready:[/] {sum(c.status == 'ok' for c in checks)} checks passed")
    return lines
