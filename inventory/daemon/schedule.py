"""When each account syncs: one trigger per schedule, and the cycle a moment belongs to.

Intervals are aligned to a fixed epoch and cron times are absolute, so every replica computes
the same cycles: a sync that started in this cycle on another replica is recognised as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from apscheduler.triggers.interval import IntervalTrigger

from inventory.errors import ConfigError, CrontabError
from inventory.timespec import NEVER_FIRES, cron_trigger

if TYPE_CHECKING:
    from inventory.settings import AccountConfig, Settings

__all__ = [
    "ANCHOR",
    "AlignedInterval",
    "Schedule",
    "Scheduled",
    "account_schedule",
    "cycle_length",
    "cycle_start",
    "schedule_trigger",
]

ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)  # interval cycles count from here on every replica
_TICK = timedelta(microseconds=1)


class Scheduled(Protocol):
    """What a trigger is made from: the Settings, or an account's Schedule."""

    @property
    def sync_cron(self) -> str | None: ...
    @property
    def sync_interval(self) -> float: ...


@dataclass(frozen=True)
class Schedule:
    """A schedule: a crontab expression, else an interval in seconds."""

    sync_cron: str | None
    sync_interval: float


class AlignedInterval(IntervalTrigger):  # type: ignore[misc]  # APScheduler 3 has no types
    """Fires at ANCHOR + n * interval whatever the previous fire was (a start-up run included)."""

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime | None:
        after = now if previous is None else max(now, previous + _TICK)
        fire: datetime | None = super().get_next_fire_time(None, after)
        return fire


def schedule_trigger(settings: Scheduled, *, jitter: float = 0.0) -> Any:
    if settings.sync_cron:
        try:
            trigger = cron_trigger(settings.sync_cron)
        except CrontabError as exc:
            raise ConfigError(f"sync_cron: {exc}") from None
        trigger.jitter = jitter or None
        return trigger
    return AlignedInterval(
        seconds=settings.sync_interval, start_date=ANCHOR, timezone=UTC, jitter=jitter or None
    )


def account_schedule(settings: Settings, account: AccountConfig) -> Schedule:
    """The account's own ``sync_interval``/``sync_cron`` where it sets one, else the global."""
    if account.sync_cron:
        return Schedule(sync_cron=account.sync_cron, sync_interval=settings.sync_interval)
    if account.sync_interval:
        return Schedule(sync_cron=None, sync_interval=account.sync_interval)
    return Schedule(sync_cron=settings.sync_cron, sync_interval=settings.sync_interval)


def cycle_start(trigger: Any, now: datetime) -> datetime:
    """The latest fire time of a jitter-free ``trigger`` at or before ``now``."""
    span = timedelta(seconds=cycle_length(trigger, now))
    for _ in range(24):
        fire = trigger.get_next_fire_time(None, now - span)
        if fire is not None and fire <= now:
            while (following := trigger.get_next_fire_time(fire, fire + _TICK)) <= now:
                fire = following
            return fire  # type: ignore[no-any-return]
        span *= 2
    return now


def cycle_length(trigger: Any, now: datetime) -> float:
    """Seconds between the trigger's next two fires after ``now``.

    A schedule that does not fire twice more has no cycle: ConfigError (the settings refuse
    such a crontab first; this keeps the daemon from crashing on one that got here anyway).
    """
    first = trigger.get_next_fire_time(None, now)
    second = None if first is None else trigger.get_next_fire_time(first, first + _TICK)
    if first is None or second is None:
        raise ConfigError(f"sync_cron: the schedule {trigger} never fires again: {NEVER_FIRES}")
    return float((second - first).total_seconds())
