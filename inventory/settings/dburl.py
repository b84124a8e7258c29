"""Database URLs read without SQLAlchemy: importing it costs half a second of start-up time,
which ``inventory config check`` and ``--help`` should not pay. The grammar is SQLAlchemy's
(``sqlalchemy.engine.url._parse_url``); a test checks both read the same URLs alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

__all__ = ["DatabaseURL", "parse_database_url"]

_URL = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    drivername: str  # "postgresql+psycopg", "sqlite"
    passwords: tuple[str, ...]  # the user's and any ?password=, unquoted
    masked: str  # the text with every password replaced by ***


def parse_database_url(text: str) -> DatabaseURL:
    """Read ``text`` as SQLAlchemy would; ValueError (without the text) if it cannot."""
    match = _URL.match(text)
    if match is None:
        raise ValueError("not a database URL")
    port = match["port"]
    if port and not port.isdigit():
        raise ValueError("the port is not a number")
    passwords = [unquote(match["password"])] if match["password"] else []
    if match["query"]:
        passwords += [v for k, v in parse_qsl(match["query"]) if k == "password" and v]
    masked = text
    if match["password"] is not None:
        start, end = match.span("password")
        masked = f"{text[:start]}***{text[end:]}"
    masked = _QUERY_PASSWORD.sub("***", masked)
    return DatabaseURL(match["name"], tuple(passwords), masked)
