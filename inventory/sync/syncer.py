"""One account's sync, end to end: fetch → transform → diff → load, in one transaction.

This is the only module that opens transactions on inventory data. The order is the promise:
the run row is committed as ``running`` before anything is fetched; everything the account's
sync changes (rows, history, rejections, the run's final status) is committed together or
not at all; a failure leaves what was stored exactly as it was.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.confirm import Confirmation, confirm_deletions, listed_ids
from inventory.cloudflare.deadline import Deadline
from inventory.cloudflare.listing import Endpoint, Listing, fetch_listing
from inventory.db import models
from inventory.db.absences import read_absences, read_stored_ids, write_absences
from inventory.db.load import TABLES, apply_changes, read_observed, read_stored, record_rejections
from inventory.db.memo import memo_value, read_memo
from inventory.db.runs import abandon_runs, check_fence, finish_run, open_run
from inventory.errors import DeadlineError, FetchError, InventoryError
from inventory.redaction import scrub_text
from inventory.sync.diff import ChangeSet, diff_snapshot, portal_only_absences
from inventory.sync.transform import TransformResult, transform_account

__all__ = [
    "Aborted",
    "AccountLocks",
    "AccountResult",
    "Clock",
    "ProgressCallback",
    "ResultCallback",
    "SyncAccount",
    "Syncer",
    "close_abandoned_runs",
    "mark_unconfigured",
]

log = structlog.get_logger("inventory.sync")
Clock = Callable[[], datetime]
ProgressCallback = Callable[[str, Endpoint, int, int], None]
# Counted rows are filled in only when a ResultCallback is given: (result, stats, entities by kind)
ResultCallback = Callable[["AccountResult", RequestStats, Mapping[str, int]], None]
# Statuses of a run that counts as the account's sync of a cycle (an abort or a crash does not).
_CYCLE_STATUSES = ("succeeded", "partial", "failed")
# Seconds between attempts to record a run's outcome when the database refuses it.
CLOSE_RETRY_WAITS = (0.5, 2.0, 5.0)


class Aborted(InventoryError):  # noqa: N818 - its name is the error_class runs record
    """The sync was stopped (the daemon is shutting down) before it wrote anything."""


class AccountLocks(Protocol):
    """Per-account mutual exclusion across processes (inventory.db.locks: AdvisoryLocks and
    FileLocks)."""

    def hold(self, account_id: str) -> AbstractContextManager[bool]:
        """Try to take the account's lock for the block; yields False when someone else has it."""
        ...

    def holder(self, account_id: str) -> str:
        """The pid holding the account's lock when known, else ''."""
        ...


