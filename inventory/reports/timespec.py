"""Times and durations as people type them: ISO 8601, or a duration ago ("24h", "7d")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["TimeSpecError", "parse_duration", "parse_instant"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
MAX_DURATION = timedelta(days=100 * 365)  # longer is a typo, and overflows datetimes
_HINT = "use ISO 8601 (2026-11-01, 2026-11-01T12:00:00Z) or a duration ago (90m, 24h, 7d)"


class TimeSpecError(ValueError):
    """A time or duration the user typed that we cannot read; the message names the option."""


def parse_duration(value: str, *, option: str = "duration") -> timedelta:
    """ "30s", "15m", "24h", "7d", "2w" or combinations like "1d12h"; always positive."""
    text = value.strip().lower().replace(" ", "")
    if not _DURATION.fullmatch(text):
        msg = f"{option}: cannot read {value!r} as a duration: use e.g. 90m, 24h, 7d or 180d"
        raise TimeSpecError(msg)
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        msg = f"{option}: {value!r} is not a positive duration"
        raise TimeSpecError(msg)
    if not seconds <= MAX_DURATION.total_seconds():  # also inf and nan
        msg = f"{option}: {value!r} is longer than 100 years"
        raise TimeSpecError(msg)
    return timedelta(seconds=seconds)


def parse_instant(value: str, *, now: datetime, option: str = "time") -> datetime:
    """An aware UTC instant: ``now``, a duration before ``now``, or ISO 8601 (naive = UTC)."""
    text = value.strip()
    if text.lower() == "now":
        return now.astimezone(UTC)
    if _DURATION.fullmatch(text.lower().replace(" ", "")):
        try:
            return (now - parse_duration(text, option=option)).astimezone(UTC)
        except OverflowError:
            msg = f"{option}: {value!r} ago is before the year 1"
            raise TimeSpecError(msg) from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{option}: cannot read {value!r} as a time: {_HINT}"
        raise TimeSpecError(msg) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        msg = f"{option}: {value!r} is outside the years 1 to 9999 in UTC"
        raise TimeSpecError(msg) from None
