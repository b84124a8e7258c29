"""Time budgets that a slow server cannot stretch: one per request, one per account sync.

httpx's timeouts bound each socket operation, so a server that trickles a byte every few seconds
keeps a request alive for as long as it likes. A ``Deadline`` is a budget in seconds, named after
the setting that sets it, from which waits for rate-limit budget are excluded (``exclude``): our
limiter and Cloudflare's ``Retry-After`` bound those on their own, and an operator reading
"request_deadline exceeded" must not be told that a wait Cloudflare asked for was the server's
slowness.

``bounded_io(client)`` makes every socket operation of an ``httpx.Client`` (connect, TLS, each
read and write) wait no longer than what is left of the deadline the calling thread is
``within``, so the budget holds while headers or a body trickle in, not only between chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

__all__ = ["Deadline", "bounded_io", "cut_by_deadline", "earliest", "within"]


class Deadline:
    """``seconds`` from now on ``clock``, less what ``exclude`` takes out; thread-safe."""

    def __init__(
        self,
        seconds: float,
        *,
        setting: str,
        covers: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.setting = setting  # the setting an operator changes: "request_deadline"
        self.covers = covers  # what it bounds, for messages: "the account's whole sync"
        self._clock = clock
        self._start = clock()
        self._excluded = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Deadline({self.setting}={self.seconds:g}, remaining={self.remaining():.1f})"

    def exclude(self, seconds: float) -> None:
        """Give back ``seconds`` spent waiting for rate-limit budget."""
        with self._lock:
            self._excluded += max(seconds, 0.0)

    def elapsed(self) -> float:
        with self._lock:
            return self._clock() - self._start - self._excluded

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def describe(self) -> str:
        return (
            f"{self.setting} ({self.seconds:g} s for {self.covers}; rate-limit waits not counted)"
        )


def earliest(deadlines: Iterable[Deadline]) -> Deadline:
    """The deadline with the least time left (the one that will stop the work first)."""
    return min(deadlines, key=lambda d: d.remaining())


_current = threading.local()


@contextmanager
def within(remaining: Callable[[], float]) -> Iterator[None]:
    """Socket operations of ``bounded_io`` clients on this thread wait at most ``remaining()``."""
    outer = getattr(_current, "remaining", None)
    _current.remaining, _current.cut = remaining, False
    try:
        yield
    finally:
        _current.remaining = outer


def cut_by_deadline() -> bool:
    """Whether the last socket operation on this thread waited less than its own timeout
    because the deadline left less: a timeout then is the deadline's, not read_timeout's."""
    return bool(getattr(_current, "cut", False))


def _capped(timeout: float | None, error: type[Exception]) -> float | None:
    remaining: Callable[[], float] | None = getattr(_current, "remaining", None)
    if remaining is None:
        return timeout
    left = remaining()
    _current.cut = left <= 0 or timeout is None or left < timeout
    if left <= 0:
        raise error("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _capped(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _capped(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._inner.connect_tcp(
                host, port, timeout, local_address=local_address, socket_options=socket_options
            )
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _capped(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_io(client: httpx.Client) -> bool:
    """Wrap the network backend of ``client``'s own transports; False if it has none (a test's
    MockTransport), when only the checks between chunks bound a request.

    httpx has no public hook for the backend: its transports keep an httpcore pool, whose
    backend is replaced here (httpx and httpcore are pinned in requirements/*.lock, and the
    trickling-server tests fail if this stops taking effect).
    """
    transports = [client._transport, *client._mounts.values()]  # private: see above
    wrapped = False
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
            wrapped = True
    return wrapped