class SyncAccount(Protocol):
    """What the sync needs of a configured account (inventory.settings.AccountConfig)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def credential_key(self) -> str: ...
    def auth_headers(self) -> dict[str, str]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class AccountResult:
    account_id: str
    name: str | None
    status: str
    run_id: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: int = 0
    requests: int = 0
    pages: int = 0
    retries: int = 0
    confirmations: int = 0  # detail requests that checked deletions before they were recorded
    duration: float = 0.0
    consistent: bool | None = None
    error_class: str | None = None
    error: str | None = None
    unchanged: bool = False  # every page as the last clean run read it: nothing decoded
    # What an operator should know that does not make the run partial (transform warnings).
    warnings: list[str] = field(default_factory=list)
    observed: int = 0  # rows whose observations (sync times) alone moved, updated in place

    @property
    def ok(self) -> bool:
        """The run applied what it read (stored the account's state)."""
        return self.status in ("succeeded", "partial")

    @property
    def failed(self) -> bool:
        """A failure for exit codes and alerts (skipped and superseded are not)."""
        return self.status == "failed"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned_runs(engine: Engine, *, now: datetime, host: str | None = None) -> int:
    """Close runs left ``running`` by a process of this host that no longer exists."""
    host = host or socket.gethostname()
    runs = models.table_of(models.SyncRun)
    with engine.begin() as conn:
        rows = conn.execute(
            select(runs.c.id, runs.c.account_id, runs.c.pid).where(
                runs.c.status == "running", runs.c.host == host
            )
        ).all()
        dead = [(r.id, r.account_id) for r in rows if r.pid is None or not _pid_alive(r.pid)]
        return abandon_runs(
            conn,
            dead,
            now=now,
            message="the process running this sync stopped before it finished",
        )


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
    ) -> None:
        self.engine = engine
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
        # SQLite has one writer at a time: threads queue here instead of on busy timeouts.
        self._write_lock: threading.Lock | None = (
            threading.Lock() if engine.dialect.name == "sqlite" else None
        )

    def _writing(self) -> AbstractContextManager[Any]:
        return self._write_lock if self._write_lock is not None else nullcontext()

    def sync_all(
        self, accounts: Sequence[SyncAccount], *, max_concurrency: int = 4
    ) -> list[AccountResult]:
        """Sync each account; one failing never stops the others. Results in input order."""
        try:
            close_abandoned_runs(self.engine, now=self.clock(), host=self.host)
        except SQLAlchemyError as exc:  # each account's sync reports the database error itself
            log.warning("could not close abandoned runs", error=_describe_error(exc))
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
                with self._writing(), self.engine.begin() as conn:
                    self._finish_run(conn, result)
            except SQLAlchemyError as exc:
                log.warning(
                    "still cannot record the run's outcome",
                    account_id=result.account_id,
                    run_id=run_id,
                    error=_describe_error(exc),
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
        deadline = self._deadline()
        result = AccountResult(account_id=account.id, name=account.name, status="failed")
        stats = RequestStats()
        entities: dict[str, int] = {}
        try:
            # The outer guard catches a lock that cannot be taken (database down); the inner one
            # records the run's failure while the lock is still held.
            failures = self._failures(result, stats)
            with failures, self._holding(account.id) as held, self._failures(result, stats):
                if not self._skipped(account, result, held=held, cycle_start=cycle_start):
                    self._check_cancel()
                    result.run_id = self._begin_run(account)
                    self._run(account, result, stats, entities, deadline=deadline)
        finally:
            result.requests, result.retries = stats.requests, stats.retries
            result.duration = time.monotonic() - started
        self._log(result)
        if self.on_result is not None:
            try:
                self.on_result(result, stats, entities)
            except Exception:  # metrics must never fail a sync
                log.exception("result callback failed", account_id=account.id)
        return result

    @contextmanager
    def _failures(self, result: AccountResult, stats: RequestStats) -> Iterator[None]:
        try:
            yield
        except (InventoryError, SQLAlchemyError, OSError) as exc:
            result.requests, result.retries = stats.requests, stats.retries  # for the run row
            self._fail(result, exc)
        except Exception as exc:  # a bug must still close the run and spare the other accounts
            log.exception("sync crashed", account_id=result.account_id)
            result.requests, result.retries = stats.requests, stats.retries
            self._fail(result, exc)

    def _deadline(self) -> Deadline | None:
        if self.account_deadline is None:
            return None
        return Deadline(
            self.account_deadline, setting="account_deadline", covers="the account's whole sync"
        )

    def _check_deadline(self, deadline: Deadline | None, account_id: str) -> None:
        if deadline is not None and deadline.expired:
            raise DeadlineError(
                f"account {account_id}: stopped by {deadline.describe()} before its changes "
                "were written; nothing was written",
                setting=deadline.setting,
            )

    def _holding(self, account_id: str) -> AbstractContextManager[bool]:
        return self.locks.hold(account_id) if self.locks is not None else nullcontext(True)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Aborted("the daemon is shutting down: the sync stopped before writing anything")

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
            self._close_dead_runs(account.id)
        if cycle_start is not None and self._synced_since(account.id, cycle_start):
            result.status, result.error = "skipped", "already synced in this cycle"
            return True
        return False

    def _close_dead_runs(self, account_id: str) -> None:
        """Holding the account's lock, any run of it still 'running' lost its process."""
        runs = models.table_of(models.SyncRun)
        with self._writing(), self.engine.begin() as conn:
            open_runs = conn.execute(
                select(runs.c.id).where(runs.c.account_id == account_id, runs.c.status == "running")
            ).scalars()
            closed = abandon_runs(
                conn,
                [(run_id, account_id) for run_id in open_runs],
                now=self.clock(),
                message="the process running this sync stopped (or lost its lock) before it "
                "finished",
            )
        if closed:
            log.warning("closed abandoned runs", account_id=account_id, runs=closed)

    def _synced_since(self, account_id: str, since: datetime) -> bool:
        runs = models.table_of(models.SyncRun)
        query = (
            select(runs.c.id)
            .where(
                runs.c.account_id == account_id,
                runs.c.started_at >= since,
                runs.c.status.in_(_CYCLE_STATUSES),
                or_(runs.c.error_class.is_(None), runs.c.error_class != "Aborted"),
            )
            .limit(1)
        )
        with self._writing(), self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _fetch(
        self,
        account: SyncAccount,
        endpoint: Endpoint,
        stats: RequestStats,
        *,
        known: Sequence[str],
        deadline: Deadline | None = None,
    ) -> Listing:
        on_page = self.on_page

        def progress(ep: Endpoint, page: int, items: int) -> None:
            self._check_cancel()
            if on_page is not None:
                on_page(account.id, ep, page, items)

        return fetch_listing(
            self.client,
            account_id=account.id,
            endpoint=endpoint,
            headers=account.auth_headers(),
            credential_key=account.credential_key,
            per_page=self.per_page,
            max_pages=self.max_pages,
            stats=stats,
            on_page=progress,
            known=known,
            deadline=deadline,
        )

    def _run(
        self,
        account: SyncAccount,
        result: AccountResult,
        stats: RequestStats,
        entities: dict[str, int],
        *,
        deadline: Deadline | None = None,
    ) -> None:
        assert result.run_id is not None
        with self.engine.connect() as conn:
            memo = read_memo(conn, account.id)
        portals = self._fetch(account, "portals", stats, known=memo.portals, deadline=deadline)
        servers = self._fetch(account, "servers", stats, known=memo.servers, deadline=deadline)
        observed_at = self.clock()
        result.pages = portals.pages + servers.pages
        result.requests, result.retries = stats.requests, stats.retries
        self._check_deadline(deadline, account.id)
        if portals.unchanged and servers.unchanged:
            self._check_cancel()
            with self._writing(), self.engine.begin() as conn:
                if self._superseded(conn, result, observed_at):
                    return
                # Byte for byte what the last clean run read, and (checked again inside this
                # transaction) no other run has written since: the stored rows say it all.
                if read_memo(conn, account.id) == memo:
                    # the same bytes say the same: the warnings of the run that read them
                    result.status, result.consistent, result.unchanged, result.warnings = (
                        "succeeded", True, True, list(memo.warnings)
                    )  # fmt: skip
                    result.counts = ChangeSet.empty().counts()
                    self._finish_run(
                        conn, result, applied=True, observed_at=observed_at,
                        memo=memo_value(
                            result.run_id, portals.digests, servers.digests, memo.warnings
                        ),
                    )  # fmt: skip
                    if self.on_result is not None:
                        entities.update(_count_entities(conn, account.id))
                    return
        portals, servers = portals.decoded(), servers.decoded()
        confirmation = self._confirm(account, portals, servers, stats, result, deadline=deadline)
        result.pages += confirmation.pages
        portals_consistent = portals.consistent and "portals" not in confirmation.hid
        servers_consistent = servers.consistent and "servers" not in confirmation.hid
        result.consistent = portals_consistent and servers_consistent
        problems = [*portals.problems, *servers.problems, *confirmation.problems]
        transformed = transform_account(
            [*portals.items, *confirmation.found["portals"]],
            [*servers.items, *confirmation.found["servers"]],
            portals_consistent=portals_consistent,
            servers_consistent=servers_consistent,
            gone_portals=confirmation.gone["portals"],
            gone_servers=confirmation.gone["servers"],
        )
        transformed.coverage.protected_portals |= confirmation.kept["portals"]
        transformed.coverage.protected_servers |= confirmation.kept["servers"]
        result.rejected, result.warnings = len(transformed.rejections), transformed.warnings
        if transformed.rejections:
            problems.append(f"{result.rejected} record(s) rejected, see rejected_records")
        result.status = "partial" if problems else "succeeded"
        if problems:
            result.error_class = "Incomplete"
            result.error = "; ".join(problems) + "; nothing was deleted that this hid"
        # Only a clean run vouches for its pages; a partial one leaves no memo to trust, nor does
        # a listing that ended on an error (its last page is not one a resync can match).
        clean = not problems and portals.end_error is None and servers.end_error is None
        self._check_deadline(deadline, account.id)  # the confirmations took time too
        self._check_cancel()
        with self._writing(), self.engine.begin() as conn:
            self._check_cancel()  # waiting for SQLite's writer lock may have taken a while
            if self._superseded(conn, result, observed_at):
                return
            changes, pending = self._diff(conn, account.id, transformed, result.run_id)
            apply_changes(conn, account.id, changes, run_id=result.run_id, observed_at=observed_at)
            record_rejections(conn, account.id, result.run_id, transformed.rejections)
            result.counts = changes.counts()
            # Portal-only servers awaiting their second absence: the next run must look again.
            new_memo = (
                memo_value(result.run_id, portals.digests, servers.digests, result.warnings)
                if clean and not pending
                else None
            )
            self._finish_run(
                conn, result, applied=True, changes=changes, observed_at=observed_at, memo=new_memo
            )
            if self.on_result is not None:
                entities.update(_count_entities(conn, account.id))

    def _confirm(
        self,
        account: SyncAccount,
        portals: Listing,
        servers: Listing,
        stats: RequestStats,
        result: AccountResult,
        *,
        deadline: Deadline | None = None,
    ) -> Confirmation:
        """Ask Cloudflare about each stored portal and server the listings no longer show."""
        with self.engine.connect() as conn:
            stored = read_stored_ids(conn, account.id)
        candidates: dict[Endpoint, set[str]] = {
            "portals": stored.portals - listed_ids(portals.items),
            "servers": stored.listed_servers - listed_ids(servers.items),
        }
        done = Confirmation()
        if not any(candidates.values()):
            return done
        try:
            return confirm_deletions(
                self.client,
                account_id=account.id,
                headers=account.auth_headers(),
                credential_key=account.credential_key,
                stats=stats,
                listings={"portals": portals, "servers": servers},
                candidates=candidates,
                threshold=self.confirm_threshold,
                reread=lambda endpoint: self._fetch(
                    account, endpoint, stats, known=(), deadline=deadline
                ),
                check=self._check_cancel,
                into=done,
                deadline=deadline,
            )
        finally:
            result.requests, result.retries = stats.requests, stats.retries
            result.confirmations = done.requests

    def _diff(
        self, conn: Any, account_id: str, transformed: TransformResult, run_id: int
    ) -> tuple[ChangeSet, set[str]]:
        """The changes to apply, with the two-sync rule for servers only portals showed."""
        coverage = transformed.coverage
        stored = read_stored_ids(conn, account_id)
        before = read_absences(conn, account_id)
        gone, absent = portal_only_absences(stored.portal_only_servers, before, coverage)
        assert coverage.gone_servers is not None
        coverage.gone_servers |= gone
        changes = diff_snapshot(
            read_stored(conn, account_id),
            transformed.snapshot,
            coverage,
            read_observed(conn, account_id),
        )
        pending = absent - {key[0] for key in changes.kinds["server"].deletes}
        write_absences(conn, account_id, pending, before=before, run_id=run_id)
        return changes, pending

    def _begin_run(self, account: SyncAccount) -> int:
        with self._writing(), self.engine.begin() as conn:
            return open_run(
                conn,
                account_id=account.id,
                name=account.name,
                now=self.clock(),
                host=self.host,
                pid=os.getpid(),
            )

    def _superseded(self, conn: Connection, result: AccountResult, observed_at: datetime) -> bool:
        """Fence the apply (the account row locked): True when this run must apply nothing."""
        assert result.run_id is not None
        fence = check_fence(conn, result.account_id, result.run_id)
        if fence is None:
            return False
        result.status, result.error_class, result.error = "superseded", None, fence.reason
        result.counts, result.rejected = {}, 0
        if fence.run_status == "running":
            self._finish_run(conn, result, observed_at=observed_at)
        log.warning(
            "run superseded: nothing applied",
            account_id=result.account_id,
            run_id=result.run_id,
            reason=fence.reason,
        )
        return True

    def _finish_run(
        self,
        conn: Connection,
        result: AccountResult,
        *,
        applied: bool = False,
        changes: ChangeSet | None = None,
        observed_at: datetime | None = None,
        memo: dict[str, Any] | None = None,
    ) -> None:
        """Close the run from 'running'; a run that ``applied`` also moves the fencing token."""
        assert result.run_id is not None
        added, changed, removed = changes.totals() if changes is not None else (0, 0, 0)
        if changes is not None:
            result.observed = sum(len(c.observations) for c in changes.kinds.values())
        values = {
            "status": result.status,
            "observed_at": observed_at,
            "added": added,
            "changed": changed,
            "removed": removed,
            "rejected": result.rejected,
            "counts": result.counts or None,
            "requests": result.requests,
            "pages": result.pages,
            "retries": result.retries,
            "confirmations": result.confirmations,
            "consistent": result.consistent,
            "error_class": result.error_class,
            "error_message": result.error,
            "warnings": result.warnings or None,
        }
        finished = finish_run(
            conn,
            result.run_id,
            result.account_id,
            values,
            now=self.clock(),
            applied=applied,
            memo=memo,
        )
        if finished:
            return
        if applied:  # cannot happen under the fence's lock; never let it commit if it does
            raise RuntimeError(f"run {result.run_id} was closed while it applied")
        log.warning(
            "the run was already closed by another process; its outcome is not recorded",
            account_id=result.account_id,
            run_id=result.run_id,
            status=result.status,
        )

    def _fail(self, result: AccountResult, exc: BaseException) -> None:
        result.status = "failed"
        result.error_class = type(exc).__name__
        result.error = _describe_error(exc)
        result.counts = {}
        if result.run_id is None:
            return
        waits = self.close_retry_waits
        for attempt in range(len(waits) + 1):
            if attempt:
                self.wait(waits[attempt - 1])
            try:
                with self._writing(), self.engine.begin() as conn:
                    self._finish_run(conn, result)
                return
            except SQLAlchemyError as db_exc:
                log.warning(
                    "could not record the failed run",
                    account_id=result.account_id,
                    run_id=result.run_id,
                    attempt=attempt + 1,
                    retry_in_s=waits[attempt] if attempt < len(waits) else None,
                    error=_describe_error(db_exc),
                )
        # The daemon tries again (close_unfinished) until the database takes it.
        with self._unclosed_lock:
            self._unclosed[result.run_id] = copy.copy(result)

    def _log(self, result: AccountResult) -> None:
        if result.status == "skipped":
            log.debug("account skipped", account_id=result.account_id, reason=result.error)
            return
        added = sum(c["added"] for c in result.counts.values())
        changed = sum(c["changed"] for c in result.counts.values())
        removed = sum(c["removed"] for c in result.counts.values())
        level = "info" if result.status in ("succeeded", "superseded") else "warning"
        getattr(log, level)(
            "account synced",
            account_id=result.account_id,
            account=result.name,
            run_id=result.run_id,
            status=result.status,
            added=added,
            changed=changed,
            removed=removed,
            rejected=result.rejected,
            requests=result.requests,
            retries=result.retries,
            confirmations=result.confirmations,
            unchanged=result.unchanged,
            observed=result.observed,
            duration_s=round(result.duration, 3),
            error=result.error,
        )
        for warning in result.warnings:
            log.warning("sync warning", account_id=result.account_id, warning=warning)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, SQLAlchemyError):
        # Driver messages are informative; SQLAlchemy's wrapper adds statements and parameters.
        orig = getattr(exc, "orig", None)
        text = str(orig if orig is not None else exc).strip().splitlines()
        return scrub_text("database error: " + (text[0] if text else type(exc).__name__))
    if isinstance(exc, FetchError | InventoryError):
        return scrub_text(str(exc))
    return scrub_text(f"{type(exc).__name__}: {exc}")  # a bug's message, stored and shown


def _count_entities(conn: Any, account_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, spec in TABLES.items():
        query = select(func.count()).select_from(spec.current)
        counts[kind] = int(
            conn.execute(query.where(spec.current.c.account_id == account_id)).scalar_one()
        )
    return counts


def mark_unconfigured(engine: Engine, configured: Iterable[str]) -> None:
    """Flag accounts no longer in the configuration; their data stays, nothing is deleted."""
    accounts = models.table_of(models.Account)
    with engine.begin() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.configured.is_(True), accounts.c.id.not_in(list(configured)))
            .values(configured=False)
        )
