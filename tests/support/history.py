"""A four-cycle sync history for the reports tests (no tests here).

The history comes from the simulator over HTTP, four daily sync cycles with a clock that
starts each cycle at midnight: renames, a status flap, tool churn, a deleted-then-restored
portal, an override toggled twice, a rejected record and a revoked account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from inventory.daemon.service import open_client
from inventory.db.engine import make_engine
from inventory.db.tables import TABLES
from inventory.settings import Settings
from inventory.simulator import Fault, SimulatedCloudflare, serve_in_thread
from inventory.sync.outcome import AccountResult
from inventory.sync.syncer import Syncer
from tests.support.db import module_database
from tests.support.settings import settings_for

PORTAL, FLAPPING, TOOLED, OVERRIDDEN = (
    "portal-platform-1",
    "filesystem-1",
    "gdrive-3",
    "kubernetes-6",
)
GONE_PORTAL = "portal-legal-2"


def day(n: int, hour: int = 0, second: int = 0, *, month: int = 1) -> datetime:
    return datetime(2026, month, n, hour, 0, second, tzinfo=UTC)


class DayClock:
    """Cycle n runs on day n of ``month`` (2026) from midnight, one second per call: sequential
    syncs give account i of the cycle ``observed_at = day(n, second=3 + 3 * i)``."""

    def __init__(self, month: int = 1) -> None:
        self.month = month
        self.now = day(1, month=month)

    def start(self, n: int) -> None:
        self.now = day(n, month=self.month)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@contextmanager
def daily_cycles(
    engine: Engine, settings: Settings, *, month: int = 1
) -> Iterator[Callable[[int], list[AccountResult]]]:
    """``cycle(n)`` syncs every account once, one after the other, on day n from midnight."""
    clock = DayClock(month)
    with open_client(settings) as client:
        syncer = Syncer(engine=engine, client=client, clock=clock)

        def cycle(n: int) -> list[AccountResult]:
            clock.start(n)
            return syncer.sync_all(settings.accounts, max_concurrency=1)

        yield cycle


@dataclass
class History:
    a: str
    b: str
    c: str
    new_tool: str
    gone_tool: str
    toggled_tool: str
    portal_modified_by: str
    # kind, account_id, entity_key, content_hash of the current tables after each cycle
    seen: dict[int, set[tuple[str, str, str, str]]] = field(default_factory=dict)


def observed(n: int, account: int) -> datetime:
    return day(n, second=3 + 3 * account)


def _current(engine: Engine) -> set[tuple[str, str, str, str]]:
    rows: set[tuple[str, str, str, str]] = set()
    with engine.connect() as conn:
        for kind, spec in TABLES.items():
            cols = [spec.current.c[k] for k in spec.keys]
            query = select(spec.current.c.account_id, *cols, spec.current.c.content_hash)
            for r in conn.execute(query):
                rows.add((kind, r[0], "/".join(r[1:-1]), r[-1]))
    return rows


def build_history(engine: Engine, settings: Settings, sim: SimulatedCloudflare) -> History:
    a, b, c = sim.account_ids
    history = History(a, b, c, "", "", sim.tool_names(a, OVERRIDDEN)[0], "")
    with daily_cycles(engine, settings) as sync:

        def cycle(n: int) -> list[str]:
            results = sync(n)
            history.seen[n] = _current(engine)
            return [r.status for r in results]

        assert cycle(1) == ["succeeded"] * 3
        sim.rename_portal(a, PORTAL, "Platform (renamed)")
        sim.set_server_status(a, FLAPPING, "error", error="upstream returned 502")
        history.new_tool = sim.add_tool(a, TOOLED)
        history.gone_tool = sim.tool_names(a, TOOLED)[0]
        sim.remove_tool(a, TOOLED, history.gone_tool)
        sim.toggle_override(a, PORTAL, OVERRIDDEN, history.toggled_tool)
        history.portal_modified_by = next(
            p["modified_by"] for p in sim.portals(a) if p["id"] == PORTAL
        )
        sim.delete_portal(b, GONE_PORTAL)
        sim.faults.add(
            Fault(kind="invalid_record", violation="wrong_type", account_id=c, endpoint="servers")
        )
        assert cycle(2) == ["succeeded", "succeeded", "partial"]
        sim.faults.clear()
        sim.set_server_status(a, FLAPPING, "ready")
        sim.restore_portal(b, GONE_PORTAL)
        assert cycle(3) == ["succeeded"] * 3
        sim.set_server_status(a, FLAPPING, "error", error="timeout")
        sim.toggle_override(a, PORTAL, OVERRIDDEN, history.toggled_tool)
        sim.revoke(c)
        assert cycle(4) == ["succeeded", "succeeded", "failed"]
    return history


@contextmanager
def module_history_setup(
    kind: str, workdir: Path, sqlite_template: Path, sim: SimulatedCloudflare
) -> Iterator[tuple[str, Engine, Settings]]:
    """For a module-scoped history: its own database of ``kind``, an engine on it, and the
    settings of a sync from ``sim`` served over HTTP; all closed or dropped afterwards."""
    with ExitStack() as stack:
        url = stack.enter_context(module_database(kind, workdir, sqlite_template))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        api_url = stack.enter_context(serve_in_thread(sim))
        yield url, engine, settings_for(sim, api_url, url, cwd=workdir)
