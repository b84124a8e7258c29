"""What the client sends: a GET that stays under base_url, headers that are printable ASCII,
and the TLS verification asked for (a bundle file or a directory of certificates)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from inventory.errors import AuthError

__all__ = ["build_request", "ssl_verify"]


def build_request(
    http: httpx.Client,
    path: str,
    *,
    base: str,
    params: dict[str, str | int],
    headers: dict[str, str],
) -> httpx.Request:
    """A GET of ``path`` under ``base`` (the client's base_url), or ValueError/AuthError: the
    credential in ``headers`` goes nowhere else, and never into an exception's text."""
    for name, value in headers.items():
        # Checked before the request is built: httpx would raise UnicodeEncodeError with
        # the value in its args. Settings reject such credentials; this is the backstop.
        if not (value.isascii() and value.isprintable()):
            raise AuthError(
                f"the {name} header for GET {path} holds a character that is not printable "
                "ASCII; not sent"
            )
    segments = path.split("/")
    if not path.startswith("/") or path.startswith("//") or "?" in path or "#" in path:
        raise ValueError(f"path must be relative to base_url, like /accounts/…, not {path!r}")
    if "." in segments or ".." in segments or "\\" in path:
        raise ValueError(f"path must not climb out of base_url: {path!r}")
    request = http.build_request("GET", path, params=params, headers=headers)
    if not str(request.url).startswith(base):  # belt and braces: the token stays home
        raise ValueError(f"path {path!r} resolves outside base_url")
    return request


def ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    if isinstance(verify, bool):
        return verify
    if Path(verify).is_dir():
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)
