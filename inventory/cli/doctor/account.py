"""An account's checks: one request for its first portal; the credential, the budget left and
the clock, from that response."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from inventory.cli.doctor.check import Check, Status, skipped
from inventory.cloudflare.budget_headers import read_budget
from inventory.cloudflare.client import CloudflareClient, Page
from inventory.cloudflare.listing import listing_path
from inventory.errors import ApiError, BadResponseError, FetchError, TransportError

if TYPE_CHECKING:
    from inventory.settings import AccountConfig

__all__ = ["BUDGET_WARN", "CLOCK_FAIL", "CLOCK_WARN", "check_account"]

# Beyond these many seconds off Cloudflare's clock the history's timestamps mislead.
CLOCK_WARN, CLOCK_FAIL = 5.0, 60.0
# Below this share of the budget left, a sync will likely wait for it.
BUDGET_WARN = 0.1

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
            skipped("rate limit", "the request failed", account),
            skipped("clock", "the request failed", account),
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
