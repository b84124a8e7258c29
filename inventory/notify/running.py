"""The two ways deliveries run: once at the end of ``inventory sync`` (and ``notify deliver``),
and for as long as the daemon serves (a worker per target)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inventory.notify.deliver import Deliverer, Pass, db_error
from inventory.notify.metrics import NotifyMetrics
from inventory.settings.notify import NotifyTarget

__all__ = ["deliver_pending", "serving"]

log = structlog.get_logger("inventory.notify")


def deliver_pending(
    engine: Engine, targets: Sequence[NotifyTarget], *, budget: float = 30.0, drop: bool = False
) -> dict[str, Pass]:
    """The end of ``inventory sync``: deliver what is queued; what still fails waits.

    Only ``targets`` are touched: pending events of targets not among them (another process's
    configuration, the daemon's) are left alone unless ``drop`` (``notify deliver
    --drop-unconfigured``, asked for by hand).
    """
    with Deliverer(engine, lambda: targets) as deliverer:
        try:
            deliverer.housekeeping(drop=drop)
        except SQLAlchemyError as exc:
            log.warning(
                "notify housekeeping failed",
                error=db_error(exc),
            )
        passes = deliverer.deliver_all(budget=budget)
    for name, done in passes.items():
        if done.wait is not None or done.busy:
            log.info(
                "notifications left pending: the daemon or the next sync delivers them",
                target=name,
                busy=done.busy,
            )
    return passes


@contextmanager
def serving(
    engine: Engine,
    targets: Callable[[], Sequence[NotifyTarget]],
    *,
    metrics: NotifyMetrics | None = None,
) -> Iterator[Deliverer]:
    """The daemon's deliverer: its workers run for the block, then stop (in-flight requests end)."""
    stop = threading.Event()
    with Deliverer(engine, targets, metrics=metrics) as deliverer:
        thread = threading.Thread(target=deliverer.serve, args=(stop,), name="notify", daemon=True)
        thread.start()
        try:
            yield deliverer
        finally:
            stop.set()
            deliverer.wake()
            thread.join(timeout=15)
