"""One measured phase in a fresh process: ``python -m benchmarks.phase SPEC.json RESULT.json``.

Each phase runs alone in its process so peak RSS (``ru_maxrss``) is that phase's alone. The
kinds: ``sync`` (the product's ``run_sync``, as ``inventory sync`` runs it), ``floor_fetch``
(bare httpx over every page + JSON parsing, nothing else) and ``floor_insert`` (the rows a
synced database holds, inserted into an empty one with raw ``executemany`` in one transaction).
"""

from __future__ import annotations

import json
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["main", "run_phase"]

_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)
_CHUNK = 5000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class _WriteCounter:
    """Rows written: SQLite's own ``total_changes`` per connection, and rowcount per table."""

    def __init__(self) -> None:
        self.sqlite_changes = 0
        self.by_table: Counter[str] = Counter()
        self._at_checkout: dict[int, int] = {}

    def install(self) -> None:
        from sqlalchemy import Engine, event
        from sqlalchemy.pool import Pool

        event.listen(Pool, "checkout", self._checkout)
        event.listen(Pool, "checkin", self._checkin)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            self._at_checkout[id(dbapi_conn)] = dbapi_conn.total_changes

    def _checkin(self, dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            before = self._at_checkout.pop(id(dbapi_conn), dbapi_conn.total_changes)
            self.sqlite_changes += dbapi_conn.total_changes - before

    def _after(self, *args: Any) -> None:
        cursor, statement = args[1], args[2]
        match = _WRITE.match(statement)
        if match:
            self.by_table[match.group(2)] += max(cursor.rowcount, 0)


def _sync(spec: dict[str, Any]) -> dict[str, Any]:
    from inventory.daemon.service import run_sync
    from inventory.logs import configure_logging
    from inventory.settings import load_settings

    configure_logging("warning", "json")
    counter = _WriteCounter()
    counter.install()
    with tempfile.TemporaryDirectory() as cwd:
        environ = {
            "INVENTORY_API_BASE_URL": spec["api_url"],
            "INVENTORY_DATABASE_URL": spec["db_url"],
            "INVENTORY_ACCOUNTS": json.dumps(
                [{"id": a, "api_token": spec["token"]} for a in spec["accounts"]]
            ),
            "INVENTORY_MAX_CONCURRENCY": str(spec["max_concurrency"]),
            "INVENTORY_PAGE_SIZE": str(spec["per_page"]),
            "INVENTORY_SECRETS_DIR": cwd,
        }
        if spec.get("rate_limit"):
            environ["INVENTORY_RATE_LIMIT_REQUESTS"] = str(spec["rate_limit"][0])
            environ["INVENTORY_RATE_LIMIT_PERIOD"] = str(spec["rate_limit"][1])
        settings = load_settings(environ=environ, cwd=Path(cwd))
        rss_start = _rss_mb()
        started = time.perf_counter()
        runs = [run_sync(settings, settings.accounts) for _ in range(spec.get("syncs", 1))]
        wall = time.perf_counter() - started
    results = [r for run in runs for r in run]
    totals = Counter[str]()
    for r in results:
        for kind_counts in r.counts.values():
            totals.update(kind_counts)
    return {
        "wall_s": wall,
        "rss_start_mb": rss_start,
        "sqlite_changes": counter.sqlite_changes if spec["db_url"].startswith("sqlite") else None,
        "rowcount_by_table": dict(counter.by_table),
        "statuses": dict(Counter(r.status for r in results)),
        "errors": sorted({r.error for r in results if r.error}),
        "run_requests": sum(r.requests for r in results),
        "run_retries": sum(r.retries for r in results),
        "changes": dict(totals),
        "observed": sum(r.observed for r in results),
    }


def _floor_fetch(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    per_page = spec["per_page"]
    headers = {"Authorization": f"Bearer {spec['token']}"}

    def account(client: httpx.Client, account_id: str) -> tuple[int, int]:
        pages = items = 0
        for endpoint in ("portals", "servers"):
            path = f"/accounts/{account_id}/access/ai-controls/mcp/{endpoint}"
            for page in range(1, 10_000):
                response = client.get(path, params={"page": page, "per_page": per_page})
                response.raise_for_status()
                document = json.loads(response.content)
                pages, items = pages + 1, items + len(document["result"])
                total_pages = (document.get("result_info") or {}).get("total_pages")
                if len(document["result"]) < per_page or (total_pages and page >= total_pages):
                    break
        return pages, items

    rss_start = _rss_mb()
    started = time.perf_counter()
    with (
        httpx.Client(base_url=spec["api_url"], headers=headers, timeout=120) as client,
        ThreadPoolExecutor(spec["max_concurrency"]) as pool,
    ):
        done = list(pool.map(lambda a: account(client, a), spec["accounts"]))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "rss_start_mb": rss_start,
        "pages": sum(p for p, _ in done),
        "items": sum(i for _, i in done),
    }


def _tables() -> list[tuple[str, list[str]]]:
    from inventory.db.models import Base

    return [(t.name, [c.name for c in t.columns]) for t in Base.metadata.sorted_tables]


def _sqlite_chunks(path: str, table: str, cols: list[str]) -> Iterator[list[Any]]:
    source = sqlite3.connect(path)
    try:
        cursor = source.execute(f"SELECT {', '.join(cols)} FROM {table}")
        while chunk := cursor.fetchmany(_CHUNK):
            yield chunk
    finally:
        source.close()


def _floor_insert_sqlite(source: str, target: str) -> tuple[float, int, int]:
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):  # as the product
        conn.execute(f"PRAGMA {pragma}")
    spent, rows = 0.0, 0
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    spent += time.perf_counter() - started
    for table, cols in _tables():
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for chunk in _sqlite_chunks(source, table, cols):
            started = time.perf_counter()
            conn.executemany(sql, chunk)
            spent += time.perf_counter() - started
            rows += len(chunk)
    started = time.perf_counter()
    conn.execute("COMMIT")
    spent += time.perf_counter() - started
    changes = conn.total_changes
    conn.close()
    return spent, rows, changes


