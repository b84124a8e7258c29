#!/usr/bin/env python3
"""Set everything up, then run the demo or the whole test suite. Needs only Python >= 3.11.

python3 dev.py demo      # virtualenv + install + `inventory demo`
python3 dev.py test      # virtualenv + install + every check CI runs (pytest args may follow)
python3 dev.py test --fast  # the same checks, then the tests not marked slow (both DBs, xdist)
python3 dev.py mutate    # mutation testing of the pure core against its fast tests
python3 dev.py bench     # virtualenv + install + the benchmarks (see benchmarks/README.md)
python3 dev.py lock      # re-resolve requirements/*.lock (pip-compile, hashes); `lock --upgrade`
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"inventory needs Python >= 3.11, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # requirements/dev.lock pins every package, with its hashes, to the versions CI passes with;
    # the project itself is then installed over them, editable, without its dependencies.
    inputs = (ROOT / "pyproject.toml").read_bytes() + (ROOT / DEV_LOCK).read_bytes()
    wanted = hashlib.sha256(inputs).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        run(
            BIN / "python", "-m", "pip", "install", "--quiet", "--require-hashes",
            "-r", DEV_LOCK,
        )  # fmt: skip
        run(
            BIN / "python", "-m", "pip", "install", "--quiet",
            "--no-deps", "--no-build-isolation", "-e", ".",
        )  # fmt: skip
        STAMP.write_text(wanted)


# One source of pins: pip-compile resolves pyproject.toml into these, with every file's hash.
# dev.py and CI install dev.lock; the image installs runtime.lock (and build.lock to build).
DEV_LOCK = "requirements/dev.lock"
LOCKS = (
    ("requirements/runtime.lock", ["pyproject.toml"]),
    (DEV_LOCK, ["--extra", "dev", "pyproject.toml"]),
    ("requirements/build.lock", ["requirements/build.in"]),
)


def lock(args: list[str]) -> None:
    env = dict(os.environ, CUSTOM_COMPILE_COMMAND="python3 dev.py lock")
    env.pop("PIP_CONSTRAINT", None)
    for output, sources in LOCKS:
        run(
            BIN / "pip-compile", "--quiet", "--generate-hashes", "--allow-unsafe",
            "--strip-extras", "--no-emit-index-url", "--no-emit-find-links",
            *args, "-o", output, *sources, env=env,
        )  # fmt: skip


def checks() -> None:
    """ruff, ruff format, mypy, import-linter and Alembic's check, side by side: they are
    independent, and one after the other they took 7 of the fast loop's seconds."""
    env = dict(os.environ)
    env.pop("INVENTORY_DATABASE_URL", None)
    scratch = ROOT / ".alembic-check.db"
    alembic = [str(BIN / "alembic"), "-x", f"url=sqlite:///{scratch}"]
    chains = [
        [[str(BIN / "ruff"), "check", "."], [str(BIN / "ruff"), "format", "--check", "."]],
        [[str(BIN / "mypy"), "inventory", "migrations", "tests", "benchmarks", "scripts"]],
        [[str(BIN / "lint-imports")]],
        # on a scratch SQLite file; PostgreSQL is checked by tests/test_migrations.py
        [[*alembic, "upgrade", "head"], [*alembic, "check"]],
    ]

    def chain(commands: list[list[str]]) -> tuple[int, str]:
        output = ""
        for command in commands:
            output += "+ " + " ".join(command) + "\n"
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
            )
            output += done.stdout + done.stderr
            if done.returncode != 0:
                return done.returncode, output
        return 0, output

    scratch.unlink(missing_ok=True)
    try:
        with ThreadPoolExecutor(len(chains)) as pool:
            results = list(pool.map(chain, chains))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    for _, output in results:
        print(output, end="", flush=True)
    failed = [code for code, _ in results if code != 0]
    if failed:
        sys.exit(failed[0])


def test(pytest_args: list[str]) -> None:
    # pytest-xdist workers, each with its own databases (tests/conftest.py): one more than the
    # cores, as tests also wait (on the database, on the simulator's thread)
    workers = ["-n", str((os.cpu_count() or 1) + 1)]
    # Everything (CI): the tests not marked slow, and the slow ones marked `parallel` (they need
    # no machine of their own), in parallel; then the other slow ones one at a time, as their
    # timings (replicas sharing a budget, deadlines, daemons) assume a machine of their own.
    # With arguments, pytest runs once, as they say.
    passes = [
        ["-m", "not slow or parallel", *workers],
        ["-m", "slow and not parallel"],
    ]
    if pytest_args:
        passes = [pytest_args]
    if "--fast" in pytest_args:
        pytest_args = [a for a in pytest_args if a != "--fast"]
        chosen = any(a.startswith(("-n", "--numprocesses")) for a in pytest_args)
        passes = [["-m", "not slow", *([] if chosen else workers), *pytest_args]]
    checks()
    # Bytecode caches on (they are gitignored), whatever the shell says: without them every
    # pytest-xdist worker rewrites and compiles each test module again, and every `inventory`
    # process a test starts compiles the package again.
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for args in passes:
        run(BIN / "pytest", *args, env=cached)


def mutate(args: list[str]) -> None:
    """mutmut over [tool.mutmut] in pyproject.toml; results stay in mutants/ between runs."""
    workers = str(max(2, os.cpu_count() or 2))
    if "--fresh" in args:  # forget earlier results (they are reused while the code is the same)
        args = [a for a in args if a != "--fresh"]
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    run(BIN / "mutmut", "run", "--max-children", workers, *args, env=env)
    result = subprocess.run(
        [str(BIN / "mutmut"), "results"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    survivors = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    print("\n".join(survivors) or "no surviving mutants", flush=True)
    print(f"{len(survivors)} surviving; `.venv/bin/mutmut show NAME` shows one", flush=True)


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command not in ("demo", "test", "bench", "mutate", "lock"):
        sys.exit(__doc__)
    setup()
    if command == "demo":
        run(BIN / "inventory", "demo", *rest)
    elif command == "test":
        test(rest)
    elif command == "mutate":
        mutate(rest)
    elif command == "lock":
        lock(rest)
    else:
        run(BIN / "python", "-m", "benchmarks", *rest)


if __name__ == "__main__":
    main()
