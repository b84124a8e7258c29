"""The confirmation benchmark's promises on a tiny workload (its figures: docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.confirmations import measure, render
from benchmarks.workloads import WORKLOADS


def test_confirmations_cost_nothing_without_deletions_and_k_plus_one_with(tmp_path: Path) -> None:
    figures = measure("tiny", [1, 2], tmp_path)
    accounts = WORKLOADS["tiny"].accounts
    rows = {(r["result_info"], r["phase"]): r for r in figures["rows"]}
    assert {s for r in figures["rows"] for s in r["statuses"]} == {"succeeded"}
    for result_info in (True, False):
        for phase in (
            "initial",
            "unchanged resync",
            "resync, 1 change per account, nothing deleted",
        ):
            assert rows[(result_info, phase)]["confirmations"] == 0
        for k in (1, 2):
            row = rows[(result_info, f"resync, {k} portal deletion(s) per account")]
            assert row["max_confirmations_per_account"] <= k + 1
            assert row["confirmations"] <= accounts * (k + 1)
    # Without result_info each of an account's two listings ends on one more, empty, page.
    extra = rows[(False, "initial")]["requests"] - rows[(True, "initial")]["requests"]
    assert extra == 2 * accounts
    assert "| no | unchanged resync |" in render(figures)