def _floor_insert_pg(source: str, target: str) -> tuple[float, int, int]:
    import psycopg
    from psycopg.types.string import TextLoader

    def connect(url: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
        for name in ("json", "jsonb", "timestamptz"):  # pass values through as text
            conn.adapters.register_loader(name, TextLoader)
        return conn

    spent, rows = 0.0, 0
    with connect(source) as src, connect(target) as dst:
        for table, cols in _tables():
            sql = (
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
            )
            with src.cursor(name=f"read_{table}") as reader:
                reader.execute(f"SELECT {', '.join(cols)} FROM {table}")
                while chunk := reader.fetchmany(_CHUNK):
                    started = time.perf_counter()
                    with dst.cursor() as cursor:
                        cursor.executemany(sql, chunk)
                    spent += time.perf_counter() - started
                    rows += len(chunk)
        started = time.perf_counter()
        dst.commit()
        spent += time.perf_counter() - started
    return spent, rows, rows


def _floor_insert(spec: dict[str, Any]) -> dict[str, Any]:
    rss_start = _rss_mb()
    source, target = spec["source_url"], spec["db_url"]
    if target.startswith("sqlite"):
        wall, rows, changes = _floor_insert_sqlite(
            source.removeprefix("sqlite:///"), target.removeprefix("sqlite:///")
        )
    else:
        wall, rows, changes = _floor_insert_pg(source, target)
    return {
        "wall_s": wall,
        "rss_start_mb": rss_start,
        "rows": rows,
        "sqlite_changes": changes if target.startswith("sqlite") else None,
    }


_KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sync": _sync,
    "floor_fetch": _floor_fetch,
    "floor_insert": _floor_insert,
}


def main(argv: list[str] | None = None) -> None:
    spec_path, result_path = sys.argv[1:3] if argv is None else argv
    spec = json.loads(Path(spec_path).read_text())
    result = _KINDS[spec["kind"]](spec)
    result["rss_peak_mb"] = _rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # whole process, start-up included
    Path(result_path).write_text(json.dumps(result))


def run_phase(
    spec: dict[str, Any], *, workdir: Path, command: list[str] | None = None
) -> dict[str, Any]:
    """Run one phase in a child process and return what it measured.

    ``command``: what to run instead of this module (the dlt peer, under its own Python);
    it is given the spec and result paths the same way.
    """
    spec_path = workdir / "phase-spec.json"
    result_path = workdir / "phase-result.json"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec))
    command = command or [sys.executable, "-m", "benchmarks.phase"]
    subprocess.run([*command, str(spec_path), str(result_path)], check=True)
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


if __name__ == "__main__":
    main()
