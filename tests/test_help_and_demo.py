"""What ``--help`` and the demo tell a new user is true: no ``<bool>`` on flags, right names."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer

from inventory.cli import app, demo
from tests.support.cli import run

README = Path(__file__).parent.parent / "README.md"


def every_command() -> list[list[str]]:
    group = typer.main.get_command(app)
    found: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        # typer carries its own click: a group is what has sub-commands
        for name, sub in getattr(command, "commands", {}).items():
            found.append([*path, name])
            walk(sub, [*path, name])

    walk(group, [])
    return found


@pytest.mark.parametrize("path", every_command(), ids=lambda p: " ".join(p) or "inventory")
def test_help_shows_no_value_on_flags(path: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert re.search(r"--help\s+Show this message", result.output)
    if path[:1] in (["changes"], ["sync"]):
        assert re.search(r"--json\s+Print", result.output)


def test_demo_help_names_the_file_the_demo_writes() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["demo", "--help"])
    assert demo.DEFAULT_DB in "".join(result.output.split())


def test_demo_points_to_a_readme_section_that_exists(tmp_path: Path) -> None:
    headings = re.findall(r"^#+ (.+)$", README.read_text(), re.MULTILINE)
    assert demo.README_SECTION in headings
    result = run(["demo", "--cycles", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"'{demo.README_SECTION}'" in result.stdout
    database = tmp_path / demo.DEFAULT_DB
    with sqlite3.connect(database) as conn:  # the queries it suggests work on what it wrote
        for query in demo.EXPLORE_SQL:
            assert conn.execute(query).fetchall(), query
