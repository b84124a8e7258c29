"""``inventory run``: sync every account at start-up, then on a schedule, until SIGTERM or SIGINT.

start-up   the schema must be at head (or ``--upgrade``); SQLite: one daemon per file;
           the database may be down: start-up waits for it
schedule   one APScheduler job per account (no overlap, missed runs coalesced), at most
           max_concurrency at once; intervals are aligned to a fixed epoch and cron times
           are absolute, so every replica shares the same cycles
replicas   a lock per account for the whole sync (PostgreSQL advisory lock, SQLite lock file);
           holding it, an account whose run already started in this cycle (or, begun by
           another process, finished in it) is skipped;
           on PostgreSQL they share one rate-limit budget per credential (inventory.db.budget)
fairness   every firing marks its account due (coalesced: due once), even when the account's
           job is still busy; jobs serve the due accounts, the one that succeeded longest ago
           (never first) first, until none is left, so when a token's budget cannot cover every
           account in a cycle, none starves
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

import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inventory.daemon.health import HealthServer, Probes, Readiness, check_readiness
from inventory.daemon.jobs import DaemonJobs
from inventory.daemon.metrics import CONTENT_TYPE_LATEST, Metrics
from inventory.daemon.options import DaemonOptions
from inventory.daemon.reload import compare_settings
from inventory.daemon.schedule import account_schedule, cycle_length, schedule_trigger
from inventory.daemon.service import build_syncer, fewer_collections, open_client
from inventory.daemon.startup import prepare_database
from inventory.db.engine import make_engine, sqlite_path
from inventory.db.locks import SingleDaemonLock
from inventory.errors import InventoryError
from inventory.logs import configure_logging
from inventory.notify.deliver import Deliverer
from inventory.notify.record import Notifier
from inventory.notify.running import serving
from inventory.sync.syncer import Syncer, utc_now

if TYPE_CHECKING:
    from inventory.settings import Settings

__all__ = ["Daemon", "DaemonOptions"]

log = structlog.get_logger("inventory.daemon")


class Daemon(DaemonJobs):
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
        # accounts whose schedule fired and that no job took yet (firings coalesce)
        self._due: set[str] = set()
        self._due_lock = threading.Lock()  # guards _due, held for a moment only
        self._choosing = threading.Lock()  # one job chooses at a time; never held with _idle
        self._chosen_rank = -math.inf  # written and read under _choosing
        self._chosen_overdue = datetime.max.replace(tzinfo=UTC)  # likewise
        self._due_since: dict[str, datetime] = {}  # guarded by _due_lock, like _due
        self._order = {a.id: i for i, a in enumerate(self.accounts)}
        self.deliverer: Deliverer | None = None  # notifications, while serving

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
        # Notifications: the syncs write events, a worker per webhook target delivers them.
        targets, notify_metrics = (lambda: self.settings.notify), self.metrics.notify
        notify_metrics.prepare([t.name for t in self.settings.notify])
        notifier = Notifier(targets, on_queued=notify_metrics.on_queued)
        with (
            open_client(self.settings, engine) as client,
            serving(engine, targets, metrics=notify_metrics) as self.deliverer,
        ):
            syncer = build_syncer(
                self.settings,
                engine,
                client,
                cancel=self.cancel,
                on_result=self.metrics.observe,
                notifier=notifier,
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
            if self.settings.notify or self.metrics.notify.outbox_seen:
                with suppress(SQLAlchemyError):  # inventory_database_up says so already
                    self.metrics.notify.refresh(engine)
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
        """Schema check (or upgrade) and start-up cleanup; False when stopped before."""
        return prepare_database(
            engine,
            account_ids=[a.id for a in self.accounts],
            upgrade_schema=self.options.upgrade,
            stopping=self.stopping,
        )

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
