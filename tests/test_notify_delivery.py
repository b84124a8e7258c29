"""The deliverer against a real receiver on 127.0.0.1 with faults, on both databases.

Each pass is driven by hand with a clock the test moves, so backoff waits cost nothing: a test
moves the clock past an event's next attempt instead of sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from inventory.daemon.metrics import Metrics
from inventory.notify.deliver import Deliverer
from inventory.notify.post import backoff, classify, retry_after_seconds
from inventory.notify.running import deliver_pending
from inventory.settings import load_settings
from tests.support.daemon import wait_until
from tests.support.notify import SECRET, T0, Clock, queue, states, target
from tests.support.receiver import Hold, Receiver, Reset, Status, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def test_backoff_and_classification_are_plain_functions() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(30) == 600.0
    assert backoff(1, 7.0) == 7.0
    assert backoff(1, 10**9) == 3600.0
    assert backoff(1, 0.0) == backoff(3, 0.2) == 1.0  # "Retry-After: 0" is no hot loop
    assert retry_after_seconds("12", T0) == 12.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:00:30 GMT", T0) == 30.0
    assert retry_after_seconds("soon", T0) is None
    assert classify(204).outcome == "ok"
    assert classify(500).outcome == classify(429).outcome == classify(408).outcome == "retry"
    assert classify(400).outcome == classify(301).outcome == classify(404).outcome == "refused"


def test_delivers_in_order_in_batches_signed_with_ids(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    ids = queue(engine, "sec", 5)
    metrics = Metrics()
    with Deliverer(
        engine, lambda: [target(receiver.url, batch_size=2)], metrics=metrics.notify, clock=Clock()
    ) as d:
        done = d.deliver_target(target(receiver.url, batch_size=2))
    assert done.sent == 5
    assert done.wait is None
    assert [len(r.ids) for r in receiver.requests] == [2, 2, 1]
    assert receiver.delivered_ids() == ids
    for request in receiver.requests:
        # the documented check: HMAC-SHA256 of the exact body bytes, keyed by the secret
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["x-inventory-signature"], expected)
        assert request.document["ids"] == request.ids
        assert [e["id"] for e in request.document["events"]] == request.ids
    assert len({r.key for r in receiver.requests}) == 3
    assert {s[0] for s in states(engine).values()} == {"delivered"}
    assert (
        metrics.registry.get_sample_value(
            "inventory_notify_events_delivered_total", {"target": "sec"}
        )
        == 5
    )


def test_5xx_429_timeout_and_reset_are_retried_with_the_same_ids(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    ids = queue(engine, "sec", 2)
    receiver.answers.extend(
        [Status(500), Status(429, {"Retry-After": "7"}), Hold(), Reset(), Status(503)]
    )
    clock = Clock()
    metrics = Metrics()
    t = target(receiver.url, timeout="0.3s")
    waits = []
    with Deliverer(engine, lambda: [t], metrics=metrics.notify, clock=clock) as d:
        for _ in range(5):
            done = d.deliver_target(t)
            assert done.sent == 0
            assert done.wait is not None
            waits.append(done.wait)
            assert states(engine)[ids[0]][0] == "pending"
            clock.advance(done.wait)
        done = d.deliver_target(t)
    receiver.release()
    assert done.sent == 2
    assert waits == [2.0, 7.0, 8.0, 16.0, 32.0]  # Retry-After honoured, else doubling
    assert len(receiver.requests) == 6
    assert {tuple(r.ids) for r in receiver.requests} == {tuple(ids)}
    assert len({r.key for r in receiver.requests}) == 1  # one batch, one idempotency key
    assert states(engine)[ids[0]] == ("delivered", 6, "HTTP 503")
    retried = metrics.registry.get_sample_value(
        "inventory_notify_events_retried_total", {"target": "sec"}
    )
    assert retried == 10


def test_retry_after_zero_waits_a_second_not_a_hot_loop(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    queue(engine, "sec", 1)
    receiver.answers.extend([Status(429, {"Retry-After": "0"})] * 3)
    clock = Clock()
    t = target(receiver.url)
    with Deliverer(engine, lambda: [t], clock=clock) as d:
        assert d.deliver_target(t).wait == 1.0
        assert len(receiver.requests) == 1


def test_a_400_kills_that_event_only_and_the_queue_goes_on(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    ids = queue(engine, "sec", 3)
    # the batch of three is refused, then sent one by one: the second is refused alone
    receiver.answers.extend([Status(400), Status(200), Status(422), Status(200)])
    t = target(receiver.url)
    with capture_logs() as logs, Deliverer(engine, lambda: [t], clock=Clock()) as d:
        done = d.deliver_target(t)
    assert done.sent == 2
    assert [r.ids for r in receiver.requests] == [ids, [ids[0]], [ids[1]], [ids[2]]]
    # alone, each event is sent with its own id as the idempotency key; the batch, its own
    assert [r.key for r in receiver.requests[1:]] == ids
    assert receiver.requests[0].key not in ids
    assert states(engine) == {
        ids[0]: ("delivered", 1, None),
        ids[1]: ("dead", 1, "HTTP 422"),
        ids[2]: ("delivered", 1, None),
    }
    dead = [e for e in logs if e["event"] == "notification dead: not delivered"]
    assert dead
    assert dead[0]["event_ids"] == [ids[1]]


def test_a_redirect_is_not_followed(db_url: str, engine: Engine, receiver: Receiver) -> None:
    ids = queue(engine, "sec", 1)
    receiver.answers.append(Status(302, {"Location": receiver.url + "/elsewhere"}))
    t = target(receiver.url)
    with Deliverer(engine, lambda: [t], clock=Clock()) as d:
        d.deliver_target(t)
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert states(engine)[ids[0]] == ("dead", 1, "HTTP 302: a redirect, not followed")


def test_the_answers_body_is_never_read(db_url: str, engine: Engine, receiver: Receiver) -> None:
    """Only the status counts: a body that cannot be decoded (or a huge one) changes nothing."""
    ids = queue(engine, "sec", 2)
    garbled = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    receiver.answers.extend(
        [Status(503, garbled, b"\x00not gzip"), Status(200, garbled, b"\x00not gzip" * 1000)]
    )
    clock = Clock()
    t = target(receiver.url)
    with Deliverer(engine, lambda: [t], clock=clock) as d:
        assert d.deliver_target(t).wait == 2.0
        clock.advance(2)
        assert d.deliver_target(t).sent == 2
    assert {s[0] for s in states(engine).values()} == {"delivered"}
    assert states(engine)[ids[0]][2] == "HTTP 503"


def test_an_event_failing_past_max_age_is_dead_and_visible(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    ids = queue(engine, "sec", 1)
    receiver.answers.extend([Status(500)] * 3)
    clock = Clock()
    t = target(receiver.url, max_age="10s")
    with Deliverer(engine, lambda: [t], clock=clock) as d:
        assert d.deliver_target(t).wait == 2.0
        clock.advance(2)
        assert d.deliver_target(t).wait == 4.0
        clock.advance(8)  # ten seconds old now
        assert d.deliver_target(t).wait is None
    state, attempts, error = states(engine)[ids[0]]
    assert (state, attempts) == ("dead", 3)
    # the gauge reads the database: dead events stay visible across restarts and replicas
    metrics = Metrics()
    metrics.notify.refresh(engine)
    sample = metrics.registry.get_sample_value
    assert sample("inventory_notify_events", {"target": "sec", "state": "dead"}) == 1
    assert sample("inventory_notify_events", {"target": "sec", "state": "pending"}) == 0
    with engine.begin() as conn:  # deleted by hand, as docs/notifications.md says
        conn.execute(text("DELETE FROM notify_outbox WHERE state = 'dead'"))
    metrics.notify.refresh(engine)
    assert sample("inventory_notify_events", {"target": "sec", "state": "dead"}) == 0
    assert [r.key for r in receiver.requests] == [ids[0]] * 3  # the event's id, every attempt
    assert error is not None
    assert "max_age" in error


def test_max_age_gives_up_each_event_at_its_own_age_not_its_batchs(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    old = queue(engine, "sec", 1)
    clock = Clock()
    clock.advance(6)
    young = queue(engine, "sec", 1, first=1, now=clock.now)
    receiver.answers.extend([Status(500), Status(500)])
    t = target(receiver.url, max_age="10s")
    with Deliverer(engine, lambda: [t], clock=clock) as d:
        assert d.deliver_target(t).wait == 2.0  # one batch of both, failed
        clock.advance(4)  # the first is ten seconds old, the second four
        d.deliver_target(t)
        assert states(engine)[old[0]][0] == "dead"
        assert states(engine)[young[0]][:2] == ("pending", 2)
        clock.advance(4)
        assert d.deliver_target(t).sent == 1  # the younger one is delivered after all
    assert [r.ids for r in receiver.requests] == [old + young, old + young, young]
    assert receiver.requests[2].key == young[0]
    assert states(engine)[young[0]][0] == "delivered"


def test_a_failing_target_never_holds_up_another(db_url: str, engine: Engine) -> None:
    with receiving() as slow, receiving() as fine:
        queue(engine, "slow", 1)
        fine_ids = queue(engine, "fine", 3, first=10)
        slow.answers.append(Hold())
        targets = [target(slow.url, "slow", timeout="20s"), target(fine.url, "fine")]
        with Deliverer(engine, lambda: targets, clock=Clock()) as d:
            runner = threading.Thread(target=d.deliver_all, kwargs={"budget": 0})
            runner.start()
            slow.wait_for(lambda requests: len(requests) == 1)
            # while the slow target's request hangs, the other target's events are delivered
            fine.wait_for(lambda requests: len(requests) == 1)
            assert fine.delivered_ids() == fine_ids
            slow.release()
            runner.join(30)
    assert {s[0] for s in states(engine, "slow").values()} == {"delivered"}


def test_a_crash_delivering_one_target_spares_the_others_and_the_caller(
    db_url: str, engine: Engine
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/bad":
            raise RuntimeError("a bug")
        return httpx.Response(204)

    queue(engine, "bad", 1)
    good = queue(engine, "good", 2, first=5)
    targets = [target("http://h.test/bad", "bad"), target("http://h.test/good", "good")]
    transport = httpx.MockTransport(answer)
    with capture_logs() as logs, Deliverer(engine, lambda: targets, transport=transport) as d:
        passes = d.deliver_all(budget=0)
    assert passes["good"].sent == 2
    assert passes["bad"].wait is not None  # left pending: "some left" for notify deliver
    assert {i: s[0] for i, s in states(engine, "good").items()} == dict.fromkeys(good, "delivered")
    assert [s[0] for s in states(engine, "bad").values()] == ["pending"]
    assert any(e["event"] == "notify delivery crashed" for e in logs)


def test_the_daemon_drops_a_removed_targets_events_at_start_and_on_reload(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    queue(engine, "gone", 2)
    kept = queue(engine, "sec", 1, first=5)
    later = queue(engine, "later", 1, first=9)
    refused = "http://127.0.0.1:9/hook"  # nothing listens: "later" keeps its event pending
    configured = [target(receiver.url), target(refused, "later")]
    stop = threading.Event()
    with capture_logs() as logs, Deliverer(engine, lambda: list(configured), clock=Clock()) as d:
        serving = threading.Thread(target=d.serve, args=(stop,), kwargs={"poll": 0.05})
        serving.start()
        try:
            # at start: "gone" is not configured, its events are dropped with a log line
            wait_until(lambda: states(engine, "gone") == {})
            wait_until(lambda: receiver.delivered_ids() == kept)
            wait_until(lambda: states(engine, "later")[later[0]][1] >= 1)  # tried, failed
            configured[:] = [target(receiver.url)]  # what a SIGHUP does to settings.notify
            wait_until(lambda: states(engine, "later") == {})
        finally:
            stop.set()
            serving.join(30)
    drops = [(e["target"], e["events"]) for e in logs if "no longer configured" in e["event"]]
    assert drops == [("gone", 2), ("later", 1)]
    assert states(engine)[kept[0]][0] == "delivered"


def test_one_shot_delivery_leaves_other_targets_events_alone(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    """``inventory sync`` / ``notify deliver`` with another target list than the daemon's."""
    theirs = queue(engine, "daemons", 2)
    mine = queue(engine, "sec", 1, first=5)
    with capture_logs() as logs:
        deliver_pending(engine, [target(receiver.url)], budget=0)
    assert receiver.delivered_ids() == mine
    assert states(engine, "daemons") == dict.fromkeys(theirs, ("pending", 0, None))
    assert not [e for e in logs if "no longer configured" in e["event"]]
    # asked for by hand (notify deliver --drop-unconfigured): dropped, with the log line
    with capture_logs() as logs:
        deliver_pending(engine, [target(receiver.url)], budget=0, drop=True)
    assert states(engine, "daemons") == {}
    line = next(e for e in logs if "no longer configured" in e["event"])
    assert (line["target"], line["events"]) == ("daemons", 2)


def test_a_batch_waits_its_window_for_company_unless_full(
    db_url: str, engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    t = target(receiver.url, batch_window="5s", batch_size=3)
    first = queue(engine, "sec", 2)
    with Deliverer(engine, lambda: [t], clock=clock) as d:
        clock.advance(1)
        assert d.deliver_target(t).wait == 4.0  # not sent yet: others may join
        assert receiver.requests == []
        more = queue(engine, "sec", 3, first=2, now=clock.now)  # now there is a full batch
        done = d.deliver_target(t)
        assert done.sent == 3
        assert done.wait == 5.0  # the two left wait out the window of their first
        clock.advance(5)
        assert d.deliver_target(t).sent == 2
    assert [r.ids for r in receiver.requests] == [[*first, more[0]], more[1:]]


def test_a_short_webhook_secret_is_warned_about(tmp_path: Path) -> None:
    targets = '[{"name": "t", "url": "https://hooks.example.com/x", "secret": "abc"}]'
    settings = load_settings(
        environ={"INVENTORY_NOTIFY": targets}, cwd=tmp_path, require_accounts=False
    )
    assert any("notify[0] (t): secret is shorter than" in w for w in settings.warnings)
