"""Cloudflare's JSON envelope from a response body: strict, and as fast as ``json.loads``.

Duplicate envelope keys, non-standard literals (NaN, Infinity), bodies that are not UTF-8 and
envelopes without ``success: true`` and a ``result`` list are errors in an operator's words. A
document nested deeper than the recursion limit is decoded in a thread with room for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from inventory.errors import ApiError, BadResponseError, FetchError

__all__ = ["Caller", "cloudflare_errors", "decode_envelope", "decode_known", "digest", "kind"]


class Caller(Protocol):
    """What an error needs from the request: its description, and scrubbing of credentials."""

    what: str

    def error(self, cls: type[FetchError], text: str, **kwargs: Any) -> FetchError: ...


def digest(body: bytes) -> str:
    """A short fingerprint of a response body: equal bytes, equal digest."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def decode_known(body: bytes) -> dict[str, Any]:
    """Decode a body that ``decode_envelope`` accepted before (its digest says so)."""
    document, _ = _loads(body.decode("utf-8"), _refuse_constant)
    if not isinstance(document, dict):  # pragma: no cover - it was checked when first read
        raise TypeError("not an envelope")
    return document


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
    except (ValueError, RecursionError) as exc:
        raise call.error(BadResponseError, f"unusable JSON from {call.what}: {exc}") from None
    if dupes := duplicates & {"success", "result"}:
        raise call.error(
            BadResponseError,
            f"the envelope from {call.what} has more than one {' and '.join(sorted(dupes))}",
        )
    return document


_DEEP_LOCK = threading.Lock()
_DEEP_RECURSION_LIMIT = 50_000
_DEEP_STACK_BYTES = 512 * 1024 * 1024
_SPACE = re.compile(r"[ \t\n\r]*")


def _parse(text: str, constant: Callable[[str], Any]) -> tuple[Any, set[str]]:
    """Decode, noting keys the top-level object repeats (json keeps the last one silently).

    Only the envelope's own keys are walked here; every value is decoded by the C decoder, so
    this costs what ``json.loads`` costs.
    """
    decoder = json.JSONDecoder(parse_constant=constant)
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("{", pos):
        return decoder.decode(text), set()
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
        value, pos = decoder.raw_decode(text, pos)
        if key in document:
            duplicates.add(key)
        document[key] = value
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            return _finish(text, pos + 1, document, duplicates)
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]


def _finish(
    text: str, pos: int, document: dict[str, Any], duplicates: set[str]
) -> tuple[Any, set[str]]:
    if _SPACE.match(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise json.JSONDecodeError("Extra data", text, pos)
    return document, duplicates


def _loads(text: str, constant: Callable[[str], Any]) -> tuple[Any, set[str]]:
    """_parse; a document nested deeper than the recursion limit is decoded in a thread with
    room for it, so that one deep tool schema is quarantined by the transform instead of
    failing the whole page."""
    try:
        return _parse(text, constant)
    except RecursionError:
        pass
    result: list[tuple[Any, set[str]]] = []
    failure: list[BaseException] = []

    def decode() -> None:
        try:
            result.append(_parse(text, constant))
        except (ValueError, RecursionError) as exc:
            failure.append(exc)

    with _DEEP_LOCK:
        old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size(_DEEP_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, _DEEP_RECURSION_LIMIT))
        try:
            worker = threading.Thread(target=decode, name="deep-json")
            worker.start()
            worker.join()
        finally:
            threading.stack_size(old_stack)
            sys.setrecursionlimit(old_limit)
    if failure:
        raise failure[0]
    return result[0]


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
