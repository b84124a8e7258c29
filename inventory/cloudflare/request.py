"""What the client sends: a GET that stays under base_url, headers that are printable ASCII,
and the TLS verification asked for (a bundle file or a directory of certificates)."""

from __future__ import annotations

import functools
import os
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
    """The TLS verification for ``verify``: a context made once per process and source.

    Loading a CA bundle takes tens of milliseconds; every client used to load its own (httpx
    makes a context per client), once per account sync. ``True`` is httpx's own default
    (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's bundle); a path is a bundle file or a
    directory of certificates, read again when the file or directory changes. ``False`` turns
    verification off.
    """
    if verify is False:
        return False
    if verify is True:
        env = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
        return _context(None, env)
    try:
        stat = Path(verify).stat()
        stamp: tuple[object, ...] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        stamp = ()  # ssl names the problem when it tries to read it
    return _context(verify, stamp)


@functools.lru_cache(maxsize=16)
def _context(path: str | None, _source: tuple[object, ...]) -> ssl.SSLContext:
    """A context for ``path`` (None: httpx's default); ``_source`` keys the cache only."""
    if path is None:
        return httpx.create_ssl_context(verify=True)
    if Path(path).is_dir():
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)
