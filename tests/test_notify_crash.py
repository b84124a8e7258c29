"""Nothing lost: kill -9 during delivery (both databases), and two deliverers on one target.

The kill trial runs ``inventory notify deliver`` in a subprocess whose second request the
receiver holds; the process is killed while it waits. After a restart every event is delivered,
and the only ones sent twice are those of the batch in flight, again with the same ids and the
same Idempotency-Key. The lease makes two deliverers of one target take turns: order is kept and
nothing is sent twice; one that stalls past its lease is fenced out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.notify.deliver import Deliverer
from tests.support.notify import SECRET, Clock, queue, states, target
from tests.support.receiver import Hold, Receiver, Status, receiving

pytestmark = pytest.mark.slow


def _deliver_process(db_url: str, receiver: Receiver, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))},
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_LOG_FORMAT": "json",
        "INVENTORY_NOTIFY": json.dumps(
            [
                {
                    "name": "sec",
                    "url": receiver.url,
                    "secret": SECRET,
                    "batch_size": 2,
                    "batch_window": 0,
                    "timeout": "60s",
                }
            ]
        ),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "inventory", "notify", "deliver", "--budget", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_while_a_batch_is_in_flight_loses_nothing(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with receiving() as receiver:
        ids = queue(engine, "sec", 6, now=datetime.now(UTC))
        receiver.answers.extend([Status(200), Hold()])
        proc = _deliver_process(db_url, receiver, tmp_path)
        try:
            receiver.wait_for(lambda requests: len(requests) == 2, timeout=60)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
        receiver.release()  # the held request's answer goes to a dead process
        in_flight = receiver.requests[1]
        assert states(engine)[ids[0]][0] == "delivered"
        assert states(engine)[ids[2]][0] == "pending"
        t = target(receiver.url, batch_size=2)
        with Deliverer(engine, lambda: [t]) as restarted:
            done = restarted.deliver_target(t)  # the dead holder's lease does not wait it out
        assert done.sent == 4
    again = receiver.requests[2]
    assert again.ids == in_flight.ids == ids[2:4]
    assert again.key == in_flight.key
    assert again.body == in_flight.body
    sent = Counter(i for r in receiver.requests for i in r.ids)
    assert set(sent) == set(ids)
    assert {i for i, n in sent.items() if n > 1} == set(in_flight.ids)
    order = [i for r in receiver.requests for i in r.ids]
    assert order == [*ids[:4], *ids[2:]]
    assert {s[0] for s in states(engine).values()} == {"delivered"}


def test_two_deliverers_of_one_target_take_turns(db_url: str, engine: Engine) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL database")
    with receiving() as receiver:
        ids = queue(engine, "sec", 30, now=datetime.now(UTC))
        t = target(receiver.url, batch_size=3)
        receiver.answers.append(Hold())
        with (
            Deliverer(engine, lambda: [t], holder="host-a:1:a") as a,
            Deliverer(engine, lambda: [t], holder="host-b:2:b") as b,
        ):
            first = threading.Thread(target=a.deliver_target, args=(t,))
            first.start()
            receiver.wait_for(lambda requests: len(requests) == 1)
            assert b.deliver_target(t).busy  # a holds the lease while its request is out
            receiver.release()
            first.join(30)
            queue(engine, "sec", 30, now=datetime.now(UTC), first=100)
            ids += [f"00000000-0000-4000-8000-{n:012d}" for n in range(100, 130)]
            runners = [threading.Thread(target=_drain, args=(d, t, engine)) for d in (a, b, a, b)]
            for runner in runners:
                runner.start()
            for runner in runners:
                runner.join(60)
    order = [i for r in receiver.requests for i in r.ids]
    assert order == ids  # in order, and none twice
    assert {s[0] for s in states(engine).values()} == {"delivered"}


def _drain(deliverer: Deliverer, t: Any, engine: Engine) -> None:
    while any(s[0] == "pending" for s in states(engine).values()):
        deliverer.deliver_target(t)


def test_a_deliverer_that_stalled_past_its_lease_is_fenced_out(db_url: str, engine: Engine) -> None:
    with receiving() as receiver:
        ids = queue(engine, "sec", 2, now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        t = target(receiver.url, batch_size=2, timeout="60s")
        slow_clock, clock = Clock(), Clock()
        receiver.answers.append(Hold())
        with Deliverer(engine, lambda: [t], holder="a", lease_ttl=30, clock=slow_clock) as a:
            outcome: dict[str, Any] = {}
            stalled = threading.Thread(target=lambda: outcome.update(a=a.deliver_target(t)))
            stalled.start()
            receiver.wait_for(lambda requests: len(requests) == 1)
            clock.advance(31)  # a's lease ran out while its request hangs: b takes over
            with Deliverer(engine, lambda: [t], holder="b", lease_ttl=30, clock=clock) as b:
                assert b.deliver_target(t).sent == 2
            receiver.release()
            stalled.join(30)
    assert outcome["a"].busy  # its answer came too late: recorded nothing, stopped
    assert outcome["a"].sent == 0
    assert [r.ids for r in receiver.requests] == [ids, ids]
    assert receiver.requests[0].key == receiver.requests[1].key
    assert {s[:2] for s in states(engine).values()} == {("delivered", 1)}
