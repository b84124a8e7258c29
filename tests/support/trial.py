"""One reliability trial: a simulator built by the test, served over HTTP, and a syncer into
the test's database; the fault suites (test_faults, test_listing_trust) run through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from inventory.settings import Settings
from inventory.simulator import SimulatedCloudflare
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.faultkit import content_state, fresh_state, sync_all, syncer_for
from tests.support.settings import settings_for

__all__ = ["OpenTrial", "Trial", "open_trial"]


@dataclass
class Trial:
    sim: SimulatedCloudflare
    api_url: str
    settings: Settings
    syncer: Syncer
    engine: Engine
    template: Path  # the migrated, empty SQLite database a fresh sync starts from
    workdir: Path

    def sync(self) -> list[AccountResult]:
        """Every account once (two at a time)."""
        return sync_all(self.syncer, self.settings)

    def sync_one(self) -> AccountResult:
        """The only account once."""
        (result,) = self.sync()
        return result

    def converged(self) -> bool:
        """The current tables are what a fresh sync of the simulator's present state gives."""
        return content_state(self.engine) == fresh_state(
            self.sim, self.api_url, self.template, self.workdir
        )


OpenTrial = Callable[..., AbstractContextManager[Trial]]  # the `trial` fixture (conftest.py)


@contextmanager
def open_trial(
    sim: SimulatedCloudflare,
    *,
    served: Callable[[SimulatedCloudflare], str],
    db_url: str,
    engine: Engine,
    template: Path,
    workdir: Path,
    **settings: Any,
) -> Iterator[Trial]:
    """``sim`` served; settings with ``page_size=2`` unless given (every listing is paged)."""
    api_url = served(sim)
    config = settings_for(sim, api_url, db_url, cwd=workdir, **{"page_size": 2, **settings})
    with syncer_for(engine, config) as syncer:
        yield Trial(sim, api_url, config, syncer, engine, template, workdir)
