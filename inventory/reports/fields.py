"""Field changes between two versions of an entity: which columns each kind has, JSON columns
compared path by path, a value as a plan line shows it, and which changes a plan shows
(``FieldFilter``). Pure; no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from inventory.selection import SelectionError

__all__ = [
    "ABSENT",
    "FIELDS",
    "JSON_FIELDS",
    "OBSERVATION_FIELDS",
    "RECORD_JSON",
    "WHO_WHEN",
    "FieldChange",
    "FieldFilter",
    "field_changes",
    "json_diff",
    "show_value",
]


class _Absent:
    """A JSON key that is not there (distinct from a JSON null)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

# The value columns of each kind, in display order (the `changes` view's list, same meaning).
FIELDS: dict[str, tuple[str, ...]] = {
    "portal": (
        "name",
        "hostname",
        "description",
        "secure_web_gateway",
        "code_mode",
        "allow_code_mode",
        "created_at",
        "created_by",
        "raw",
    ),
    "server": (
        "name",
        "hostname",
        "auth_type",
        "description",
        "status",
        "error",
        "error_details",
        "authentication_status",
        "last_synced",
        "last_successful_sync",
        "secure_web_gateway",
        "is_shared_oauth_callback_enabled",
        "auth_config_summary",
        "created_at",
        "created_by",
        "source",
        "raw",
    ),
    "portal_server": ("default_disabled", "on_behalf", "extra"),
    "tool": ("title", "description", "derived_key", "definition"),
    "prompt": ("title", "description", "derived_key", "definition"),
    "override": (
        "enabled",
        "alias",
        "description",
        "portal_alias",
        "portal_description",
        "server_alias",
        "server_description",
        "derived_key",
        "raw",
    ),
}
JSON_FIELDS = frozenset({"raw", "definition", "extra", "error_details", "auth_config_summary"})
# The JSON that is the API's record itself: its top-level keys that a column repeats are skipped.
RECORD_JSON = {
    "portal": "raw",
    "server": "raw",
    "tool": "definition",
    "prompt": "definition",
    "override": "raw",
}
_RECORD_KEYS = frozenset({"id", "name", "modified_at", "modified_by"})
# Observed by the API on its own schedule, not changed by anyone: hidden unless asked for.
OBSERVATION_FIELDS = frozenset({"last_synced", "last_successful_sync"})
WHO_WHEN = frozenset({"modified_at", "modified_by"})
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # a column, or a column and a JSON path: auth_config_summary.config.scope
    old: Any  # ABSENT when the path was not there
    new: Any

    @property
    def column(self) -> str:
        return re.split(r"[.\[]", self.field, maxsplit=1)[0]


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: true is not 1 (Python's == says it is), 1 is not 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _join(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _scalar_list(value: list[Any]) -> bool:
    return not any(isinstance(v, dict | list) for v in value)


def json_diff(path: str, old: Any, new: Any, skip: frozenset[str] = frozenset()) -> list[Any]:
    """Field changes between two JSON values, one per differing path (``skip``: top-level keys
    not to compare). Lists of plain values compare whole; lists of objects by index."""
    out: list[FieldChange] = []
    # a column that was NULL (or a path that was absent) and now holds an object, or the
    # reverse, shows as the paths it gained or lost
    if isinstance(new, dict) and (old is None or old is ABSENT):
        old = {}
    if isinstance(old, dict) and (new is None or new is ABSENT):
        new = {}

    def walk(at: str, a: Any, b: Any, skipped: frozenset[str]) -> None:
        if _same(a, b):
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys()):
                if key not in skipped:
                    walk(_join(at, key), a.get(key, ABSENT), b.get(key, ABSENT), frozenset())
            return
        if (
            isinstance(a, list)
            and isinstance(b, list)
            and not (_scalar_list(a) and _scalar_list(b))
        ):
            for i in range(max(len(a), len(b))):
                walk(
                    f"{at}[{i}]",
                    a[i] if i < len(a) else ABSENT,
                    b[i] if i < len(b) else ABSENT,
                    frozenset(),
                )
            return
        out.append(FieldChange(at, a, b))

    walk(path, old, new, skip)
    return out


def field_changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """What differs between two versions of an entity, JSON columns path by path."""
    out: list[FieldChange] = []
    record = RECORD_JSON.get(kind)
    skip = frozenset(FIELDS[kind]) | _RECORD_KEYS
    for name in FIELDS[kind]:
        a, b = old.get(name), new.get(name)
        if name in JSON_FIELDS:
            out.extend(json_diff(name, a, b, skip if name == record else frozenset()))
        elif a != b:
            out.append(FieldChange(name, a, b))
    return out


def show_value(value: Any) -> str:
    """A value as a plan line shows it: strings quoted, JSON compact, times to the second."""
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if value.microsecond else ""))
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """``--field`` (only these, JSON paths below them included), ``--exclude-field``, and
    ``--all-fields`` (observation fields too)."""

    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    all_fields: bool = False

    @staticmethod
    def _under(name: str, pattern: str) -> bool:
        return name == pattern or name.startswith((f"{pattern}.", f"{pattern}["))

    def keeps(self, change: FieldChange) -> bool:
        if any(self._under(change.field, p) for p in self.exclude):
            return False
        if self.only:
            return any(self._under(change.field, p) for p in self.only)
        return self.all_fields or change.column not in OBSERVATION_FIELDS

    def check(self, kinds: Sequence[str]) -> None:
        """Every named field must be a field of one of ``kinds``; the error lists them."""
        valid = dict.fromkeys(f for k in kinds for f in FIELDS[k])
        for option, names in (("--field", self.only), ("--exclude-field", self.exclude)):
            for name in names:
                if re.split(r"[.\[]", name, maxsplit=1)[0] not in valid:
                    kinds_text = ", ".join(kinds)
                    msg = (
                        f"{option} {name!r} is not a field of {kinds_text}; valid: "
                        f"{', '.join(valid)} (JSON ones take a path: raw.some_key)"
                    )
                    raise SelectionError(msg)
