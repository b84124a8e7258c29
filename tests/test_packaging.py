"""Installed like any tool: the wheel carries its migrations and works from an empty directory.

The slow test builds the wheel from a copy of the files the image and an sdist use, installs it
into a fresh virtualenv (no package index: its dependencies are this environment's, pinned by
requirements/dev.lock, made visible through a ``.pth`` file), and runs it where no checkout is
near.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from inventory.cli.demo import activation_hint, invocation
from inventory.db.migrate import migrations_dir

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "inventory", "migrations")


def _clean_env(**extra: str) -> dict[str, str]:
    """No INVENTORY_* or CLOUDFLARE_* setting leaks in from the caller, nor a virtualenv."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INVENTORY_", "CLOUDFLARE_", "PYTHON", "VIRTUAL_ENV"))
    }
    keep["PATH"] = "/usr/bin:/bin"
    keep.update(extra)
    return keep


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name,
                source / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "--wheel-dir", str(wheels), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=_clean_env(PATH=os.environ["PATH"]),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("inventory-*.whl")
    return wheel


def fresh_virtualenv(where: Path, wheel: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # The dependencies: this environment's site-packages, after the new one's own. Only
    # directories are added (a .pth line is not a site dir), so this environment's editable
    # install of inventory is not: `import inventory` can only find the wheel.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "_inventory_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    return where / "bin"


@pytest.mark.slow  # builds the wheel
@pytest.mark.parallel
def test_the_wheel_lists_its_migrations_and_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for script in (ROOT / "migrations").rglob("*"):
        if script.is_file() and "__pycache__" not in script.parts:
            relative = script.relative_to(ROOT / "migrations").as_posix()
            assert f"inventory/_migrations/{relative}" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA")))
    text = metadata.decode()
    assert "License-Expression: MIT" in text
    assert "Classifier: Programming Language :: Python :: 3.11" in text
    assert "Requires-Python: >=3.11" in text
    assert "# inventory" in text  # the README is the long description
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("/entry_points.txt"))
    )
    assert "inventory = inventory.cli:main" in entry_points.decode()


@pytest.mark.slow
@pytest.mark.parallel
def test_the_installed_wheel_works_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    bin_dir = fresh_virtualenv(tmp_path / "venv", wheel)
    inventory = str(bin_dir / "inventory")
    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env()

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [inventory, *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    assert run("--version").stdout.strip() == "inventory 0.1.0"

    where = subprocess.run(
        [bin_dir / "python", "-c", "import inventory.db.migrate as m; print(m.migrations_dir())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where  # the wheel's copy, not ours

    assert "database upgraded from empty to" in run("db", "upgrade").stdout
    assert (work / "inventory.db").is_file()
    assert "up to date" in run("db", "current").stdout

    demo = run("demo", "--cycles", "2", timeout=240).stdout
    assert (work / "inventory-demo.db").is_file()
    assert "cycle 2" in demo
    # The closing hints are commands that work as printed, though the venv is not on PATH.
    printed = re.search(r"Or ask inventory: (.+ changes --since 1h)$", demo, re.MULTILINE)
    assert printed is not None, demo
    argv = shlex.split(printed.group(1))
    assert argv[0] == inventory
    asked = subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert asked.returncode == 0, asked.stderr
    assert "activate" in demo
    assert f"source {bin_dir / 'activate'}" in demo

    # With the venv's bin on PATH, the plain name is what works and what is printed.
    on_path = dict(env, PATH=f"{bin_dir}:{env['PATH']}")
    demo = subprocess.run(
        ["inventory", "demo", "--cycles", "1"],
        cwd=work,
        env=on_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    ).stdout
    assert "Or ask inventory: inventory --database-url" in demo


def test_the_checkout_finds_its_migrations_through_the_package() -> None:
    found = migrations_dir()
    assert found == (ROOT / "migrations").resolve()
    assert (ROOT / "inventory" / "_migrations").resolve() == found


def test_the_demo_prints_the_name_that_runs_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "inventory"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert invocation(str(program), path=str(bin_dir)) == "inventory"
    assert invocation(str(program), path="/nonexistent") == str(program)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "inventory").write_text("#!/bin/sh\n")
    (elsewhere / "inventory").chmod(0o755)
    # Another `inventory` first on PATH is not this one: the path is printed.
    assert invocation(str(program), path=f"{elsewhere}:{bin_dir}") == str(program)
    assert invocation("/usr/lib/python3/site-packages/inventory/__main__.py").endswith(
        " -m inventory"
    )


def test_the_activation_hint_only_for_an_inactive_virtualenv() -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtualenv")
    assert activation_hint({"VIRTUAL_ENV": sys.prefix}) == ""
    assert "source " in activation_hint({})
