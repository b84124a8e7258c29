"""What the databases cannot store in text, in one place: the NUL character.

PostgreSQL text and JSONB reject NUL (``\\x00``; ``\\u0000`` in JSON), SQLite does not: both are
held to PostgreSQL's rule so that a mirror behaves the same on either. Three places meet it:

- an API model's string field (inventory.cloudflare.models): the record is rejected, naming
  the field;
- a record's raw JSON (inventory.sync.transform): the record is rejected, kept as ASCII JSON;
- the rejection's own reason and entity id (inventory.db.load): written with a visible escape.
"""

from __future__ import annotations

import re

__all__ = [
    "ESCAPED_NUL",
    "NUL_IN_JSON_REASON",
    "NUL_REASON",
    "has_nul",
    "json_has_nul",
    "storable_text",
]

NUL_REASON = "contains a NUL character"
NUL_IN_JSON_REASON = "contains a NUL character, which PostgreSQL cannot store"
ESCAPED_NUL = "\\u0000"  # how JSON text writes NUL (json.dumps and orjson alike)
# A \u0000 escape not itself escaped: an even number of backslashes before it.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def has_nul(value: object) -> bool:
    """True for a string holding NUL."""
    return isinstance(value, str) and "\x00" in value


def json_has_nul(text: str) -> bool:
    """True when JSON ``text`` holds a NUL: ``\\u0000``, not an escaped backslash and "u0000"."""
    # The substring test first: the regex is costly on every large record.
    return ESCAPED_NUL in text and _JSON_NUL.search(text) is not None


def storable_text(text: str | None) -> str | None:
    """Text both databases accept: NUL and lone surrogates written as visible escapes."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
