"""A webhook receiver on 127.0.0.1 that records every request and answers as it is told.

``answers`` is a queue of what to do with the next requests (then 200 for ever):

    Status(code, headers, body)   answer this status
    Hold()                  keep the request unanswered until ``release()`` (a slow receiver;
                            the client's timeout, or a kill, ends it first)
    Reset()                 close the connection with a TCP reset, no answer

Tests wait on ``wait_for`` (a condition on the requests seen), never on sleeps.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Hold", "Received", "Receiver", "Reset", "Status", "receiving"]


@dataclass(frozen=True)
class Status:
    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Hold:
    pass


@dataclass(frozen=True)
class Reset:
    pass


Answer = Status | Hold | Reset


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer

    @property
    def document(self) -> Any:
        return json.loads(self.body)

    @property
    def ids(self) -> list[str]:
        return self.headers["x-inventory-event-ids"].split(",")

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


class Receiver:
    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.requests: list[Received] = []
        self._changed = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    answer = receiver.answers.popleft() if receiver.answers else Status(200)
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            answer,
                        )
                    )
                    receiver._changed.notify_all()
                if isinstance(answer, Hold):
                    receiver._release.wait(60)
                    answer = Status(200)
                if isinstance(answer, Reset):
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                try:
                    self.send_response(answer.code)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up (its timeout) or was killed
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def release(self) -> None:
        self._release.set()

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 30) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: condition(self.requests), timeout), self.requests

    def delivered_ids(self) -> list[str]:
        """Event ids of the requests answered 2xx (held ones count: they were answered 200)."""
        return [
            i
            for r in self.requests
            if not isinstance(r.answer, Reset)
            and (isinstance(r.answer, Hold) or 200 <= r.answer.code < 300)
            for i in r.ids
        ]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    # a short poll: shutdown() waits for the loop's next poll (0.5 s by default)
    thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)
