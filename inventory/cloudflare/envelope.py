"""Cloudflare's JSON envelope from a response body: strict, and as fast as ``json.loads``.

Duplicate envelope keys, non-standard literals (NaN, Infinity), bodies that are not UTF-8 and
envelopes without ``success: true`` and a ``result`` list are errors in an operator's words.

A value nested deeper than the C decoder goes (it stops at the recursion limit) is decoded again
by a decoder that keeps its own stack instead of Python's, so one deep tool schema is quarantined
by the transform instead of failing the whole page, and nothing process-wide changes while other
sync threads run. Past ``MAX_DEPTH`` levels the body is refused as unusable JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from inventory.errors import ApiError, BadResponseError, FetchError

__all__ = ["MAX_DEPTH", "Caller", "cloudflare_errors", "decode_envelope", "digest", "kind"]

MAX_DEPTH = 50_000  # levels of nesting decoded at most; deeper is refused


class Caller(Protocol):
    """What an error needs from the request: its description, and scrubbing of credentials."""

    what: str

    def error(self, cls: type[FetchError], text: str, **kwargs: Any) -> FetchError: ...


def digest(body: bytes) -> str:
    """A short fingerprint of a response body: equal bytes, equal digest."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON literal {name}")


def decode_envelope(
    body: bytes, *, call: Caller, status_code: int, single: bool = False
) -> dict[str, Any]:
    """Cloudflare's success envelope with a ``result`` list (an object if ``single``), from a
    JSON body; or the error."""
    status = f"HTTP {status_code}"
    document = _decode_json(call, body, status)
    if not isinstance(document, dict):
        raise call.error(
            BadResponseError,
            f"expected Cloudflare's JSON envelope object from {call.what}, got a {kind(document)}",
        )
    success = document.get("success")
    if success is False:
        described, codes = cloudflare_errors(document)
        raise call.error(
            ApiError,
            f"{call.what} answered {status} with success: false: "
            + (described or "no errors listed"),
            status_code=status_code,
            codes=codes,
        )
    if success is not True:
        raise call.error(
            BadResponseError, f"the envelope from {call.what} has no boolean 'success' ({status})"
        )
    expected = dict if single else list
    if not isinstance(document.get("result"), expected):
        raise call.error(
            BadResponseError,
            f"'result' from {call.what} is {kind(document.get('result'))}, expected "
            + ("an object" if single else "a list"),
        )
    return document


def _decode_json(call: Caller, body: bytes, status: str) -> Any:
    if not body.strip():
        raise call.error(BadResponseError, f"empty body ({status}) from {call.what}; expected JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise call.error(
            BadResponseError, f"the body from {call.what} is not UTF-8 (at byte {exc.start})"
        ) from None

    try:
        document, duplicates = _loads(text, _refuse_constant)
    except json.JSONDecodeError as exc:
        at = len(text[: exc.pos].encode())
        truncated = exc.pos >= len(text.rstrip())
        what = "truncated JSON" if truncated else f"invalid JSON ({exc.msg})"
        raise call.error(
            BadResponseError, f"{what} at byte {at} from {call.what} ({status})"
        ) from None
    except ValueError as exc:
        raise call.error(BadResponseError, f"unusable JSON from {call.what}: {exc}") from None
    if dupes := duplicates & {"success", "result"}:
        raise call.error(
            BadResponseError,
            f"the envelope from {call.what} has more than one {' and '.join(sorted(dupes))}",
        )
    return document


_SPACE = re.compile(r"[ \t\n\r]*")


def _loads(text: str, constant: Callable[[str], Any]) -> tuple[Any, set[str]]:
    """Decode, noting keys the top-level object repeats (json keeps the last one silently).

    Only the envelope's own keys are walked here; every value is decoded by the C decoder, so
    this costs what ``json.loads`` costs.
    """
    decoder = json.JSONDecoder(parse_constant=constant)
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("{", pos):
        value, end = _value(decoder, text, pos, constant)
        return _finish(text, end, value, set())
    document: dict[str, Any] = {}
    duplicates: set[str] = set()
    pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return _finish(text, pos + 1, document, duplicates)
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        value, pos = _value(decoder, text, pos, constant)
        if key in document:
            duplicates.add(key)
        document[key] = value
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            return _finish(text, pos + 1, document, duplicates)
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]


