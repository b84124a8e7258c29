"""`dev.py` and `.ci/run`: CI runs the README's test command, and the checks it runs side by side
still fail the run when one of them fails."""

from __future__ import annotations

import re
import runpy
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") :]
    command = re.search(r"^(python3 dev\.py test)\b", quick_start, re.MULTILINE)
    assert command is not None, "the README's quick start names no test command"
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert lines[-1] == f"exec {command[1]}"


def _fake_tools(bin_dir: Path, failing: str) -> None:
    """ruff, mypy, lint-imports and alembic that print what they were asked; ``failing`` exits 3."""
    bin_dir.mkdir()
    for tool in ("ruff", "mypy", "lint-imports", "alembic"):
        path = bin_dir / tool
        code = 3 if tool == failing else 0
        path.write_text(f'#!/bin/sh\necho "{tool} ran: $*"\nexit {code}\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _checks(bin_dir: Path) -> None:
    dev = runpy.run_path(str(ROOT / "dev.py"), run_name="dev_under_test")
    dev["checks"].__globals__["BIN"] = bin_dir
    dev["checks"]()


def test_the_checks_all_run_and_print_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_tools(tmp_path / "bin", failing="")
    _checks(tmp_path / "bin")
    ran = [
        line.split(" ran:")[0] for line in capsys.readouterr().out.splitlines() if " ran:" in line
    ]
    assert ran == ["ruff", "ruff", "mypy", "lint-imports", "alembic", "alembic"]


def test_a_failing_check_fails_the_run_with_its_code_after_the_others_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_tools(tmp_path / "bin", failing="mypy")
    with pytest.raises(SystemExit) as exited:
        _checks(tmp_path / "bin")
    assert exited.value.code == 3
    out = capsys.readouterr().out
    assert "mypy ran: inventory migrations tests benchmarks scripts" in out
    assert "lint-imports ran" in out
    assert "alembic ran" in out
    assert out.index("lint-imports ran") < out.index("alembic ran")
