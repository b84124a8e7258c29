"""``python -m benchmarks [--workload S|L] [--db sqlite|postgresql|both] [--json PATH]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.databases import pg_available
from benchmarks.report import evaluate, merge, render
from benchmarks.suite import run_suite
from benchmarks.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="S")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--concurrency", type=int, default=4, help="accounts synced at once")
    parser.add_argument(
        "--with-dlt", action="store_true", help="the dlt peer comparison (not implemented)"
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
    if args.with_dlt:
        print(
            "dlt peer comparison: skipped — not implemented in this suite (dlt is not a "
            "project dependency; see docs/performance.md)"
        )
    out = run_suite(WORKLOADS[args.workload], dbs, concurrency=args.concurrency)
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