def _finish(text: str, pos: int, document: Any, duplicates: set[str]) -> tuple[Any, set[str]]:
    if _SPACE.match(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise json.JSONDecodeError("Extra data", text, pos)
    return document, duplicates


def _value(
    decoder: json.JSONDecoder, text: str, pos: int, constant: Callable[[str], Any]
) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, pos)
    except RecursionError:  # nested deeper than the C decoder goes: no recursion here
        return _decode_deep(text, pos, constant)


_NUMBER = re.compile(r"(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?")
_LITERALS = (("null", None), ("true", True), ("false", False))
_CONSTANTS = ("NaN", "Infinity", "-Infinity")


_Open = list[tuple[dict[str, Any] | list[Any], str]]  # containers being filled, pending keys


def _decode_deep(text: str, pos: int, constant: Callable[[str], Any]) -> tuple[Any, int]:
    """``raw_decode`` with its own stack: any depth up to MAX_DEPTH, the same values and errors."""
    stack: _Open = []
    while True:
        opened, value, pos = _begin(text, pos, stack, constant)
        if opened:
            continue
        while stack and _put(text, pos, stack, value):  # the container ends here
            value, pos = stack.pop()[0], _SPACE.match(text, pos).end() + 1  # type: ignore[union-attr]
        if not stack:
            return value, pos
        pos = _SPACE.match(text, pos).end() + 1  # type: ignore[union-attr]  # past the comma
        if isinstance(stack[-1][0], dict):
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            key, pos = _key(text, pos)
            stack[-1] = (stack[-1][0], key)


def _begin(
    text: str, pos: int, stack: _Open, constant: Callable[[str], Any]
) -> tuple[bool, Any, int]:
    """Open a non-empty container (True), or read a whole value (False, the value)."""
    pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    opener = text[pos : pos + 1]
    if opener not in ("{", "["):
        value, pos = _scalar(text, pos, constant)
        return False, value, pos
    pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}" if opener == "{" else "]", pos):
        return False, {} if opener == "{" else [], pos + 1
    if len(stack) >= MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH:,} levels")
    key = ""
    if opener == "{":
        key, pos = _key(text, pos)
    stack.append(({} if opener == "{" else [], key))
    return True, None, pos


def _put(text: str, pos: int, stack: _Open, value: Any) -> bool:
    """Put ``value`` in the innermost container; True if the container ends next, False if a
    comma follows."""
    container, key = stack[-1]
    if isinstance(container, dict):
        container[key] = value
    else:
        container.append(value)
    pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if text.startswith(",", pos):
        return False
    if not text.startswith("}" if isinstance(container, dict) else "]", pos):
        raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    return True


def _key(text: str, pos: int) -> tuple[str, int]:
    """An object's key and the position after its ':'."""
    if not text.startswith('"', pos):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
    pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if not text.startswith(":", pos):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    return key, pos + 1


def _scalar(text: str, pos: int, constant: Callable[[str], Any]) -> tuple[Any, int]:
    if text.startswith('"', pos):
        string: tuple[str, int] = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        return string
    if number := _NUMBER.match(text, pos):
        integer, fraction, exponent = number.groups()
        if fraction or exponent:
            return float(integer + (fraction or "") + (exponent or "")), number.end()
        return int(integer), number.end()
    for literal, value in _LITERALS:
        if text.startswith(literal, pos):
            return value, pos + len(literal)
    for name in _CONSTANTS:
        if text.startswith(name, pos):
            return constant(name), pos + len(name)
    raise json.JSONDecodeError("Expecting value", text, pos)


def kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def cloudflare_errors(document: object) -> tuple[str, tuple[int, ...]]:
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return "", ()
    parts: list[str] = []
    codes: list[int] = []
    for error in errors[:5]:
        error_dict = error if isinstance(error, dict) else {"message": error}
        code = error_dict.get("code")
        message = str(error_dict.get("message", "")).strip()[:300]
        if isinstance(code, int) and not isinstance(code, bool):
            codes.append(code)
            parts.append(
                f"Cloudflare error {code}: {message}" if message else f"Cloudflare error {code}"
            )
        else:
            parts.append(f"Cloudflare error: {message}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more, tuple(codes)
