"""Reading a response's body: within its size limit and the deadlines, as a ``Page``.

A success body becomes a ``Page``: its bytes and their digest, decoded (strictly, into
Cloudflare's envelope) only when asked, so a caller that already knows what these bytes say
(``inventory.cloudflare.listing``: the pages a previous clean run read) never decodes them.
An error body is read only far enough to quote what it says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from inventory.cloudflare.call import Call
from inventory.cloudflare.envelope import cloudflare_errors, decode_envelope, digest
from inventory.cloudflare.messages import snippet
from inventory.errors import BadResponseError

__all__ = ["Page", "error_detail", "read_page"]

_ERROR_BODY_LIMIT = 64 * 1024  # enough for any error envelope; the rest of an error page is noise


@dataclass(slots=True)
class Page:
    """A successful response: its body and the body's digest; ``decoded()`` is its envelope.

    Decoding checks the envelope and raises the same FetchError (BadResponseError, or ApiError
    for ``success: false``) the request would have, in an operator's words.
    """

    digest: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # the response's
    decode: Callable[[bytes], dict[str, Any]] = field(default=lambda _: {}, repr=False)
    envelope: dict[str, Any] | None = field(default=None, repr=False)

    def decoded(self) -> dict[str, Any]:
        if self.envelope is None:
            self.envelope = self.decode(self.body)
        return self.envelope


def content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", maxsplit=1)[0].strip().lower()


def _is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def read_prefix(response: httpx.Response, limit: int, call: Call) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decoded) body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        call.check_deadline()  # a body trickling in must not outlast the deadlines
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def error_detail(response: httpx.Response, call: Call) -> tuple[str, tuple[int, ...], bool]:
    """``": what the body says"``, Cloudflare's error codes, and whether the body was not JSON."""
    body, _ = read_prefix(response, _ERROR_BODY_LIMIT, call)
    kind = content_type(response)
    if not _is_json(kind):
        got = kind or "no Content-Type"
        what = f": expected JSON from Cloudflare but got {got}"
        return (what + (f": {snippet(body)}" if body.strip() else ", empty body")), (), True
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return f": unreadable JSON error body {snippet(body)}", (), False
    described, codes = cloudflare_errors(document)
    return (f": {described}" if described else ""), codes, False


def read_page(call: Call, response: httpx.Response, limit: int) -> Page:
    """The success body, read whole if JSON and within ``limit`` bytes; else BadResponseError."""
    status = f"HTTP {response.status_code}"
    kind = content_type(response)
    if not _is_json(kind):
        body, _ = read_prefix(response, 4096, call)
        got = kind or "no Content-Type"
        raise call.error(
            BadResponseError,
            f"expected JSON from Cloudflare but got {got} ({status}) from {call.what}: "
            + (snippet(body) if body.strip() else "empty body"),
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise call.error(
            BadResponseError,
            f"the response to {call.what} declares {int(declared):,} bytes, over the "
            f"{limit:,}-byte limit (max_response_bytes); not read",
        )
    body, more = read_prefix(response, limit, call)
    if more:
        raise call.error(
            BadResponseError,
            f"the response to {call.what} is larger than the {limit:,}-byte limit "
            "(max_response_bytes); stopped reading",
        )
    status_code = response.status_code

    def decode(raw: bytes) -> dict[str, Any]:
        return decode_envelope(raw, call=call, status_code=status_code, single=call.single)

    return Page(digest=digest(body), body=body, headers=response.headers, decode=decode)
