"""One account's sync as a recipe: fetch → transform → diff → load, the last in one transaction.

    sync_account_data
    ├── fetch       both listings; pages the last clean run read (the memo) are not decoded
    ├── (unchanged) every page as that run read it: record so, and stop here
    ├── confirm     ask about each stored entity the listings no longer show
    ├── transform   raw records → rows, and the run's outcome (both pure)
    └── load        one transaction: fence, diff against what is stored, apply, finish the run

Anything that stops the sync raises; the Syncer records the failure (nothing is written then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, Engine

from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.confirm import Confirmation, confirm_deletions, listed_ids
from inventory.cloudflare.deadline import Deadline
from inventory.cloudflare.listing import Endpoint, Listing, fetch_listing
from inventory.db.absences import read_absences, read_stored_ids, write_absences
from inventory.db.load import apply_changes, read_observed, read_stored, record_rejections
from inventory.db.memo import ListingMemo, memo_value, read_memo
from inventory.db.runs import count_entities
from inventory.errors import DeadlineError
from inventory.notify.record import Notifier, recording_changes
from inventory.sync.diff import ChangeSet, diff_snapshot, portal_only_absences
from inventory.sync.outcome import AccountResult, Outcome, decide_outcome
from inventory.sync.record import finish, superseded
from inventory.sync.transform import TransformResult, transform_account

__all__ = ["Context", "Job", "ProgressCallback", "SyncAccount", "sync_account_data"]

ProgressCallback = Callable[[str, Endpoint, int, int], None]


class SyncAccount(Protocol):
    """What the sync needs of a configured account (inventory.settings.AccountConfig)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def credential_key(self) -> str: ...
    def auth_headers(self) -> dict[str, str]: ...


class Context(Protocol):
    """What the recipe needs of its Syncer."""

    @property
    def engine(self) -> Engine: ...
    @property
    def client(self) -> CloudflareClient: ...
    @property
    def per_page(self) -> int: ...
    @property
    def max_pages(self) -> int: ...
    @property
    def confirm_threshold(self) -> int: ...
    @property
    def on_page(self) -> ProgressCallback | None: ...
    @property
    def counting(self) -> bool: ...  # entities are counted after the apply (for metrics)
    def clock(self) -> datetime: ...
    def writing(self) -> AbstractContextManager[object]: ...
    def check_cancel(self) -> None: ...
    @property
    def notifier(self) -> Notifier | None: ...  # webhook events, into the outbox


@dataclass
class Job:
    """One account's sync in progress: what its steps share."""

    account: SyncAccount
    result: AccountResult
    stats: RequestStats = field(default_factory=RequestStats)
    entities: dict[str, int] = field(default_factory=dict)
    deadline: Deadline | None = None

    def count_requests(self) -> None:
        self.result.requests, self.result.retries = self.stats.requests, self.stats.retries

    def check_deadline(self) -> None:
        if self.deadline is not None and self.deadline.expired:
            raise DeadlineError(
                f"account {self.account.id}: stopped by {self.deadline.describe()} before its "
                "changes were written; nothing was written",
                setting=self.deadline.setting,
            )


def sync_account_data(ctx: Context, job: Job) -> None:
    """The recipe, for a run already opened (``job.result.run_id``)."""
    with ctx.engine.connect() as conn:
        memo = read_memo(conn, job.account.id)
    portals = _fetch(ctx, job, "portals", known=memo.portals)
    servers = _fetch(ctx, job, "servers", known=memo.servers)
    observed_at = ctx.clock()
    job.result.pages = portals.pages + servers.pages
    job.count_requests()
    job.check_deadline()
    unchanged = portals.unchanged and servers.unchanged
    if unchanged and _load_unchanged(ctx, job, memo, portals, servers, observed_at=observed_at):
        return  # the fast path: every page as the last clean run read it
    portals, servers = portals.decoded(), servers.decoded()
    confirmation = _confirm(ctx, job, portals, servers)
    transformed, outcome = _transform(job, portals, servers, confirmation)
    job.check_deadline()  # the confirmations took time too
    ctx.check_cancel()
    digests = (portals.digests, servers.digests)
    _load(ctx, job, transformed, outcome, digests=digests, observed_at=observed_at)


def _fetch(ctx: Context, job: Job, endpoint: Endpoint, *, known: Sequence[str]) -> Listing:
    account, on_page = job.account, ctx.on_page

    def progress(ep: Endpoint, page: int, items: int) -> None:
        ctx.check_cancel()
        if on_page is not None:
            on_page(account.id, ep, page, items)

    return fetch_listing(
        ctx.client,
        account_id=account.id,
        endpoint=endpoint,
        headers=account.auth_headers(),
        credential_key=account.credential_key,
        per_page=ctx.per_page,
        max_pages=ctx.max_pages,
        stats=job.stats,
        on_page=progress,
        known=known,
        deadline=job.deadline,
    )


