"""``python -m benchmarks [--workload S|M|L] [--db sqlite|postgresql|both] [--json PATH]
[--with-dlt PYTHON [--dlt-accounts N]]``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.databases import pg_available
from benchmarks.peer import Peer
from benchmarks.report import evaluate, merge, render
from benchmarks.suite import run_suite
from benchmarks.workloads import WORKLOADS


def dlt_problem(python: Path) -> str | None:
    """Why ``python`` cannot run the dlt peer, or None."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import dlt, dlt.sources.rest_api; print(dlt.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except OSError as exc:
        return f"cannot run it ({exc.strerror})"
    if done.returncode != 0:
        return (
            "dlt is not importable there; install it with "
            f"`{python} -m pip install -r benchmarks/requirements-dlt.txt`"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="S")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--concurrency", type=int, default=4, help="accounts synced at once")
    parser.add_argument(
        "--with-dlt",
        type=Path,
        metavar="PYTHON",
        help="also run the dlt peer comparison with this Python (a virtualenv that has "
        "benchmarks/requirements-dlt.txt installed)",
    )
    parser.add_argument(
        "--dlt-accounts",
        type=int,
        metavar="N",
        help="accounts in the dlt comparison (default: the workload's fewer-accounts count)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the table of earlier runs (their databases side by side) instead of running",
    )
    args = parser.parse_args(argv)
    if args.render:
        out = merge([json.loads(path.read_text()) for path in args.render])
        print(render(out, evaluate(out)))
        return 0
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in dbs and not pg_available():
        if args.db == "postgresql":
            print("PostgreSQL is not reachable (INVENTORY_BENCH_PG_URL)", file=sys.stderr)
            return 2
        print("PostgreSQL is not reachable: SQLite only")
        dbs = ["sqlite"]
    workload = WORKLOADS[args.workload]
    peer = None
    if args.with_dlt is not None:
        problem = dlt_problem(args.with_dlt)
        if problem:
            print(f"--with-dlt {args.with_dlt}: {problem}", file=sys.stderr)
            return 2
        peer = Peer(args.with_dlt, args.dlt_accounts or workload.small_accounts)
    out = run_suite(workload, dbs, concurrency=args.concurrency, peer=peer)
    targets = evaluate(out)
    out["targets"] = targets
    print()
    print(render(out, targets))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
