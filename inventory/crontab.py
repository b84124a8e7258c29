"""Crontab expressions: the one parser ``config check`` and ``inventory run`` share.

Settings validate ``sync_cron`` with :func:`cron_trigger`, so an expression the daemon would
refuse ("61 * * * *") is refused when the settings load, naming its source, not when
``inventory run`` starts. APScheduler is imported inside the function, for start-up time.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

__all__ = ["CrontabError", "cron_trigger"]

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FIVE_FIELDS = "must be a five-field crontab expression like '*/15 * * * *'"


class CrontabError(ValueError):
    """An expression that is not a five-field crontab APScheduler can schedule."""


def cron_trigger(expression: str) -> Any:
    """An APScheduler ``CronTrigger`` in UTC for a five-field crontab expression."""
    from apscheduler.triggers.cron import CronTrigger  # here, not at the top: start-up time

    fields = expression.split()
    if len(fields) != 5:
        raise CrontabError(FIVE_FIELDS)
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        raise CrontabError(f"{expression!r}: {exc}") from None


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
