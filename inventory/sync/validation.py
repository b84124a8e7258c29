"""A raw record admitted through its API model, or rejected with a reason. Pure.

Rejected: a record that does not fit the published schema, or that the database could not
store as it is (too big, nested too deep, a NUL, a lone surrogate).
"""

from __future__ import annotations

import json
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from inventory.rows import Rejection
from inventory.storable import ESCAPED_NUL, NUL_IN_JSON_REASON, json_has_nul

__all__ = ["MAX_RECORD_BYTES", "id_of", "plainly_storable", "storable_problem", "validate"]

M = TypeVar("M", bound=BaseModel)

MAX_RECORD_BYTES = 2_000_000


def plainly_storable(raw: object) -> bool:
    """True when the record is certainly storable; False means: ask ``storable_problem``.

    orjson encodes about ten times faster than json.dumps and refuses what we refuse
    (lone surrogates) or may not know (over 254 levels deep, integers past 64 bits): all of
    those take the exact path. The spaced text the size limit counts is never more than
    twice as long as orjson's compact text, and both write NUL as ``\\u0000``.
    """
    try:
        blob = orjson.dumps(raw)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return False
    return 2 * len(blob) <= MAX_RECORD_BYTES and ESCAPED_NUL.encode() not in blob


def storable_problem(raw: object) -> tuple[str | None, str]:
    """Why the database could not hold this record as it is (or None), and its JSON text."""
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except RecursionError:
        # Neither we (hashing) nor PostgreSQL (jsonb) can take a record nested this deep.
        return "nested too deeply to store (about 1,000 levels or more)", '"(not kept)"'
    if len(text) > MAX_RECORD_BYTES:
        excerpt = {"truncated": True, "characters": len(text), "start": text[:10_000]}
        reason = f"record is {len(text):,} characters, over the {MAX_RECORD_BYTES:,} limit"
        return reason, json.dumps(excerpt, ensure_ascii=True)
    if json_has_nul(text):
        # kept as ASCII JSON: it may hold a lone surrogate too
        return NUL_IN_JSON_REASON, json.dumps(raw, ensure_ascii=True, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Kept as ASCII JSON: the surrogate as a \ud800 escape, everything else intact.
        reason = "contains a lone surrogate, which is not valid Unicode"
        return reason, json.dumps(raw, ensure_ascii=True, default=str)
    return None, text


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def id_of(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def validate(model: type[M], raw: object, kind: str, rejections: list[Rejection]) -> M | None:
    problem, text = (None, None) if plainly_storable(raw) else storable_problem(raw)
    if problem is None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problem = _describe(exc)
    if text is None:
        text = storable_problem(raw)[1]
    rejections.append(Rejection(kind=kind, entity_id=id_of(raw), reason=problem, raw=text))
    return None
