"""What went wrong with a request, in an operator's words, and never with a credential in it."""

from __future__ import annotations

import httpx

__all__ = ["HINTS", "secrets_of", "snippet", "status_text", "transport_failure"]

_SECRET_HEADERS = frozenset({"authorization", "x-auth-key", "x-auth-user-service-key", "cookie"})
_EDGE_REASONS = {  # Cloudflare's names for its edge errors, which httpx does not know
    520: "Unknown Error",
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
    525: "SSL Handshake Failed",
    526: "Invalid SSL Certificate",
    527: "Railgun Error",
    530: "Origin Error",
}
# What to check, by status, after an error that is not worth retrying.
HINTS = {
    400: "Cloudflare refused the request as malformed",
    401: "check the API token or key and its 'MCP Portals Read' permission on this account",
    403: "check the API token or key and its 'MCP Portals Read' permission on this account",
    404: "check the account id, and that MCP portals are available on this account",
}


def status_text(status: int) -> str:
    """``"503 Service Unavailable"``, Cloudflare's edge errors included."""
    reason = httpx.codes.get_reason_phrase(status) or _EDGE_REASONS.get(status, "")
    return f"{status} {reason}".rstrip()


def snippet(body: bytes) -> str:
    """A short, printable quote of a body that is not what was expected (an HTML page's title)."""
    text = body.decode("utf-8", "replace")
    lower = text.lower()
    if (start := lower.find("<title>")) != -1:
        end = lower.find("</title>", start)
        text = text[start + 7 : end if end != -1 else None]
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return repr(text[:120] + ("…" if len(text) > 120 else ""))


def secrets_of(headers: dict[str, str]) -> tuple[str, ...]:
    """The credentials among the headers sent, to scrub from anything the server says."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() == "bearer":
                found.add(token.strip())
    # Longest first, so a token inside "Bearer <token>" is not left half-scrubbed.
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def transport_failure(
    exc: httpx.HTTPError, *, reading: bool, connect_timeout: float, read_timeout: float
) -> str:
    """A timeout or a dropped connection, in words (``reading``: after the headers came)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect within {connect_timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no data for {read_timeout:g} s (read timeout)"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({exc})"
    if reading:
        return f"the connection broke mid-response ({type(exc).__name__}: {exc})"
    return f"the connection broke ({type(exc).__name__}: {exc})"
