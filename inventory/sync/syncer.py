"""Syncing accounts: each under its lock, its run recorded whatever happens.

The recipe of one account's sync is ``inventory.sync.account``; this module runs it. The order
is the promise: the run row is committed as ``running`` before anything is fetched; everything
the account's sync changes (rows, history, rejections, the run's final status) is committed
together or not at all; a failure leaves what was stored exactly as it was.

A run applies only if it is still ``running`` and no later run of the account has applied
(inventory.db.runs: the fencing token); otherwise it applies nothing and is ``superseded``. A run
whose outcome cannot be recorded is retried a few times, then kept and retried by
``close_unfinished`` (the daemon calls it), so no run stays ``running`` once its work ended.

For the daemon a Syncer also takes: ``locks`` (held for a whole account sync, so processes on one
database never sync an account at once: PostgreSQL advisory locks, SQLite lock files), ``cancel``
(checked between pages and before the apply transaction: a set event aborts the sync, which
writes nothing and is recorded as failed with error_class ``Aborted``) and ``on_result``
(metrics).

``account_deadline`` bounds each account's sync (rate-limit waits not counted): every request
is handed the account's Deadline, so none outlives it, and it is checked again before the apply
transaction; past it the run fails with error_class ``DeadlineError``, having written nothing.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Protocol

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.deadline import Deadline
from inventory.db.locks import WriterLock
from inventory.db.runs import close_abandoned_runs, close_dead_runs, open_run, synced_since
from inventory.errors import Aborted, InventoryError
from inventory.notify.record import Notifier
from inventory.sync.account import Job, ProgressCallback, SyncAccount, sync_account_data
from inventory.sync.outcome import AccountResult, describe_error
from inventory.sync.record import finish, log_result

__all__ = [
    "Aborted",
    "AccountLocks",
    "Clock",
    "ProgressCallback",
    "ResultCallback",
    "SyncAccount",
    "Syncer",
    "utc_now",
]

log = structlog.get_logger("inventory.sync")
Clock = Callable[[], datetime]
# Counted rows are filled in only when a ResultCallback is given: (result, stats, entities by kind)
ResultCallback = Callable[[AccountResult, RequestStats, Mapping[str, int]], None]
# Seconds between attempts to record a run's outcome when the database refuses it.
CLOSE_RETRY_WAITS = (0.5, 2.0, 5.0)


class AccountLocks(Protocol):
    """Per-account mutual exclusion across processes (inventory.db.locks: AdvisoryLocks and
    FileLocks)."""

    def hold(self, account_id: str) -> AbstractContextManager[bool]:
        """Try to take the account's lock for the block; yields False when someone else has it."""
        ...

    def holder(self, account_id: str) -> str:
        """The pid holding the account's lock when known, else ''."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class Syncer:
    """Syncs accounts with one HTTP client and one engine; safe to use from several threads."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: CloudflareClient,
        per_page: int = 100,
        max_pages: int = 1000,
        confirm_threshold: int = 20,
        clock: Clock = utc_now,
        on_page: ProgressCallback | None = None,
        locks: AccountLocks | None = None,
        cancel: threading.Event | None = None,
        on_result: ResultCallback | None = None,
        close_retry_waits: Sequence[float] = CLOSE_RETRY_WAITS,
        wait: Callable[[float], None] = time.sleep,
        account_deadline: float | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.notifier = notifier  # webhook events, written in the sync's transactions
        self.client = client
        self.per_page = per_page
        self.max_pages = max_pages
        self.confirm_threshold = confirm_threshold
        self.clock = clock
        self.on_page = on_page
        self.locks = locks
        self.cancel = cancel
        self.on_result = on_result
        self.close_retry_waits = tuple(close_retry_waits)
        self.wait = wait  # between attempts to record an outcome (tests pass their own)
        self.account_deadline = account_deadline
        self.host = socket.gethostname()
        # Runs whose work ended but whose outcome could not be recorded: close_unfinished().
        self._unclosed: dict[int, AccountResult] = {}
        self._unclosed_lock = threading.Lock()
        self._writer = WriterLock(engine)

    @property
    def counting(self) -> bool:
        """Whether the account's rows are counted after its sync (for ``on_result``)."""
        return self.on_result is not None

    def writing(self) -> AbstractContextManager[object]:
        """Around each write transaction (SQLite has one writer at a time)."""
        return self._writer()

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Aborted("the daemon is shutting down: the sync stopped before writing anything")

    def sync_all(
        self, accounts: Sequence[SyncAccount], *, max_concurrency: int = 4
    ) -> list[AccountResult]:
        """Sync each account; one failing never stops the others. Results in input order."""
        try:
            close_abandoned_runs(self.engine, now=self.clock(), host=self.host)
        except SQLAlchemyError as exc:  # each account's sync reports the database error itself
            log.warning("could not close abandoned runs", error=describe_error(exc))
        if max_concurrency <= 1 or len(accounts) <= 1:
            results = [self.sync_account(account) for account in accounts]
        else:
            with ThreadPoolExecutor(max_concurrency, thread_name_prefix="sync") as pool:
                results = list(pool.map(self.sync_account, accounts))
        self.close_unfinished()  # one more try before a one-shot process exits
        return results

    def close_unfinished(self) -> int:
        """Record the outcome of runs whose work ended but whose recording failed; how many."""
        with self._unclosed_lock:
            pending = list(self._unclosed.items())
        done = 0
        for run_id, result in pending:
            try:
                with self.writing(), self.engine.begin() as conn:
                    finish(conn, result, now=self.clock(), notifier=self.notifier)
            except SQLAlchemyError as exc:
                log.warning(
                    "still cannot record the run's outcome",
                    account_id=result.account_id,
                    run_id=run_id,
                    error=describe_error(exc),
                )
                continue
            with self._unclosed_lock:
                self._unclosed.pop(run_id, None)
            done += 1
            log.info("recorded a run's outcome late", account_id=result.account_id, run_id=run_id)
        return done

    def sync_account(
        self, account: SyncAccount, *, cycle_start: datetime | None = None
    ) -> AccountResult:
        """Sync one account; with ``cycle_start``, skip it if a run since then already counts."""
        # Every line logged meanwhile (the client's retries too) names the account.
        with structlog.contextvars.bound_contextvars(account_id=account.id, account=account.name):
            return self._sync_account(account, cycle_start=cycle_start)

    def _sync_account(self, account: SyncAccount, *, cycle_start: datetime | None) -> AccountResult:
        started = time.monotonic()
        job = Job(
            account,
            AccountResult(account_id=account.id, name=account.name, status="failed"),
            deadline=self._deadline(),
        )
        result = job.result
        try:
            # The outer guard catches a lock that cannot be taken (database down); the inner one
            # records the run's failure while the lock is still held.
            failures = self._failures(job)
            with failures, self._holding(account.id) as held, self._failures(job):
                if not self._skipped(account, result, held=held, cycle_start=cycle_start):
                    self.check_cancel()
                    result.run_id = self._begin_run(account)
                    sync_account_data(self, job)
        finally:
            job.count_requests()
            result.duration = time.monotonic() - started
        log_result(result)
        if self.on_result is not None:
            try:
                self.on_result(result, job.stats, job.entities)
            except Exception:  # metrics must never fail a sync
                log.exception("result callback failed", account_id=account.id)
        return result

    @contextmanager
    def _failures(self, job: Job) -> Iterator[None]:
        try:
            yield
        except (InventoryError, SQLAlchemyError, OSError) as exc:
            job.count_requests()  # for the run row
            self._fail(job.result, exc)
        except Exception as exc:  # a bug must still close the run and spare the other accounts
            log.exception("sync crashed", account_id=job.result.account_id)
            job.count_requests()
            self._fail(job.result, exc)

    def _deadline(self) -> Deadline | None:
        if self.account_deadline is None:
            return None
        return Deadline(
            self.account_deadline, setting="account_deadline", covers="the account's whole sync"
        )

    def _holding(self, account_id: str) -> AbstractContextManager[bool]:
        return self.locks.hold(account_id) if self.locks is not None else nullcontext(True)

    def _skipped(
        self,
        account: SyncAccount,
        result: AccountResult,
        *,
        held: bool,
        cycle_start: datetime | None,
    ) -> bool:
        if not held:
            holder = self.locks.holder(account.id) if self.locks is not None else ""
            who = f" (pid {holder})" if holder else ""
            result.status = "skipped"
            result.error = f"another process{who} is syncing this account; skipped, not a failure"
            return True
        if self.locks is not None:
            # Holding the account's lock, any run of it still 'running' lost its process.
            with self.writing(), self.engine.begin() as conn:
                closed = close_dead_runs(conn, account.id, now=self.clock())
            if closed:
                log.warning("closed abandoned runs", account_id=account.id, runs=closed)
        if cycle_start is not None:
            with self.writing(), self.engine.connect() as conn:
                if synced_since(conn, account.id, cycle_start, host=self.host, pid=os.getpid()):
                    result.status, result.error = "skipped", "already synced in this cycle"
                    return True
        return False

    def _begin_run(self, account: SyncAccount) -> int:
        with self.writing(), self.engine.begin() as conn:
            return open_run(
                conn,
                account_id=account.id,
                name=account.name,
                now=self.clock(),
                host=self.host,
                pid=os.getpid(),
            )

    def _fail(self, result: AccountResult, exc: BaseException) -> None:
        result.status = "failed"
        result.error_class = type(exc).__name__
        result.error = describe_error(exc)
        result.counts = {}
        if result.run_id is None:
            return
        waits = self.close_retry_waits
        for attempt in range(len(waits) + 1):
            if attempt:
                self.wait(waits[attempt - 1])
            try:
                with self.writing(), self.engine.begin() as conn:
                    finish(conn, result, now=self.clock(), notifier=self.notifier)
                return
            except SQLAlchemyError as db_exc:
                log.warning(
                    "could not record the failed run",
                    account_id=result.account_id,
                    run_id=result.run_id,
                    attempt=attempt + 1,
                    retry_in_s=waits[attempt] if attempt < len(waits) else None,
                    error=describe_error(db_exc),
                )
        # The daemon tries again (close_unfinished) until the database takes it.
        with self._unclosed_lock:
            self._unclosed[result.run_id] = copy.copy(result)
