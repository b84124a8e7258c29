"""The dlt peer comparison: the same accounts, the same simulator state, the same run.

For each database: our sync and dlt's REST API source (merge / scd2, ``dlt_peer.py`` under the
Python of a separate virtualenv that has dlt) each load the first ``accounts`` accounts into
a database of their own, then resync them unchanged, then (after the suite's churn) resync
them again. Both are measured like every other phase: own process, rows counted by the
database, requests counted by the simulator, peak RSS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.suite import _Run

__all__ = ["DLT_SCRIPT", "Peer"]

DLT_SCRIPT = Path(__file__).resolve().parent / "dlt_peer.py"
PHASES = ("initial", "unchanged", "churn")


@dataclass
class Peer:
    python: Path  # the dlt virtualenv's interpreter
    accounts: int
    figures: dict[str, Any] = field(default_factory=dict)
    _urls: dict[tuple[str, str], str] = field(default_factory=dict)

    def _phase(self, run: _Run, db: str, phase: str, accounts: list[str]) -> None:
        n = len(accounts)
        ours = run.measure(
            f"[{db}] ours, {n} accounts: {phase}",
            run.spec("sync", db_url=self._urls[db, "ours"], accounts=accounts),
        )
        spec = run.spec(
            "dlt",
            db_url=self._urls[db, "dlt"],
            accounts=accounts,
            workdir=str(run.databases.tmp / f"dlt-{db}"),
        )
        dlt = run.measure(
            f"[{db}] dlt,  {n} accounts: {phase}",
            spec,
            command=[str(self.python), str(DLT_SCRIPT)],
        )
        self.figures["dbs"][db]["ours"][phase] = ours
        self.figures["dbs"][db]["dlt"][phase] = dlt

    def before_churn(self, run: _Run, dbs: list[str]) -> None:
        """The initial load and the unchanged resync, on each side."""
        accounts = run.sim.accounts[: self.accounts]
        self.figures = {
            "accounts": len(accounts),
            "python": str(self.python),
            "dbs": {db: {"ours": {}, "dlt": {}} for db in dbs},
        }
        run.log(f"dlt peer: {len(accounts)} accounts, {self.python}")
        for db in dbs:
            self._urls[db, "ours"] = run.databases.fresh(db, "peer_ours")
            self._urls[db, "dlt"] = run.databases.fresh(db, "peer_dlt", migrated=False)
            (run.databases.tmp / f"dlt-{db}").mkdir(exist_ok=True)
            for phase in PHASES[:2]:
                self._phase(run, db, phase, accounts)

    def after_churn(self, run: _Run, dbs: list[str]) -> None:
        accounts = run.sim.accounts[: self.accounts]
        for db in dbs:
            self._phase(run, db, "churn", accounts)
            self.figures["dbs"][db]["dlt_version"] = self.figures["dbs"][db]["dlt"]["churn"].get(
                "dlt_version"
            )
