"""Docs that cannot drift: every shell and SQL block in README.md and docs/*.md runs here.

A fenced ``sh``/``bash``/``console`` block runs in bash, in a scratch directory holding
``inventory-demo.db`` (migrated and filled by syncing the simulator twice), with the
``INVENTORY_*`` variables pointing at that database and the simulator, and the ``PG*`` variables
at a PostgreSQL database filled the same way. A ``sql`` block runs in the ``sqlite3`` shell and
in ``psql`` on those databases, its ``:name`` parameters set as the recipe in docs/reports.md
("Running the report SQL yourself") says. A block that cannot run here is marked on the line
before its fence::

    <!-- docs-test: skip (needs Docker) -->

and the marker must give a reason. Every other block must run and exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from inventory.simulator import SimulatedCloudflare
from tests.support.settings import settings_for

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"sh", "bash", "console", "shell", "sql"}
MARKER = re.compile(r"<!-- docs-test: skip \((?P<reason>[^)]+)\) -->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
# Parameters as in the recipe: sqlite3 `.parameter set`, psql `\set` (quotes inside the value).
SQLITE_PARAMS = {
    "since": "datetime('now', '-30 days')",
    "until": "datetime('now', '+1 day')",
    "as_of": "datetime('now')",
}
PSQL_PARAMS = {
    "since": "now() - interval ''30 days''",
    "until": "now() + interval ''1 day''",
    "as_of": "now()",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None  # the marker's reason

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found: list[Block] = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marker = MARKER.search(lines[i - 1]) if i else None
            found.append(
                Block(
                    path,
                    i + 1,
                    match["lang"],
                    "\n".join(lines[i + 1 : end]) + "\n",
                    marker["reason"].strip() if marker else None,
                )
            )
            i = end + 1
    return found


ALL = blocks()
RUNNABLE = [b for b in ALL if b.lang in RUN and b.skip is None]


def test_every_fence_names_its_language_and_every_marker_sits_on_a_block() -> None:
    untagged = [b.id for b in ALL if not b.lang]
    assert not untagged, f"a fence without a language hides a command from this test: {untagged}"
    for path in DOCS:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if line.lstrip().startswith("<!-- docs-test"):
                assert MARKER.fullmatch(line.strip()), f"{path.name}:{n + 1}: malformed marker"
                assert n + 1 < len(lines), f"{path.name}:{n + 1}: a marker ends the file"
                assert FENCE.match(lines[n + 1]), f"{path.name}:{n + 1}: not before a fence"
    for block in ALL:
        if block.skip is not None:
            assert block.lang in RUN, f"{block.id}: only runnable blocks need a skip marker"
            assert len(block.skip) >= 8, f"{block.id}: give a reason to skip"


def test_blocks_that_cannot_run_here_are_marked() -> None:
    """What this machine cannot do (Docker, systemd, an editor, real Cloudflare) is marked."""
    needs = re.compile(
        r"\b(docker|systemctl|journalctl|\$EDITOR|api\.cloudflare\.com|dev\.py|pipx|pip install)\b"
    )
    for block in ALL:
        if block.lang in RUN and needs.search(block.text):
            assert block.skip is not None, f"{block.id} cannot run here: mark it with a reason"


def test_the_reliability_page_lists_only_xfails_the_tests_still_mark() -> None:
    """A "known bug" row names a test that is still a strict xfail, and the other way round."""
    page = (ROOT / "docs" / "reliability.md").read_text()
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("*.py"))
    for row in page.splitlines():
        if re.search(r"known bug|xfail|\*\*gap\*\*", row, re.IGNORECASE):
            for name in re.findall(r"(test_\w+)", row):
                assert re.search(rf"xfail[^\n]*\n(?:[^\n]*\n){{0,3}}def {name}\b", sources) or (
                    re.search(rf"XFAIL[^\n]*{name}", sources)
                ), f"docs/reliability.md calls {name} a known bug, but no test marks it xfail"


# --- running them ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scratch:
    cwd: Path
    env: dict[str, str]
    sqlite_db: Path
    pg_url: str


def _fill(sim: SimulatedCloudflare, api_url: str, db_url: str, cwd: Path) -> None:
    from inventory.daemon.service import run_sync
    from inventory.db.engine import make_engine
    from inventory.db.migrate import upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    settings = settings_for(sim, api_url, db_url, cwd=cwd)
    for _ in range(2):
        assert all(r.ok for r in run_sync(settings, settings.accounts))
        sim.advance(3)


@pytest.fixture
def scratch(
    tmp_path: Path, sim: SimulatedCloudflare, api_url: str, pg_database: str | None
) -> Scratch:
    if pg_database is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    for tool in ("sqlite3", "psql", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    from sqlalchemy import text

    from inventory.db.engine import make_engine
    from inventory.db.models import Base

    cwd = tmp_path / "work"
    cwd.mkdir()
    sqlite_db = cwd / "inventory-demo.db"
    _fill(sim, api_url, f"sqlite:///{sqlite_db}", cwd)
    engine = make_engine(pg_database)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    _fill(sim, api_url, pg_database, cwd)
    from sqlalchemy.engine import make_url

    pg = make_url(pg_database)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "PG"))}
    env = {
        **base,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
        "INVENTORY_DATABASE_URL": f"sqlite:///{sqlite_db}",
        "INVENTORY_API_BASE_URL": api_url,
        "INVENTORY_ACCOUNTS": json.dumps(
            [{"id": a, "api_token": sim.api_token} for a in sim.account_ids]
        ),
        "INVENTORY_LOG_FORMAT": "json",
        "PGHOST": pg.host or "127.0.0.1",
        "PGPORT": str(pg.port or 5432),
        "PGUSER": pg.username or "postgres",
        "PGDATABASE": pg.database or "",
        "PGTZ": "UTC",
    }
    return Scratch(cwd, env, sqlite_db, pg_database)


def _run(args: list[str], scratch: Scratch, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        input=stdin,
        cwd=scratch.cwd,
        env=scratch.env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def _parameters(sql: str) -> list[str]:
    without_strings = re.sub(r"'[^']*'", "''", sql)
    return sorted(set(re.findall(r"(?<![:\w]):([a-z_]+)\b", without_strings)))


def _as_sqlite(sql: str) -> str:
    sets = [
        f'.parameter set :{name} "{SQLITE_PARAMS.get(name, "NULL")}"' for name in _parameters(sql)
    ]
    return "\n".join([*sets, sql.rstrip().rstrip(";") + ";", ""])


def _as_psql(sql: str) -> str:
    sets = [f"\\set {name} '{PSQL_PARAMS.get(name, 'NULL')}'" for name in _parameters(sql)]
    return "\n".join(["SET timezone = 'UTC';", *sets, sql.rstrip().rstrip(";") + ";", ""])


def _console_commands(text: str) -> str:
    """A console block's commands: the lines after ``$ ``; the rest is output."""
    return "\n".join(line[2:] for line in text.splitlines() if line.startswith("$ ")) + "\n"


@pytest.mark.slow
@pytest.mark.parallel
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_the_block_runs(block: Block, scratch: Scratch) -> None:
    if block.lang == "sql":
        on_sqlite = _run(
            ["sqlite3", "-bail", str(scratch.sqlite_db)], scratch, _as_sqlite(block.text)
        )
        assert on_sqlite.returncode == 0, on_sqlite.stderr
        assert not on_sqlite.stderr
        on_pg = _run(
            ["psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1"],
            scratch,
            _as_psql(block.text),
        )
        assert on_pg.returncode == 0, on_pg.stderr
        assert "ERROR" not in on_pg.stderr
        return
    script = _console_commands(block.text) if block.lang == "console" else block.text
    done = _run(["bash", "-euo", "pipefail"], scratch, script)
    assert done.returncode == 0, f"{block.id}\n{script}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    if "<<'SQL'" in block.text:  # a recipe: the parameters worked, so rows came back
        assert "server" in done.stdout, done.stdout
