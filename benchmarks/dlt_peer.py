"""The dlt peer: the same listings loaded with dlt's REST API source, merge / scd2.

Runs with the Python of a separate virtualenv that has dlt (``benchmarks/requirements-dlt.txt``);
it imports nothing of inventory, only the standard library and dlt, so the project's own
environment never needs dlt:

    .venv-dlt/bin/python benchmarks/dlt_peer.py SPEC.json RESULT.json

SPEC is the suite's phase spec (``api_url``, ``token``, ``accounts``, ``per_page``,
``max_concurrency``, ``db_url``, ``workdir``). Each account's two listings are two resources of
one source (``portals_<i>`` and ``servers_<i>``, loaded into the tables ``portals`` and
``servers`` with the account id added), paged with dlt's page-number paginator, which stops at
``result_info.total_pages`` exactly as the product does: the same requests, the same data.
Everything else is dlt's default behaviour, as a user of dlt would run it: nested lists become
child tables, nested objects become columns, and every run extracts, normalizes and loads the
whole listing into staging, then merges it as scd2 (rows no longer present are retired).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DATASET = "dlt_peer"


def _destination(db_url: str) -> Any:
    import dlt

    if db_url.startswith("sqlite"):
        return dlt.destinations.sqlalchemy(credentials=db_url)
    parts = urlsplit(db_url.replace("postgresql+psycopg://", "postgresql://", 1))
    if parts.password is None and parts.username:
        # dlt insists on a password; a server that trusts the connection never reads it
        netloc = f"{parts.username}:unused@{parts.netloc.split('@', 1)[1]}"
        parts = parts._replace(netloc=netloc)
    return dlt.destinations.postgres(credentials=urlunsplit(parts))


def _source(spec: dict[str, Any]) -> Any:
    import dlt
    from dlt.sources.rest_api import rest_api_resources

    resources: list[Any] = []
    for index, account_id in enumerate(spec["accounts"]):
        tag = _tagger(account_id)
        config: Any = {
            "client": {
                "base_url": f"{spec['api_url']}/accounts/{account_id}/access/ai-controls/mcp/",
                "auth": {"type": "bearer", "token": spec["token"]},
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": "result_info.total_pages",
                },
            },
            "resource_defaults": {
                "write_disposition": {"disposition": "merge", "strategy": "scd2"},
                "parallelized": True,
                "endpoint": {"params": {"per_page": spec["per_page"]}, "data_selector": "result"},
            },
            "resources": [
                {
                    "name": f"{name}_{index}",
                    "table_name": name,
                    "endpoint": {"path": name},
                    "processing_steps": [{"map": tag}],
                }
                for name in ("portals", "servers")
            ],
        }
        resources.extend(rest_api_resources(config))

    @dlt.source(name="cloudflare_mcp")
    def mcp() -> Any:
        return resources

    return mcp()


def _tagger(account_id: str) -> Any:
    """A map step adding the account id (one argument: dlt passes ``meta`` to a second one)."""

    def tag(item: dict[str, Any]) -> dict[str, Any]:
        item["account_id"] = account_id
        return item

    return tag


class _SqliteChanges:
    """Rows written on SQLite, as SQLite counts them: ``total_changes`` of every connection.

    The same counting as ``phase._WriteCounter``, repeated on purpose: this file runs under
    dlt's interpreter as a plain script, outside the project's package and environment.
    """

    def __init__(self) -> None:
        self.total = 0
        self._at_checkout: dict[int, int] = {}

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        event.listen(Pool, "checkout", self._checkout)
        event.listen(Pool, "checkin", self._checkin)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            self._at_checkout[id(dbapi_conn)] = dbapi_conn.total_changes

    def _checkin(self, dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            before = self._at_checkout.pop(id(dbapi_conn), dbapi_conn.total_changes)
            self.total += dbapi_conn.total_changes - before


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # nothing leaves this machine
    os.environ.setdefault("EXTRACT__WORKERS", str(spec["max_concurrency"]))
    import dlt

    sqlite = spec["db_url"].startswith("sqlite")
    changes = _SqliteChanges()
    if sqlite:
        # dlt's parallel load jobs on one SQLite file fail with "database is locked" and
        # retry; one load worker is how dlt is run on SQLite.
        os.environ.setdefault("LOAD__WORKERS", "1")
        changes.install()
    pipeline = dlt.pipeline(
        pipeline_name="inventory_peer",
        pipelines_dir=str(Path(spec["workdir"]) / "dlt-pipelines"),
        destination=_destination(spec["db_url"]),
        dataset_name=DATASET,
        progress="log" if spec.get("verbose") else None,
    )
    started = time.perf_counter()
    info = pipeline.run(_source(spec))
    wall = time.perf_counter() - started
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    normalize = trace.last_normalize_info if trace is not None else None
    row_counts = dict(normalize.row_counts) if normalize is not None else {}
    steps = {step.step: _seconds(step) for step in trace.steps} if trace is not None else {}
    return {
        "wall_s": wall,
        "steps_s": steps,
        "dlt_version": dlt.__version__,
        "normalized_rows": sum(n for t, n in row_counts.items() if not t.startswith("_dlt")),
        "normalized_by_table": row_counts,
        "sqlite_changes": changes.total if sqlite else None,
    }


def _seconds(step: Any) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return float((step.finished_at - step.started_at).total_seconds())


def main(argv: list[str] | None = None) -> None:
    spec_path, result_path = sys.argv[1:3] if argv is None else argv
    spec = json.loads(Path(spec_path).read_text())
    result = run(spec)
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # dlt may fork workers
    result["rss_peak_mb"] = max(own.ru_maxrss, children.ru_maxrss) / 1024
    result["cpu_s"] = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
