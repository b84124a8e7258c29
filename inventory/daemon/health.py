"""The daemon's HTTP endpoint: /healthz, /readyz and /metrics; and a probe client for containers.

    /healthz   200 while the process runs and its scheduler schedules; 503 otherwise
    /readyz    200 when the database answers and every configured account's last success is
               recent enough; 503 with the reasons (JSON) otherwise
    /metrics   Prometheus text format

``python -m inventory.daemon.health`` GETs /healthz on INVENTORY_METRICS_ADDRESS and exits 0 or 1: a
HEALTHCHECK for images without curl.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from inventory.db import models
from inventory.sync.outcome import describe_error

__all__ = ["HealthServer", "Probes", "Readiness", "check_readiness", "parse_address", "probe"]

DEFAULT_ADDRESS = "127.0.0.1:9108"


@dataclass
class Readiness:
    ready: bool
    database: str  # "ok" or the error
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_success: dict[str, datetime | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "database": self.database, "accounts": self.accounts}


def check_readiness(
    engine: Engine, account_ids: Sequence[str], *, max_age: float, now: datetime
) -> Readiness:
    accounts = models.table_of(models.Account)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            rows = conn.execute(
                select(accounts.c.id, accounts.c.last_success_at, accounts.c.last_status).where(
                    accounts.c.id.in_(list(account_ids))
                )
            ).all()
    except SQLAlchemyError as exc:
        return Readiness(ready=False, database=describe_error(exc, database="unreachable: "))
    known = {row.id: row for row in rows}
    oldest = now - timedelta(seconds=max_age)
    report: dict[str, dict[str, Any]] = {}
    last_success: dict[str, datetime | None] = {}
    for account_id in account_ids:
        row = known.get(account_id)
        success = row.last_success_at if row is not None else None
        last_success[account_id] = success
        report[account_id] = {
            "ok": success is not None and success >= oldest,
            "last_success_at": success.isoformat() if success is not None else None,
            "last_status": row.last_status if row is not None else None,
        }
    return Readiness(
        ready=all(a["ok"] for a in report.values()),
        database="ok",
        accounts=report,
        last_success=last_success,
    )


@dataclass(frozen=True)
class Probes:
    healthy: Callable[[], bool]
    readiness: Callable[[], Readiness]
    metrics: Callable[[], tuple[bytes, str]]  # body, content type


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        """Silent: probes every few seconds would drown the canonical lines."""

    def do_GET(self) -> None:  # the name the base class dispatches to
        probes = self.server.probes
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = probes.healthy()
            body = b"ok\n" if ok else b"not scheduling (starting or stopping)\n"
            self._send(200 if ok else 503, body, "text/plain")
        elif path == "/readyz":
            state = probes.readiness()
            body = json.dumps(state.as_json(), indent=2).encode() + b"\n"
            self._send(200 if state.ready else 503, body, "application/json")
        elif path == "/metrics":
            body, content_type = probes.metrics()
            self._send(200, body, content_type)
        else:
            self._send(404, b"not found: try /healthz, /readyz or /metrics\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], probes: Probes) -> None:
        super().__init__(address, _Handler)
        self.probes = probes


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9108" means every interface


class HealthServer:
    """Serves the probes from a daemon thread; ``port`` is the bound one (address port 0 works)."""

    def __init__(self, address: str, probes: Probes) -> None:
        self._server = _Server(parse_address(address), probes)
        host, port = self._server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="health",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def probe(address: str, path: str = "/healthz", *, timeout: float = 5.0) -> bool:
    host, port = parse_address(address)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1" if host != "::" else "::1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> None:
    address = os.environ.get("INVENTORY_METRICS_ADDRESS") or DEFAULT_ADDRESS
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    sys.exit(0 if probe(address, path) else 1)


if __name__ == "__main__":
    main()
