"""kill -9 of `inventory sync` and `inventory run` at seeded random moments, on both databases.

Afterwards every account's data is exactly what some completed sync produced, runs left
``running`` are closed as ``abandoned`` by the next start, and the next sync converges (all
checked inside ``crash_trial``). This is a short seeded subset of three trials per database;
``python scripts/crash_trials.py`` runs the full count (24 per database by default).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.faultkit import crash_trial, truncate_all

SEEDS = (1, 2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sync", "run"])
def test_kill_9_mid_sync_leaves_a_completed_state(
    db_url: str, engine: Engine, sqlite_template: Path, tmp_path: Path, command: str
) -> None:
    outcomes = []
    for seed in SEEDS:
        truncate_all(engine)
        trial = tmp_path / f"trial-{seed}"
        trial.mkdir()
        outcomes.append(crash_trial(seed, db_url, sqlite_template, trial, command=command))
    for outcome in outcomes:
        assert set(outcome.states.values()) <= {"before", "after"}
        assert outcome.abandoned >= outcome.left_running
    # a suite whose kills all land before or after the sync would prove nothing
    assert any(o.exit_code == -9 and o.left_running for o in outcomes), outcomes
