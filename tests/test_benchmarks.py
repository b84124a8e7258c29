"""The benchmark code path on a tiny workload, so ``python -m benchmarks`` cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import replicas_budget
from benchmarks.__main__ import main
from benchmarks.report import evaluate, render, replicas_targets
from benchmarks.suite import run_replicas_budget
from benchmarks.workloads import WORKLOADS


@pytest.mark.slow
@pytest.mark.parallel
def test_tiny_workload_measures_every_phase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "figures.json"
    assert main(["--workload", "tiny", "--db", "sqlite", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    tiny = WORKLOADS["tiny"]
    phases = out["dbs"]["sqlite"]
    assert set(phases) == {"initial", "floor_b", "initial_few", "unchanged", "churn", "observed"}
    # Counted by SQLite itself: the rows the raw floor re-inserts, plus the run row's update
    # and the account row's two updates (the run opens, the run finishes) per account (the
    # floor copies only their final state).
    assert (
        phases["initial"]["rows_written"] == phases["floor_b"]["rows_written"] + 3 * tiny.accounts
    )
    assert phases["initial"]["requests"] == out["min_requests"]
    assert out["floor_a"]["requests"] == out["min_requests"]
    assert phases["unchanged"]["entity_rows"] == 0
    assert 0 < phases["unchanged"]["rows_written"] <= 5 * tiny.accounts
    assert out["churned"] > 0
    assert phases["churn"]["entity_rows"] >= 3 * out["churned"]
    # Cloudflare moved last_synced on every server: each one observed, no version written
    assert out["resynced"] > 0
    assert phases["observed"]["observed"] == out["resynced"]
    assert not any(phases["observed"]["changes"].values())
    assert phases["observed"]["entity_rows"] <= 2 * out["resynced"]
    assert all(r["rss_peak_mb"] > 0 and r["wall_s"] > 0 for r in phases.values())
    assert out["limiter"]["statuses"] == {"succeeded": tiny.limiter.syncs * tiny.limiter.accounts}
    assert {t["target"] for t in out["targets"]} >= {
        "initial / (floor a + floor b)",
        "unchanged: entity + history rows",
        "limiter: 429 responses",
    }
    printed = capsys.readouterr().out
    assert "| initial sync (empty database) |" in printed
    assert "dlt peer" not in printed

    # The peer's figures, as a run with --with-dlt records them, render with their ratios.
    ours = {k: phases[k] for k in ("initial", "unchanged", "churn")}
    dlt = {k: {**v, "wall_s": v["wall_s"] * 10, "rows_written": 999} for k, v in ours.items()}
    out["peer"] = {"accounts": 1, "dbs": {"sqlite": {"ours": ours, "dlt": dlt}}}
    targets = evaluate(out)
    peer = [t for t in targets if t["target"].startswith("peer:")]
    assert [(t["value"], t["met"]) for t in peer] == [(10.0, True), (10.0, True)]
    table = render(out, targets)
    assert "| SQLite | unchanged |" in table
    assert "| 10.0 |" in table


@pytest.mark.parametrize("python", ["sys.executable", "missing"])
def test_with_dlt_refuses_a_python_without_dlt(
    python: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The project's own environment never has dlt (it is installed only for the comparison).
    path = sys.executable if python == "sys.executable" else str(tmp_path / "no-python")
    assert main(["--workload", "tiny", "--db", "sqlite", "--with-dlt", path]) == 2
    err = capsys.readouterr().err
    assert "--with-dlt" in err
    assert "requirements-dlt.txt" in err or "cannot run it" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_replicas_phase_shares_one_budget(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL is not reachable")
    figures = run_replicas_budget("tiny")
    case = WORKLOADS["tiny"].limiter
    assert [(r["requests"], r["429"]) for r in figures["rows"]] == [(2 * case.accounts, 0)] * 2
    assert all(r["densest_window"] <= case.requests for r in figures["rows"])
    targets = replicas_targets(figures)
    assert len(targets) == 4
    assert all(t["met"] for t in targets)
    assert "| 1 | 8 | 0 | 8 |" in replicas_budget.render(figures)
