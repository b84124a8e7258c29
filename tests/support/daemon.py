"""Helpers (no tests) for starting the real daemon process: `inventory run` as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from inventory.db import models
from inventory.simulator import SimulatedCloudflare


def inventory_command() -> list[str]:
    """The `inventory` executable, as argv."""
    return [sys.executable, "-m", "inventory"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def daemon_env(
    sim: SimulatedCloudflare, api_url: str, db_url: str, home: Path, **extra: object
) -> dict[str, str]:
    accounts = [
        {"id": account_id, "name": f"acct-{i}", "api_token": sim.api_token}
        for i, account_id in enumerate(sim.account_ids)
    ]
    (home / "secrets").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    env.update(
        INVENTORY_API_BASE_URL=api_url,
        INVENTORY_DATABASE_URL=db_url,
        INVENTORY_ACCOUNTS=json.dumps(accounts),
        INVENTORY_SECRETS_DIR=str(home / "secrets"),
        INVENTORY_LOG_FORMAT="json",
        INVENTORY_LOG_LEVEL="debug",
        INVENTORY_MAX_RETRIES="0",
        INVENTORY_READ_TIMEOUT="10",
        INVENTORY_SYNC_INTERVAL="1",
        INVENTORY_METRICS_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    env.update({f"INVENTORY_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class Daemon:
    """One `inventory run` process; stderr (JSON log lines) goes to a file for later reading."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, name: str = "daemon") -> None:
        self.env = env
        self.log_path = cwd / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*inventory_command(), "run", *args],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.address = env["INVENTORY_METRICS_ADDRESS"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_serving(self, timeout: float = 20.0) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, self.output()
            with suppress(OSError):
                return self.get("/healthz")[0] == 200
            return False

        wait_until(up, timeout=timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not exit in {timeout}s:\n{self.output()}") from None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            with suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    lines.append(record)
        return lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@contextmanager
def running(env: dict[str, str], cwd: Path, *args: str, name: str = "daemon") -> Iterator[Daemon]:
    daemon = Daemon(env, cwd, *args, name=name)
    try:
        yield daemon
    finally:
        daemon.close()


def runs(engine: Engine) -> list[Any]:
    table = models.table_of(models.SyncRun)
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


class TcpForwarder:
    """127.0.0.1:<port> → target; stop() cuts every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
