"""The last line of defence: every configured secret, replaced wherever it appears in a log event.

Secrets are registered where they are read (account tokens and keys, the database password;
later features add theirs with ``register_secret``). ``scrub_event`` is a structlog processor
that runs after exceptions are rendered to text and before the renderer, and replaces each
registered secret of at least ``MIN_LENGTH`` characters with ``[redacted]`` in:

    strings          anywhere in the event: the message, values, dict keys
    containers       dicts, lists, tuples and sets, nested (to ``_MAX_DEPTH`` levels)
    bytes            bytes and bytearray values (the secret's UTF-8 encoding)
    exceptions       rendered tracebacks (message, notes, chained causes) are strings by then;
                     an exception or any other object passed as a value is replaced by its
                     scrubbed ``repr`` when that repr holds a secret (exception args included)
    escapes          the secret as it appears inside a ``repr`` or JSON string (backslashes and
                     quotes escaped) and URL-encoded (``%40`` for ``@``, as in database URLs)

Shorter secrets are not replaced: hunting 4-character strings would mangle ordinary words in
logs. ``inventory config check`` warns about them instead.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_LENGTH",
    "REDACTED",
    "register_secret",
    "registered_count",
    "scrub_event",
    "scrub_text",
    "scrub_value",
]

MIN_LENGTH = 8
REDACTED = "[redacted]"
_MAX_DEPTH = 12
_PLAIN = (int, float, bool, type(None))

_lock = threading.Lock()
_secrets: set[str] = set()
# The patterns for _secrets, compiled when a line is first scrubbed after a registration (None:
# not yet). Compiling on each registration cost O(n) per secret, O(n^2) for n accounts.
_compiled: tuple[re.Pattern[str], re.Pattern[bytes]] | None = None


def _variants(secret: str) -> Iterable[str]:
    yield secret
    yield repr(secret)[1:-1]
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield quote(secret, safe="")
    yield quote_plus(secret, safe="")


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on (ignored when shorter than MIN_LENGTH)."""
    global _compiled  # noqa: PLW0603 - one registry per process, by design
    if not value or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _compiled = None


def registered_count() -> int:
    return len(_secrets)


def _patterns() -> tuple[re.Pattern[str], re.Pattern[bytes]] | None:
    """The text and bytes patterns of every registered secret; None when there is none."""
    global _compiled  # noqa: PLW0603
    compiled = _compiled
    if compiled is not None or not _secrets:
        return compiled
    with _lock:
        if _compiled is None:
            texts = sorted({v for s in _secrets for v in _variants(s)}, key=len, reverse=True)
            raw = [t.encode("utf-8", "surrogatepass") for t in texts]
            _compiled = (
                re.compile("|".join(map(re.escape, texts))),
                re.compile(b"|".join(map(re.escape, raw))),
            )
        return _compiled


def scrub_text(text: str) -> str:
    patterns = _patterns()
    return text if patterns is None else patterns[0].sub(REDACTED, text)


def scrub_value(value: Any, _depth: int = 0) -> Any:
    """``value`` with every registered secret replaced; unchanged objects are returned as-is."""
    if isinstance(value, _PLAIN) or (patterns := _patterns()) is None:
        return value
    if isinstance(value, str):
        return patterns[0].sub(REDACTED, value)
    if isinstance(value, bytes | bytearray):
        return patterns[1].sub(REDACTED.encode(), bytes(value))
    if _depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {scrub_value(k, _depth + 1): scrub_value(v, _depth + 1) for k, v in value.items()}
    if _depth < _MAX_DEPTH and type(value) in (list, tuple, set, frozenset):
        items = [scrub_value(item, _depth + 1) for item in value]
        return items if isinstance(value, list) else type(value)(items)
    return _scrub_repr(value)


def _scrub_repr(value: object) -> object:
    """Any other object: itself, or its scrubbed ``repr`` when that repr holds a secret."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the log line
        return f"<{type(value).__name__} object: repr failed>"
    scrubbed = scrub_text(text)
    return value if scrubbed == text else scrubbed


def scrub_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: the event with every registered secret replaced."""
    if _patterns() is None:
        return event_dict
    return {scrub_value(key): scrub_value(value) for key, value in event_dict.items()}
