"""``python -m benchmarks.confirmations [--workload S|L|tiny] [--deletions 1,3,10] [--json PATH]``

What trusting a listing costs, on SQLite, the simulator served in this process over real HTTP:

- the terminal request: without ``result_info`` a listing ends on an empty page (a short page is
  not the end), one more request per listing than with ``total_pages``; measured as requests and
  wall time of the initial sync and of a changed resync, with and without ``result_info``;
- deletion confirmation: a resync where something changed but nothing was deleted sends no
  detail request; with k deletions per account (k at most ``confirm_threshold``) it sends at
  most k + 1 per account (the candidates and one probe of a listed id).

The figures are printed as a Markdown table; ``docs/performance.md`` quotes them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.workloads import WORKLOADS
from inventory.cloudflare.client import CloudflareClient
from inventory.db.engine import make_engine
from inventory.db.migrate import upgrade
from inventory.settings import AccountConfig
from inventory.simulator import SimulatedCloudflare, serve_in_thread
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer

__all__ = ["main", "measure"]


def _sync(
    sim: SimulatedCloudflare, url: str, db_url: str
) -> tuple[list[AccountResult], float, int]:
    accounts = [
        AccountConfig.model_validate({"id": a, "api_token": sim.api_token}) for a in sim.account_ids
    ]
    engine = make_engine(db_url)
    sim.clear_requests()
    started = time.perf_counter()
    try:
        with CloudflareClient(base_url=url) as client:
            syncer = Syncer(engine=engine, client=client, per_page=100)
            results = syncer.sync_all(accounts, max_concurrency=4)
    finally:
        engine.dispose()
    return results, time.perf_counter() - started, len(sim.requests)


def _touch(sim: SimulatedCloudflare, round_: int) -> None:
    """Change one portal per account (no deletion), so the resync is not the unchanged one."""
    for account in sim.account_ids:
        sim.rename_portal(account, sim.portal_ids(account)[0], f"renamed {round_}")


def measure(workload: str, deletions: list[int], workdir: Path) -> dict[str, Any]:
    shape = WORKLOADS[workload].sim_kwargs()
    template = workdir / "template.db"
    engine = make_engine(f"sqlite:///{template}")
    upgrade(engine)
    engine.dispose()
    out: dict[str, Any] = {"workload": workload, "rows": []}
    for result_info in (True, False):
        sim = SimulatedCloudflare(**shape, result_info=result_info)
        path = workdir / f"ri-{result_info}.db"
        shutil.copyfile(template, path)
        db_url = f"sqlite:///{path}"
        with serve_in_thread(sim) as url:

            def row(
                phase: str,
                results: list[AccountResult],
                wall: float,
                requests: int,
                result_info: bool = result_info,
            ) -> None:
                out["rows"].append(
                    {
                        "result_info": result_info,
                        "phase": phase,
                        "statuses": sorted({r.status for r in results}),
                        "requests": requests,
                        "pages": sum(r.pages for r in results),
                        "confirmations": sum(r.confirmations for r in results),
                        "max_confirmations_per_account": max(r.confirmations for r in results),
                        "wall_s": round(wall, 3),
                    }
                )

            row("initial", *_sync(sim, url, db_url))
            row("unchanged resync", *_sync(sim, url, db_url))
            _touch(sim, 0)
            row("resync, 1 change per account, nothing deleted", *_sync(sim, url, db_url))
            for k in deletions:
                for account in sim.account_ids:
                    for portal in sim.portal_ids(account)[-k:]:
                        sim.delete_portal(account, portal)
                row(f"resync, {k} portal deletion(s) per account", *_sync(sim, url, db_url))
    return out


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"Workload {figures['workload']}, SQLite, page size 100, 4 accounts at once.",
        "",
        "| result_info | phase | statuses | requests | pages | confirmation requests "
        "(most for one account) | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in figures["rows"]:
        lines.append(
            f"| {'yes' if r['result_info'] else 'no'} | {r['phase']} | "
            f"{', '.join(r['statuses'])} | {r['requests']} | {r['pages']} | "
            f"{r['confirmations']} ({r['max_confirmations_per_account']}) | {r['wall_s']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.confirmations", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="S")
    parser.add_argument("--deletions", default="1,3,10", help="deletions per account, in turn")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    deletions = [int(k) for k in args.deletions.split(",") if k]
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args.workload, deletions, Path(tmp))
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
