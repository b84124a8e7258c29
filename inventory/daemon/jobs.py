"""The daemon's scheduler jobs: one per account, the hourly prune, the minutely close-runs.

A mixin of :class:`inventory.daemon.runner.Daemon`, which owns the state declared below; kept
apart so that each file reads as one concern (the runner: start, serve, reload, stop).
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import nullcontext, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from inventory.cloudflare.ratelimit import ranked
from inventory.daemon.metrics import Metrics
from inventory.daemon.options import DaemonOptions
from inventory.daemon.schedule import (
    ANCHOR,
    account_schedule,
    cycle_length,
    cycle_start,
    schedule_trigger,
)
from inventory.db import models
from inventory.db.retention import prune_history
from inventory.db.runs import close_abandoned_runs, mark_unconfigured
from inventory.notify.deliver import Deliverer
from inventory.sync.outcome import describe_error
from inventory.sync.syncer import Syncer, utc_now

if TYPE_CHECKING:
    from inventory.settings import AccountConfig, Settings

__all__ = ["DaemonJobs"]

log = structlog.get_logger("inventory.daemon")


class DaemonJobs:
    settings: Settings
    options: DaemonOptions
    accounts: list[AccountConfig]
    metrics: Metrics
    stopping: threading.Event
    scheduler: Any
    schedule: Any
    triggers: dict[str, Any]
    _running: set[str]
    _closed: bool
    _idle: threading.Condition
    _due: set[str]
    _due_lock: threading.Lock
    _choosing: threading.Lock
    _chosen_rank: float  # the last success (epoch seconds) of what _next_due took; -inf: never
    _chosen_overdue: datetime  # ... and when it is overdue: the end of the cycle it became due in
    _due_since: dict[str, datetime]  # when each due account became due
    _order: dict[str, int]
    deliverer: Deliverer | None

    def _start_scheduler(self, syncer: Syncer) -> None:
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(self.settings.max_concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = utc_now()
        for account in self.accounts:
            scheduler.add_job(
                self._sync_job,
                schedule_trigger(
                    account_schedule(self.settings, account), jitter=self.options.jitter
                ),
                args=(syncer, account),
                id=account.id,
                name=f"sync {account.id}",
                next_run_time=now,  # the start-up sync; later fires follow the shared cycles
            )
        if self.settings.history_retention:
            self._add_prune_job(scheduler, syncer, now)
        scheduler.add_job(
            self._close_runs,
            IntervalTrigger(seconds=self.options.housekeeping, timezone=UTC),
            args=(syncer,),
            id="close-runs",
            name="close runs left behind",
            next_run_time=now + timedelta(seconds=self.options.housekeeping),
        )
        scheduler.add_listener(self._on_fire, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        scheduler.start()
        self.scheduler = scheduler
        self.metrics.scheduler_running.set(1)

    def _add_prune_job(self, scheduler: Any, syncer: Syncer, now: datetime) -> None:
        # Hourly, starting a minute in: retention is housekeeping, never in a sync's way.
        scheduler.add_job(
            self._prune_job,
            IntervalTrigger(hours=1, timezone=UTC),
            args=(syncer,),
            id="prune",
            name="prune history",
            next_run_time=now + timedelta(minutes=1),
        )

    def _sync_job(self, syncer: Syncer, account: AccountConfig) -> None:
        """Sync due accounts, the one that succeeded longest ago first, until none is left.

        Every firing of an account's schedule marks it due (:meth:`_on_fire`), even one that
        finds the account's job still busy; a job serves the due set rather than its own
        account, and keeps serving it, so a due account waits for a free thread and the token's
        budget, never for another firing. An account is due at most once (firings coalesce)
        and never taken while it is being synced here; one that turns out skipped (another
        replica has it, or it is done this cycle) just hands the thread to the next.
        """
        self._mark_due(account.id)  # in case the job ran before its firing was seen
        while True:
            with self._choosing:
                chosen = self._next_due(syncer.engine)
                rank, overdue = self._chosen_rank, self._chosen_overdue
            if chosen is None:
                return
            with self._idle:
                if self._closed or self.stopping.is_set():
                    return
                self._running.add(chosen.id)
            try:
                trigger = self.triggers.get(chosen.id, self.schedule)
                # Its requests wait for the token's budget in the same order: oldest success first;
                # overdue (due since an earlier cycle: the budget did not cover that cycle), they
                # ask for the budget at an even pace rather than in bursts.
                paced_from = time.monotonic() + (overdue - utc_now()).total_seconds()
                with ranked(rank, paced_from=paced_from):
                    result = syncer.sync_account(
                        chosen, cycle_start=cycle_start(trigger, utc_now())
                    )
            finally:
                with self._idle:
                    self._running.discard(chosen.id)
                    self._idle.notify_all()
            if result.status != "skipped" and self.deliverer is not None:
                self.deliverer.wake()  # notifications it queued go out now

    def _mark_due(self, account_id: str) -> None:
        with self._due_lock:
            if account_id not in self._due:
                self._due_since[account_id] = utc_now()
            self._due.add(account_id)

    def _next_due(self, engine: Engine) -> AccountConfig | None:
        """Take the due account with the oldest last success (never synced first); None if none.

        Callers hold ``_choosing`` (one chooser at a time); ``_due_lock`` is only ever held for
        a moment, so a firing never waits for this query.
        """
        with self._idle:
            running = set(self._running)
        configured = {a.id: a for a in self.accounts}  # as configured now (a reload applies)
        with self._due_lock:
            self._due.intersection_update(configured)  # drop those removed since they fired
            for gone in set(self._due_since) - self._due:
                del self._due_since[gone]
            ids = [i for i in self._due if i not in running]
        if not ids:
            return None
        successes: dict[str, datetime | None] = {}
        try:
            accounts = models.table_of(models.Account)
            with engine.connect() as conn:
                query = select(accounts.c.id, accounts.c.last_success_at)
                rows = conn.execute(query.where(accounts.c.id.in_(ids))).all()
                successes = {row[0]: row[1] for row in rows}
        except SQLAlchemyError:
            pass  # the configured order then; the sync itself reports the database error

        def starved(i: str) -> tuple[bool, datetime, int]:
            return successes.get(i) is not None, successes.get(i) or ANCHOR, self._order.get(i, 0)

        oldest = min(ids, key=starved)
        success = successes.get(oldest)
        self._chosen_rank = -math.inf if success is None else success.timestamp()
        now = utc_now()
        with self._due_lock:
            self._due.discard(oldest)
            since = self._due_since.pop(oldest, now)
        # Overdue once the cycle it became due in is over (first syncs too: a start-up burst
        # that the pace takes over from late leaves its accounts a half span behind).
        trigger = self.triggers.get(oldest, self.schedule)
        start = cycle_start(trigger, since)
        self._chosen_overdue = start + timedelta(seconds=cycle_length(trigger, start))
        return configured[oldest]

    def _prune_job(self, syncer: Syncer) -> None:
        """Apply ``history_retention``; on PostgreSQL one replica at a time does it."""
        retention = self.settings.history_retention
        if retention is None:  # turned off by a reload since the job fired
            return
        try:
            with (
                syncer.locks.hold("prune")
                if syncer.locks is not None
                else nullcontext(True) as taken
            ):
                if not taken or self.stopping.is_set():
                    return
                result = prune_history(
                    syncer.engine,
                    older_than=timedelta(seconds=retention),
                    now=utc_now(),
                )
            log.info("history pruned", removed=result.total)
        except SQLAlchemyError as exc:
            log.warning(
                "history pruning failed; the next hour tries again",
                error=describe_error(exc, database=""),
            )

    def _close_runs(self, syncer: Syncer) -> None:
        """No run stays 'running' once its work ended: ours that failed to record, dead ones."""
        try:
            syncer.close_unfinished()
            closed = close_abandoned_runs(syncer.engine, now=utc_now(), host=syncer.host)
        except SQLAlchemyError as exc:
            log.warning(
                "could not close runs left behind; the next minute tries again",
                error=describe_error(exc, database=""),
            )
            return
        if closed:
            log.warning("closed runs whose process is gone", runs=closed)

    def _reschedule(
        self, syncer: Syncer, old: Settings, *, added: list[str], removed: list[str]
    ) -> None:
        """Jobs for the new accounts and schedules; a running sync keeps what it began with."""
        scheduler = self.scheduler
        now = utc_now()
        for account_id in removed:
            with suppress(JobLookupError):
                scheduler.remove_job(account_id)
        before = {a.id: a for a in old.accounts}
        for account in self.accounts:
            schedule = account_schedule(self.settings, account)
            trigger = schedule_trigger(schedule, jitter=self.options.jitter)
            if account.id in added:
                scheduler.add_job(
                    self._sync_job,
                    trigger,
                    args=(syncer, account),
                    id=account.id,
                    name=f"sync {account.id}",
                    next_run_time=now,  # a new account is synced at once
                )
                continue
            scheduler.modify_job(account.id, args=(syncer, account))
            if account_schedule(old, before[account.id]) != schedule:
                scheduler.reschedule_job(account.id, trigger=trigger)
        self.metrics.prepare(added, credentials={a.id: a.credential_key for a in self.accounts})
        self._reschedule_prune(syncer)
        if removed:
            try:
                mark_unconfigured(syncer.engine, [a.id for a in self.accounts])
            except SQLAlchemyError as exc:  # start-up and the next reload mark them again
                log.warning("could not mark removed accounts", error=str(exc).splitlines()[0])

    def _reschedule_prune(self, syncer: Syncer) -> None:
        job = self.scheduler.get_job("prune")
        if self.settings.history_retention and job is None:
            self._add_prune_job(self.scheduler, syncer, utc_now())
        elif not self.settings.history_retention and job is not None:
            self.scheduler.remove_job("prune")

    def _on_fire(self, event: Any) -> None:
        """An account's schedule fired: it is due, whether its job started or was still busy.

        A job busy with another due account, or queued behind the executor's threads, is no
        reason to wait a cycle: the account joins the due set and the next free thread takes it
        in its turn. Only a firing that finds the account's own sync still running is an
        overlap: one warning, and the account syncs again once that sync ends.
        """
        if event.job_id in ("prune", "close-runs"):
            return
        self._mark_due(event.job_id)
        with self._idle:
            overlap = event.job_id in self._running
        if not overlap:
            return
        name = next((a.name for a in self.accounts if a.id == event.job_id), None)
        log.warning(
            "sync skipped",
            account_id=event.job_id,
            account=name,
            reason="the previous sync of this account is still running; "
            "the next one starts when it ends",
        )
        # Not a run: the account's next run is the one that starts when this one ends.
        self.metrics.overlaps.labels(event.job_id).inc()
