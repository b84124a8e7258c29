"""An answer's status, read: the page of a 2xx, or the error the status means.

429 and 5xx (``retry.RETRY_STATUSES``) are retryable, with the wait the server asks for; a 3xx
is never followed (the credential stays with ``base_url``); any other status is an ApiError
(AuthError for 401/403) naming the request and what the server said, scrubbed of credentials.
"""

from __future__ import annotations

import httpx

from inventory.cloudflare.body import Page, error_detail, read_page
from inventory.cloudflare.budget_headers import read_budget, retry_after
from inventory.cloudflare.call import Call, RetryableError
from inventory.cloudflare.messages import HINTS, status_text
from inventory.cloudflare.retry import RETRY_STATUSES
from inventory.errors import ApiError, AuthError

__all__ = ["read_answer"]


def read_answer(call: Call, response: httpx.Response, max_response_bytes: int) -> Page:
    """The page of a 2xx answer; else the error its status means (retryable or not)."""
    status = response.status_code
    if status in RETRY_STATUSES:
        detail, codes, not_json = error_detail(response, call)
        hint = retry_after(response.headers)
        if status == 429 and hint is None:
            hint = read_budget(response.headers).reset
        raise RetryableError(
            call.scrub(f"{status_text(status)}{detail}"),
            status=status,
            wait_hint=hint,
            not_json=not_json,
            codes=codes,
        )
    if 300 <= status < 400:
        where = response.headers.get("location", "nowhere")
        raise call.error(
            ApiError,
            f"{status_text(status)} from {call.what}: redirects are not followed "
            f"(to {where}); check base_url",
            status_code=status,
        )
    if not 200 <= status < 300:
        detail, codes, _ = error_detail(response, call)
        advice = HINTS.get(status)
        cls = AuthError if status in (401, 403) else ApiError
        text = f"{status_text(status)} from {call.what}{detail}"
        text += f"; {advice}" if advice else ""
        raise call.error(cls, text, status_code=status, codes=codes)
    return read_page(call, response, max_response_bytes)
