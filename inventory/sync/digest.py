"""Content digests of rows: equal content, equal hash, whatever the key order. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from inventory.rows import OBSERVED, Row

__all__ = ["content_hash", "make_row", "make_server_row", "server_digest"]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"not JSON-serialisable: {type(value).__name__}"
    raise TypeError(msg)


def content_hash(values: Mapping[str, Any]) -> str:
    """Order-independent digest of a row's values: equal content, equal hash."""
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_default)
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def make_row(values: dict[str, Any]) -> Row:
    return Row(values=values, digest=content_hash(values))


def server_digest(values: Mapping[str, Any]) -> str:
    """A server row's content hash: its values less the ``OBSERVED`` ones, in columns and raw."""
    content = {k: v for k, v in values.items() if k not in OBSERVED}
    raw = content.get("raw")
    if isinstance(raw, Mapping):
        content["raw"] = {k: v for k, v in raw.items() if k not in OBSERVED}
    return content_hash(content)


def make_server_row(values: dict[str, Any]) -> Row:
    observed = tuple(values[name] for name in OBSERVED)
    return Row(values=values, digest=server_digest(values), observed=observed)
