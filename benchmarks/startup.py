"""``python -m benchmarks.startup [--runs N]``: how long the CLI takes to start.

Each command runs ``--runs`` times as a fresh process with the same interpreter and flags as a
bare ``python -c pass``; the figures are the fastest and the median wall time, and the overhead
is the fastest minus the bare interpreter's fastest (what inventory itself costs: other load on
the machine only ever adds to a run, so the fastest run is the least disturbed one). The target
is an overhead under 0.2 s for ``inventory --help`` and ``inventory config check``
(docs/performance.md). It also
lists the heaviest imports of each command (``python -X importtime``), which is where a
regression shows first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.2
ACCOUNTS = json.dumps([{"id": "0" * 32, "api_token": "startup-benchmark-token-0123456789"}])
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "inventory --help": ["-m", "inventory", "--help"],
    "inventory config check": ["-m", "inventory", "config", "check"],
    "inventory changes --help": ["-m", "inventory", "changes", "--help"],
    # The floor under `config check`: the libraries it prints with, before any of our code.
    "its libraries alone": [
        "-c",
        "import pydantic_settings, typer, typer._adapters, rich.console, rich.table",
    ],
    # The floor under any `config check` built on the settings library the user chose.
    "pydantic-settings alone": ["-c", "import pydantic_settings"],
}


def _env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_", "CLOUDFLARE_"))}
    env.update(
        INVENTORY_ACCOUNTS=ACCOUNTS,
        INVENTORY_DATABASE_URL=f"sqlite:///{cwd / 'inventory.db'}",
        INVENTORY_SECRETS_DIR=str(cwd),
    )
    return env


def _once(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(cwd), capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{args} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def heaviest_imports(args: list[str], cwd: Path, top: int = 6) -> list[tuple[str, float]]:
    """The top-level imports with the largest cumulative time, in milliseconds."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        env=_env(cwd),
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and len(match[2]) <= 2:  # imported by the command, not by another module
            found[match[3]] = max(found.get(match[3], 0.0), int(match[1]) / 1000)
    return sorted(found.items(), key=lambda item: -item[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        fastest: dict[str, float] = {}
        medians: dict[str, float] = {}
        for name, args in COMMANDS.items():
            _once(args, cwd)  # warm the file cache
            times = [_once(args, cwd) for _ in range(options.runs)]
            fastest[name], medians[name] = min(times), statistics.median(times)
        bare = fastest["python -c pass"]
        print(f"start-up over {options.runs} runs ({sys.executable}, {os.cpu_count()} CPUs)")
        print(f"{'command':<28}{'fastest s':>10}{'median s':>10}{'overhead s':>12}")
        for name in COMMANDS:
            print(
                f"{name:<28}{fastest[name]:>10.3f}{medians[name]:>10.3f}"
                f"{fastest[name] - bare:>12.3f}"
            )
        print()
        for name in ("inventory --help", "inventory config check"):
            heavy = ", ".join(f"{m} {ms:.0f} ms" for m, ms in heaviest_imports(COMMANDS[name], cwd))
            print(f"heaviest imports of {name}: {heavy}")
        worst = max(fastest["inventory --help"], fastest["inventory config check"]) - bare
        verdict = "met" if worst < TARGET_S else "MISSED"
        print(f"\ntarget: overhead under {TARGET_S} s: {verdict} (worst {worst:.3f} s)")
        floor = fastest["pydantic-settings alone"] - bare
        if floor >= TARGET_S:
            print(
                f"on this machine `import pydantic_settings` alone is {floor:.3f} s over the bare"
                " interpreter: no `config check` that validates with it can meet the target here"
            )
        return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