def _load_unchanged(
    ctx: Context,
    job: Job,
    memo: ListingMemo,
    portals: Listing,
    servers: Listing,
    *,
    observed_at: datetime,
) -> bool:
    """The fast path: True when the run is recorded (unchanged, or superseded)."""
    result = job.result
    assert result.run_id is not None
    ctx.check_cancel()
    with ctx.writing(), ctx.engine.begin() as conn:
        if superseded(conn, result, observed_at=observed_at, clock=ctx.clock):
            return True
        # Byte for byte what the last clean run read, and (checked again inside this
        # transaction) no other run has written since: the stored rows say it all.
        if read_memo(conn, job.account.id) != memo:
            return False
        # the same bytes say the same: the warnings of the run that read them
        result.status, result.consistent, result.unchanged = "succeeded", True, True
        result.warnings = list(memo.warnings)
        result.counts = ChangeSet.empty().counts()
        kept = memo_value(result.run_id, portals.digests, servers.digests, memo.warnings)
        finish(
            conn,
            result,
            now=ctx.clock(),
            applied=True,
            observed_at=observed_at,
            memo=kept,
            notifier=ctx.notifier,
        )
        if ctx.counting:
            job.entities.update(count_entities(conn, job.account.id))
        return True


def _confirm(ctx: Context, job: Job, portals: Listing, servers: Listing) -> Confirmation:
    """Ask Cloudflare about each stored portal and server the listings no longer show."""
    account = job.account
    with ctx.engine.connect() as conn:
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
            ctx.client,
            account_id=account.id,
            headers=account.auth_headers(),
            credential_key=account.credential_key,
            stats=job.stats,
            listings={"portals": portals, "servers": servers},
            candidates=candidates,
            threshold=ctx.confirm_threshold,
            reread=lambda endpoint: _fetch(ctx, job, endpoint, known=()),
            check=ctx.check_cancel,
            into=done,
            deadline=job.deadline,
        )
    finally:
        job.count_requests()
        job.result.confirmations = done.requests


def _transform(
    job: Job, portals: Listing, servers: Listing, confirmation: Confirmation
) -> tuple[TransformResult, Outcome]:
    result = job.result
    portals_consistent = portals.consistent and "portals" not in confirmation.hid
    servers_consistent = servers.consistent and "servers" not in confirmation.hid
    result.pages += confirmation.pages
    result.consistent = portals_consistent and servers_consistent
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
    outcome = decide_outcome(
        [*portals.problems, *servers.problems, *confirmation.problems],
        rejected=result.rejected,
        ended_on_error=portals.end_error is not None or servers.end_error is not None,
    )
    result.status = outcome.status
    if outcome.error_class is not None:
        result.error_class, result.error = outcome.error_class, outcome.error
    return transformed, outcome


def _load(
    ctx: Context,
    job: Job,
    transformed: TransformResult,
    outcome: Outcome,
    *,
    digests: tuple[tuple[str, ...], tuple[str, ...]],
    observed_at: datetime,
) -> None:
    result, account_id = job.result, job.account.id
    assert result.run_id is not None
    with ctx.writing(), ctx.engine.begin() as conn:
        ctx.check_cancel()  # waiting for SQLite's writer lock may have taken a while
        if superseded(conn, result, observed_at=observed_at, clock=ctx.clock):
            return
        changes, pending = _diff(conn, account_id, transformed, result.run_id)
        with recording_changes(  # notifications: the events of these changes, this transaction
            conn,
            ctx.notifier,
            account=(account_id, job.account.name),
            changes=changes,
            snapshot=transformed.snapshot,
            run_id=result.run_id,
            observed_at=observed_at,
        ):
            apply_changes(conn, account_id, changes, run_id=result.run_id, observed_at=observed_at)
        record_rejections(conn, account_id, result.run_id, transformed.rejections)
        result.counts = changes.counts()
        # Portal-only servers awaiting their second absence: the next run must look again.
        memo = (
            memo_value(result.run_id, *digests, result.warnings)
            if outcome.clean and not pending
            else None
        )
        finish(
            conn,
            result,
            now=ctx.clock(),
            applied=True,
            changes=changes,
            observed_at=observed_at,
            memo=memo,
            notifier=ctx.notifier,
        )
        if ctx.counting:
            job.entities.update(count_entities(conn, account_id))


def _diff(
    conn: Connection, account_id: str, transformed: TransformResult, run_id: int
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
