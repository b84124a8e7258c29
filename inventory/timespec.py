"""Times as people type them: durations, instants and crontab schedules.

One parser of each, shared by the settings (``sync_interval``, ``history_retention``,
``sync_cron``), the report commands (``--since 24h``) and the daemon's schedule, so that a value
``config check`` accepts is one ``inventory run`` can use. Errors are ``TimeSpecError`` (a
ValueError too: raised in a pydantic validator it becomes one line naming the source).
APScheduler is imported inside :func:`cron_trigger`, for start-up time.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.errors import CrontabError, TimeSpecError

__all__ = [
    "MAX_DURATION",
    "NEVER_FIRES",
    "CrontabError",
    "TimeSpecError",
    "check_cron",
    "cron_trigger",
    "optional_seconds",
    "parse_duration",
    "parse_instant",
    "seconds",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
MAX_DURATION = timedelta(days=100 * 365)  # longer is a typo, and overflows datetimes and timers
_NO_DURATION = frozenset({"none", "never", "forever", "off"})
_HINT = "use ISO 8601 (2026-11-01, 2026-11-01T12:00:00Z) or a duration ago (90m, 24h, 7d)"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FIVE_FIELDS = "must be a five-field crontab expression like '*/15 * * * *'"
NEVER_FIRES = (
    "no date matches its day, month and weekday fields together "
    "(a day and a weekday must both match)"
)


def _duration_seconds(text: str) -> float | None:
    """Seconds of "30s", "15m", "1d12h" (lower-case, no spaces); None when it is not one."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))


# --- durations as settings take them: seconds or a duration ----------------------------------


def seconds(value: object) -> float:
    """Seconds from a number or a string like "900", "30s", "15m", "1h30m" or "180d"."""
    found: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        found = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        found = float(text) if _NUMBER.fullmatch(text) else _duration_seconds(text)
    if found is None:
        raise TimeSpecError("must be seconds or a duration like '30s', '15m', '1h' or '180d'")
    if not math.isfinite(found) or found <= 0:
        raise TimeSpecError("must be a positive duration")
    if found > MAX_DURATION.total_seconds():  # "none" means no limit
        raise TimeSpecError("must be at most 100 years")
    return found


def optional_seconds(value: object) -> float | None:
    """:func:`seconds`, or None for no value and for "none", "never", "forever" or "off"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NO_DURATION):
        return None
    return seconds(value)


# --- durations and instants as the report commands take them ---------------------------------


def parse_duration(value: str, *, option: str = "duration") -> timedelta:
    """ "30s", "15m", "24h", "7d", "2w" or combinations like "1d12h"; always positive."""
    found = _duration_seconds(value.strip().lower().replace(" ", ""))
    if found is None:
        msg = f"{option}: cannot read {value!r} as a duration: use e.g. 90m, 24h, 7d or 180d"
        raise TimeSpecError(msg)
    if found <= 0:
        raise TimeSpecError(f"{option}: {value!r} is not a positive duration")
    if not found <= MAX_DURATION.total_seconds():  # also inf and nan
        raise TimeSpecError(f"{option}: {value!r} is longer than 100 years")
    return timedelta(seconds=found)


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


# --- crontab: the one parser `config check` and `inventory run` share --------------------------


def check_cron(value: str | None) -> str | None:
    """A settings validator: the stripped expression, or CrontabError (a ValueError)."""
    if value is None:
        return None
    cron_trigger(value)
    return value.strip()


def cron_trigger(expression: str) -> Any:
    """An APScheduler ``CronTrigger`` in UTC for a five-field crontab expression."""
    from apscheduler.triggers.cron import CronTrigger  # here, not at the top: start-up time

    fields = expression.split()
    if len(fields) != 5:
        raise CrontabError(FIVE_FIELDS)
    minute, hour, day, month, weekday = fields
    try:
        trigger = CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        raise CrontabError(f"{expression!r}: {exc}") from None
    # 30 February parses, but the daemon could never schedule it: refuse it here, with the rest.
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise CrontabError(f"{expression!r} never fires: {NEVER_FIRES}")
    return trigger


def _crontab_weekdays(field: str) -> str:
    """Crontab weekdays (0 or 7 is Sunday) as a list of names: APScheduler 3 counts from Monday."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"{step!r} is not a step")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (_weekday(text) for text in span.split("-", 1))
        else:
            first = _weekday(span)
            last = 6 if step else first
        days.update(range(first, last + 1, int(step or 1)))
    if not days:
        raise ValueError(f"{field!r} names no day of the week")
    return ",".join(_WEEKDAYS[day] for day in sorted({day % 7 for day in days}))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(text[:3])
    raise ValueError(f"{text!r} is not a day of the week")
