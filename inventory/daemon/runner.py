"""``inventory run``: sync every account at start-up, then on a schedule, until SIGTERM or SIGINT.

start-up   the schema must be at head (or ``--upgrade``); SQLite: one daemon per file;
           the database may be down: start-up waits for it
schedule   one APScheduler job per account (no overlap, missed runs coalesced), at most
           max_concurrency at once; intervals are aligned to a fixed epoch and cron times
           are absolute, so every replica shares the same cycles
replicas   a lock per account for the whole sync (PostgreSQL advisory lock, SQLite lock file);
           holding it, an account whose run already started in this cycle is skipped;
           on PostgreSQL they share one rate-limit budget per credential (inventory.db.budget)
fairness   a job that fires syncs whichever due account succeeded longest ago (never first),
           so when a token's budget cannot cover every account in a cycle, none starves
runs       every minute: record the outcome of runs whose recording failed, and close as
           abandoned the runs of this host whose process is gone
shutdown   first signal: schedule nothing more, give running syncs ``grace`` seconds, then
           abort them (nothing written, run recorded failed/Aborted) and exit 0;
           second signal: exit 130 at once
SIGHUP     read the configuration again: accounts added, removed or changed, the schedule, the
           log level, page_size, max_pages and account_deadline apply to the syncs that start
           from then on; running syncs go on as they began. A configuration that does not
           validate is logged and the running one kept; settings only a restart can change
           (database_url, metrics_address, the HTTP client's) are logged as ignored.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import stamina
import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from inventory.daemon.health import HealthServer, Probes, Readiness, check_readiness
from inventory.daemon.metrics import CONTENT_TYPE_LATEST, Metrics
from inventory.daemon.reload import compare_settings
from inventory.daemon.schedule import (
    ANCHOR,
    account_schedule,
    cycle_length,
    cycle_start,
    schedule_trigger,
)
from inventory.daemon.service import build_syncer, fewer_collections, open_client
from inventory.db import models
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.locks import SingleDaemonLock
from inventory.db.migrate import ensure_current, upgrade
from inventory.db.runs import close_abandoned_runs, mark_unconfigured
from inventory.errors import InventoryError
from inventory.logs import configure_logging
from inventory.sync.outcome import describe_error
from inventory.sync.syncer import Syncer, utc_now

if TYPE_CHECKING:
    from inventory.settings import AccountConfig, Settings

__all__ = ["Daemon", "DaemonOptions"]

log = structlog.get_logger("inventory.daemon")
# Seconds between attempts to reach the database at start-up: doubling, then every 30 s.
_START_UP_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass(frozen=True)
class DaemonOptions:
    upgrade: bool = False
    grace: float = 30.0  # seconds running syncs may take to finish after the first signal
    abort_wait: float = 10.0  # then seconds aborted syncs may take to notice and roll back
    ready_max_age: float | None = None  # default: three cycles
    jitter: float = 0.0  # random delay, per account and cycle, added to each scheduled start
    housekeeping: float = 60.0  # seconds between closing runs left behind (see _close_runs)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        options: DaemonOptions,
        *,
        reload: Callable[[], Settings] | None = None,
    ) -> None:
        """``reload``: reads the settings afresh on SIGHUP (raises ConfigError when invalid)."""
        self.settings = settings
        self.options = options
        self._load = reload
        self._hup = threading.Event()
        self.accounts = list(settings.accounts)
        self.metrics = Metrics()
        self.stopping = threading.Event()  # no new syncs
        self.cancel = threading.Event()  # running syncs must stop
        self.schedule = schedule_trigger(settings)
        # Each account's trigger: its own schedule where it sets one (cycle_start needs it too).
        self.triggers = {
            a.id: schedule_trigger(account_schedule(settings, a)) for a in self.accounts
        }
        self.period = max(
            cycle_length(t, utc_now()) for t in [self.schedule, *self.triggers.values()]
        )
        self.ready_max_age = options.ready_max_age or 3 * self.period
        self.scheduler: Any = None
        self._running: set[str] = set()
        self._closed = False  # set under _idle: no job may start any more
        self._idle = threading.Condition()
        self._signals = 0
        self._due: dict[
            str, AccountConfig
        ] = {}  # accounts whose job fired and that no job took yet
        self._choosing = threading.Lock()  # guards _due; never held with _idle
        self._order = {a.id: i for i, a in enumerate(self.accounts)}

    def run(self) -> int:
        """Serve until a signal; the exit code (0 after a clean stop)."""
        with fewer_collections():  # the daemon's life is syncs
            return self._run()

    def _run(self) -> int:
        self._install_signals()
        url = self.settings.database_url_secret()
        engine = make_engine(url, pool_size=2 * self.settings.max_concurrency + 2)
        # /readyz and /metrics read through their own engine: never behind a sync's write lock.
        reader = make_engine(url, pool_size=2, read_only=True)
        guard = SingleDaemonLock(path) if (path := sqlite_path(url)) is not None else None
        try:
            if guard is not None:
                guard.acquire()
            server = self._start_health(reader)
            try:
                if not self._prepare_database(engine):
                    return 0
                return self._serve(engine)
            finally:
                server.stop()
        finally:
            engine.dispose()
            reader.dispose()
            if guard is not None:
                guard.release()

    def _serve(self, engine: Engine) -> int:
        with open_client(self.settings, engine) as client:
            syncer = build_syncer(
                self.settings, engine, client, cancel=self.cancel, on_result=self.metrics.observe
            )
            self._start_scheduler(syncer)
            log.info(
                "daemon started",
                accounts=len(self.accounts),
                schedule=self.settings.sync_cron or f"every {self.period:g}s",
                max_concurrency=self.settings.max_concurrency,
                replicas="single daemon" if engine.dialect.name == "sqlite" else "advisory locks",
            )
            while not self.stopping.wait(0.5):
                if self._hup.is_set():
                    self._hup.clear()
                    self._reload(syncer)
            return self._shutdown()

    def _start_health(self, engine: Engine) -> HealthServer:
        def readiness() -> Readiness:
            state = check_readiness(
                engine, [a.id for a in self.accounts], max_age=self.ready_max_age, now=utc_now()
            )
            self.metrics.database_up.set(1 if state.database == "ok" else 0)
            self.metrics.set_last_success(state.last_success)
            if self.stopping.is_set():
                state.ready = False
            return state

        def metrics() -> tuple[bytes, str]:
            readiness()  # refreshes the gauges the database knows best
            return self.metrics.render(), CONTENT_TYPE_LATEST

        self.metrics.prepare(
            [a.id for a in self.accounts],
            {a.id: a.label for a in self.accounts},
            credentials={a.id: a.credential_key for a in self.accounts},
        )
        address = self.settings.metrics_address
        try:
            server = HealthServer(address, Probes(self._healthy, readiness, metrics))
        except OSError as exc:
            raise InventoryError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        server.start()
        log.info("health endpoint listening", address=f"{server.host}:{server.port}")
        return server

    def _healthy(self) -> bool:
        scheduler = self.scheduler
        return not self.stopping.is_set() and scheduler is not None and bool(scheduler.running)

    def _prepare_database(self, engine: Engine) -> bool:
        """Schema check (or upgrade) and start-up cleanup; waits out a database that is down.

        Retried by stamina, like the client's requests; the wait is the stop event's, so a
        signal ends it at once. False: stopped before the database answered.
        """
        waits = iter(_START_UP_WAITS)
        try:
            for attempt in stamina.retry_context(
                on=lambda exc: self._database_down(exc, next(waits, _START_UP_WAITS[-1])),
                attempts=None,
                timeout=None,
            ):
                with attempt:
                    if self.stopping.is_set():
                        return False
                    self._check_database(engine)
        except SQLAlchemyError:  # given up: a signal came while the database was down
            return False
        return True

    def _check_database(self, engine: Engine) -> None:
        if self.options.upgrade:
            before, after = upgrade(engine)
            if before != after:
                log.info("schema upgraded", before=before, after=after)
        else:
            ensure_current(engine)
        mark_unconfigured(engine, [a.id for a in self.accounts])
        close_abandoned_runs(engine, now=utc_now())

    def _database_down(self, exc: Exception, delay: float) -> bool | float:
        """stamina's predicate: wait ``delay`` (or until a signal) and try again, or give up."""
        if not isinstance(exc, SQLAlchemyError):
            return False
        reason = describe_error(exc, database="")
        log.warning("database unreachable at start-up", error=reason, retry_in_s=delay)
        if self.stopping.wait(delay):
            return False
        return 0.0  # waited already, on the stop event

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
        scheduler.add_listener(self._on_overlap, EVENT_JOB_MAX_INSTANCES)
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
        """Sync the due account that succeeded longest ago (not necessarily ``account``).

        Every job that fires adds its account to the due set and takes the most starved one
        out, so the executor's queue runs the cycle's accounts oldest-last-success first; one
        that turns out skipped (another replica has it, or it is done this cycle) hands the
        thread to the next.
        """
        with self._choosing:
            self._due[account.id] = account
        while True:
            with self._choosing:
                chosen = self._next_due(syncer.engine)
            if chosen is None:
                return
            with self._idle:
                if self._closed:
                    return
                self._running.add(chosen.id)
            try:
                trigger = self.triggers.get(chosen.id, self.schedule)
                result = syncer.sync_account(chosen, cycle_start=cycle_start(trigger, utc_now()))
            finally:
                with self._idle:
                    self._running.discard(chosen.id)
                    self._idle.notify_all()
            if result.status != "skipped":
                return

    def _next_due(self, engine: Engine) -> AccountConfig | None:
        """Take the due account with the oldest last success (never synced first); None if none."""
        with self._idle:
            running = set(self._running)
        for gone in set(self._due) - {a.id for a in self.accounts}:
            del self._due[gone]  # removed from the configuration since its job fired
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
        return self._due.pop(oldest)

    def _prune_job(self, syncer: Syncer) -> None:
        """Apply ``history_retention``; on PostgreSQL one replica at a time does it."""
        from inventory.db.retention import prune_history

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

    def _reload(self, syncer: Syncer) -> None:
        """SIGHUP: apply what changed to the syncs that start from now on."""
        if self._load is None:
            log.warning("SIGHUP: this daemon cannot read its configuration again; ignored")
            return
        try:
            new = self._load()
            schedule = schedule_trigger(new)
            triggers = {a.id: schedule_trigger(account_schedule(new, a)) for a in new.accounts}
        except InventoryError as exc:
            log.error(
                "configuration not reloaded: it does not validate; the running one is kept",
                error=str(exc),
            )
            return
        try:
            self._apply(syncer, new, schedule, triggers)
        except Exception:  # a reload must never take the daemon down
            log.exception("configuration reload failed; the syncs go on as scheduled")

    def _apply(
        self, syncer: Syncer, new: Settings, schedule: Any, triggers: dict[str, Any]
    ) -> None:
        old = self.settings
        change = compare_settings(old, new)
        if change.logging_changed:
            configure_logging(new.log_level, new.log_format)
        for name in change.ignored:
            log.warning("setting changed; ignored until restart", setting=name)
        for warning in new.warnings:  # as at start-up: short secrets, deprecated names
            structlog.get_logger("inventory.settings").warning(warning)
        self.settings, self.accounts = new, list(new.accounts)
        self._order = {a.id: i for i, a in enumerate(self.accounts)}
        self.schedule, self.triggers = schedule, triggers
        self.period = max(cycle_length(t, utc_now()) for t in [schedule, *triggers.values()])
        self.ready_max_age = self.options.ready_max_age or 3 * self.period
        syncer.per_page, syncer.max_pages = new.page_size, new.max_pages
        syncer.account_deadline = new.account_deadline
        self._reschedule(syncer, old, added=change.added, removed=change.removed)
        log.info(
            "configuration reloaded",
            accounts_added=change.added,
            accounts_removed=change.removed,
            accounts_changed=change.changed,
            settings_changed=change.settings,
            ignored_until_restart=change.ignored,
            accounts=len(self.accounts),
            log_level=new.log_level,
            schedule=new.sync_cron or f"every {new.sync_interval:g}s",
        )

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

    def _on_overlap(self, event: Any) -> None:
        if event.job_id in ("prune", "close-runs"):
            return
        name = next((a.name for a in self.accounts if a.id == event.job_id), None)
        log.warning(
            "sync skipped",
            account_id=event.job_id,
            account=name,
            reason="the previous sync of this account is still running",
        )
        self.metrics.runs.labels(event.job_id, "skipped").inc()
        self.metrics.overlaps.labels(event.job_id).inc()

    def _shutdown(self) -> int:
        log.info("stopping: no new syncs", running=len(self._running), grace_s=self.options.grace)
        self.metrics.scheduler_running.set(0)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        with self._idle:
            self._closed = True
            drained = self._idle.wait_for(lambda: not self._running, timeout=self.options.grace)
            if not drained:
                log.warning("grace period over: aborting syncs", accounts=sorted(self._running))
                self.cancel.set()
                self._idle.wait_for(lambda: not self._running, timeout=self.options.abort_wait)
            stuck = sorted(self._running)
        if stuck:
            # A request stuck in a timeout or a retry wait: its run is closed as abandoned later.
            log.error("syncs did not stop in time; exiting without them", accounts=stuck)
            sys.stderr.flush()
            os._exit(1)
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        self._hup.set()  # the main loop reloads: a signal handler must not take locks

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, b"second signal: exiting at once\n")
            os._exit(130)
        log.info("signal received: shutting down", signal=signal.Signals(signum).name)
        self.stopping.set()
