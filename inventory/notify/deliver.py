"""The deliverer: each target's outbox events, in order, at least once.

A pass over one target takes its lease (inventory.db.outbox), then sends batch after batch from
the head of its queue: the first pending events in ``id`` order, up to ``batch_size``, once the
first has waited ``batch_window`` for others to join it. The batch is recorded before it is
sent, so after a crash the same batch (same ids, same ``Idempotency-Key``) goes first. What
each answer does to the batch's events (inventory.notify.answers):

    2xx                          delivered
    5xx, 429, timeout, connect   tried again after ``backoff`` (429/503: Retry-After honoured),
                                 the batch and the queue behind it wait; each event is dead
                                 once it is ``max_age`` old (the rest of its batch goes on)
    3xx (never followed), 4xx    refused: a batch of several is sent again one event at a time,
                                 a single event is dead (logged, counted) and the queue goes on

One target's failures never hold up another's: the daemon runs a worker thread per target, and
``inventory sync`` delivers every target at once (inventory.notify.running starts either).
Nothing logged or stored names the URL or the secret: errors are written from the status and
the exception's class only.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inventory.cloudflare.request import ssl_verify
from inventory.db.outbox import (
    Lease,
    OutboxRow,
    acquire_lease,
    drop_unconfigured,
    next_batch,
    prune_finished,
    release_lease,
    start_batch,
)
from inventory.notify.answers import Recorder
from inventory.notify.metrics import NotifyMetrics
from inventory.notify.post import Answer, post_events
from inventory.settings.notify import NotifyTarget

__all__ = ["Deliverer", "Pass", "db_error", "holder_gone"]

log = structlog.get_logger("inventory.notify")
Clock = Callable[[], datetime]
KEEP_DELIVERED = timedelta(days=7)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def db_error(exc: SQLAlchemyError) -> str:
    """The first line of the driver's message (the logs' ``error``), not SQLAlchemy's wrapping."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def holder_gone(holder: str) -> bool:
    """A lease holder ("host:pid:nonce") that was a process of this host and is no more."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class Pass:
    """How a pass over a target ended: ``wait`` seconds until something is due (None: idle)."""

    wait: float | None = None
    busy: bool = False  # another process holds the lease
    sent: int = 0


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        targets: Callable[[], Sequence[NotifyTarget]],
        *,
        metrics: NotifyMetrics | None = None,
        clock: Clock = _utc_now,
        holder: str | None = None,
        lease_ttl: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.targets = targets
        self.metrics = metrics
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl
        self._wake: dict[str, threading.Event] = {}  # per target worker, while serving
        # The process's one TLS context (httpx would load the CA bundle again for this client).
        self._client = httpx.Client(
            follow_redirects=False, verify=ssl_verify(True), transport=transport
        )
        # One pass per target at a time in this process too (the lease tells holders apart).
        self._passes: dict[str, threading.Lock] = {}
        self._passes_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one pass over one target ---------------------------------------------------------

    def deliver_target(self, target: NotifyTarget) -> Pass:
        """Send what is due now for ``target``, in order; stop at the first batch not yet due."""
        with self._passes_lock:
            running = self._passes.setdefault(target.name, threading.Lock())
        if not running.acquire(blocking=False):
            return Pass(busy=True)
        try:
            return self._deliver(target)
        finally:
            running.release()

    def _deliver(self, target: NotifyTarget) -> Pass:
        ttl = self.lease_ttl or max(30.0, 3 * target.timeout)
        lease = acquire_lease(
            self.engine, target.name, self.holder, now=self.clock(), ttl=ttl, gone=holder_gone
        )
        if lease is None:
            return Pass(wait=None, busy=True)
        sent = 0
        try:
            while True:
                batch = self._next_batch(target, lease)
                if isinstance(batch, Pass):
                    return Pass(wait=batch.wait, busy=batch.busy, sent=sent)
                rows, batch_id = batch
                renewed = acquire_lease(
                    self.engine, target.name, self.holder, now=self.clock(), ttl=ttl
                )
                if renewed is None or renewed.token != lease.token:
                    return self._lost(target, sent)
                answer = self._send(target, rows, batch_id)
                recorder = Recorder(self.engine, target, lease, self.metrics)
                if not recorder.record(rows, answer, self.clock()):
                    return self._lost(target, sent)
                if answer.outcome == "ok":
                    sent += len(rows)
        finally:
            with suppress(SQLAlchemyError):  # else it expires by itself
                release_lease(self.engine, lease)

    def _next_batch(self, target: NotifyTarget, lease: Lease) -> tuple[list[OutboxRow], str] | Pass:
        """The head batch, started (its id recorded), or how long until one is due."""
        with self.engine.connect() as conn:
            rows = next_batch(conn, target.name, limit=target.batch_size)
        if not rows:
            return Pass()
        now = self.clock()
        if rows[0].next_attempt_at > now:
            return Pass(wait=(rows[0].next_attempt_at - now).total_seconds())
        if rows[0].batch_id is not None:  # started before: sent again as it was
            return rows, rows[0].batch_id
        rows = [r for r in rows if r.next_attempt_at <= now]
        age = (now - rows[0].created_at).total_seconds()
        if len(rows) < target.batch_size and age < target.batch_window:
            return Pass(wait=target.batch_window - age)
        batch_id = str(uuid.uuid4())
        if not start_batch(self.engine, lease, [r.id for r in rows], batch_id):
            self._lost(target, 0)
            return Pass(busy=True)
        return rows, batch_id

    def _lost(self, target: NotifyTarget, sent: int) -> Pass:
        log.warning(
            "notify lease lost: another process delivers this target now", target=target.name
        )
        return Pass(busy=True, sent=sent)

    def _send(self, target: NotifyTarget, rows: Sequence[OutboxRow], batch_id: str) -> Answer:
        return post_events(
            self._client, target, [r.payload for r in rows], batch_id=batch_id, now=self.clock()
        )

    # --- housekeeping, and the two ways to run ----------------------------------------------

    def housekeeping(self, *, drop: bool = False) -> None:
        """Forget old delivered events; with ``drop`` (the daemon only), also drop the pending
        events of targets no longer configured.

        Only the long-running daemon owns the target list: a one-shot ``inventory sync`` or
        ``inventory notify deliver`` may run with another configuration than the daemon's, and
        must not delete the daemon's pending events, so they leave other targets' rows alone.
        """
        if drop:
            dropped = drop_unconfigured(self.engine, [t.name for t in self.targets()])
            for name, count in dropped.items():
                log.warning(
                    "notify target no longer configured: its pending events were dropped",
                    target=name,
                    events=count,
                )
                if self.metrics is not None:
                    self.metrics.dropped.labels(name).inc(count)
        prune_finished(self.engine, before=self.clock() - KEEP_DELIVERED)

    def deliver_all(
        self, *, budget: float = 30.0, wait: Callable[[float], object] | None = None
    ) -> dict[str, Pass]:
        """Every target at once (``inventory sync``): what is due, retries within ``budget`` s."""
        targets = list(self.targets())
        if not targets:
            return {}
        stop = threading.Event()
        pause = wait or stop.wait
        deadline = self.clock() + timedelta(seconds=budget)

        def one(target: NotifyTarget) -> Pass:
            while True:
                try:
                    done = self.deliver_target(target)
                except SQLAlchemyError as exc:
                    log.warning(
                        "notify delivery failed: database error",
                        target=target.name,
                        error=db_error(exc),
                    )
                    return Pass()
                except Exception:  # a bug: the other targets and the sync's result go on
                    log.exception("notify delivery crashed", target=target.name)
                    return Pass(wait=0.0)
                left = (deadline - self.clock()).total_seconds()
                if done.busy or done.wait is None or done.wait > left:
                    return done
                pause(done.wait)

        with ThreadPoolExecutor(len(targets), thread_name_prefix="notify") as pool:
            return dict(zip([t.name for t in targets], pool.map(one, targets), strict=True))

    def serve(self, stop: threading.Event, *, poll: float = 2.0) -> None:
        """The daemon's loop: a worker per configured target until ``stop``; follows SIGHUP."""
        workers: dict[str, threading.Thread] = {}
        names: set[str] | None = None
        while not stop.is_set():
            current = {t.name for t in self.targets()}
            if current != names:  # at start, and after a reload changed the target list
                try:
                    self.housekeeping(drop=True)
                    names = current
                except SQLAlchemyError as exc:
                    log.warning(
                        "notify housekeeping failed",
                        error=db_error(exc),
                    )
            for name in current:
                if name not in workers or not workers[name].is_alive():
                    self._wake[name] = threading.Event()
                    workers[name] = threading.Thread(
                        target=self._work,
                        args=(name, stop, poll),
                        name=f"notify-{name}",
                        daemon=True,
                    )
                    workers[name].start()
            stop.wait(poll)
        self.wake()
        for thread in workers.values():
            thread.join(timeout=5)

    def wake(self) -> None:
        """Something was queued: workers look now instead of at their next poll."""
        for event in list(self._wake.values()):
            event.set()

    def _work(self, name: str, stop: threading.Event, poll: float) -> None:
        wake = self._wake[name]
        while not stop.is_set():
            target = next((t for t in self.targets() if t.name == name), None)
            if target is None:
                return
            try:
                done = self.deliver_target(target)
                pause = poll if done.wait is None else min(done.wait, poll)
            except SQLAlchemyError as exc:
                log.warning(
                    "notify delivery failed: database error",
                    target=name,
                    error=db_error(exc),
                )
                pause = poll
            except Exception:  # a bug must not end the daemon's deliveries for good
                log.exception("notify worker crashed; restarting", target=name)
                pause = poll
            wake.wait(pause)
            wake.clear()
