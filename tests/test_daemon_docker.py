"""The container files without a Docker engine: the compose file parses and holds together, and the
image's commands (ENTRYPOINT + CMD, the migrate service's command, the HEALTHCHECK) work as written
against SQLite, with configuration from an env file, a TOML file and a secrets directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from inventory.db import models
from inventory.db.engine import make_engine
from inventory.simulator import SimulatedCloudflare
from tests.support.container import ROOT, compose, dockerfile
from tests.support.daemon import free_port, inventory_command, wait_until


def test_the_compose_file_holds_together() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "migrate", "inventory"}
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    daemon = services["inventory"]
    assert daemon["command"] == dockerfile()["CMD"]
    assert daemon["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    for service in ("migrate", "inventory"):
        assert (ROOT / services[service]["env_file"]).is_file()
        assert services[service]["environment"]["INVENTORY_SECRETS_DIR"] == "/run/secrets"
        assert "inventory_database_url" in {s["source"] for s in services[service]["secrets"]}
        source = services[service]["volumes"][0].split(":")[0]
        assert (ROOT / source).is_file()
    used = {
        s if isinstance(s, str) else s["source"]
        for service in services.values()
        for s in service.get("secrets", [])
    }
    assert used == set(spec["secrets"])
    toml = (ROOT / "deploy" / "inventory.toml").read_text()
    assert 'api_token_file = "/run/secrets/cf_token"' in toml


def test_docker_compose_config_when_docker_compose_is_installed() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], check=False).returncode:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_is_small_and_runs_as_a_user() -> None:
    image = dockerfile()
    assert image["FROM"].startswith("python:3.11.")
    assert image["FROM"].endswith("-slim-bookworm")
    assert image["USER"] not in ("root", "0")
    assert image["WORKDIR"] == "/app"
    # The wheel carries the Alembic scripts: nothing but the built wheels is copied in.
    assert image["COPY"] == "--from=build /wheels /wheels"
    assert image["ENTRYPOINT"] == ["inventory"]
    assert image["HEALTHCHECK"] == ["python", "-m", "inventory.daemon.health"]


def as_here(argv: list[str]) -> list[str]:
    """An image command line run here: its `inventory` and `python` are this checkout's."""
    programs = {"inventory": inventory_command(), "python": [sys.executable]}
    return [*programs.get(argv[0], [argv[0]]), *argv[1:]]


@pytest.mark.slow
def test_the_image_commands_work_outside_docker(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path
) -> None:
    image, services = dockerfile(), compose()["services"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    database = tmp_path / "data" / "inventory.db"
    (secrets / "inventory_database_url").write_text(f"sqlite:///{database}\n")
    (secrets / "cf_token").write_text(sim.api_token + "\n")
    shipped = (ROOT / "deploy" / "inventory.toml").read_text()
    (tmp_path / "inventory.toml").write_text(
        shipped.replace("/run/secrets/cf_token", str(secrets / "cf_token")).replace(
            "023e105f4ecef8ad9ca31a8372d0c353", sim.account_ids[0]
        )
    )
    env_file = ROOT / services["inventory"]["env_file"]
    env = {"PATH": "/usr/bin:/bin", **image["ENV"]}
    for line in env_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    port = free_port()
    env.update(
        INVENTORY_SECRETS_DIR=str(secrets),
        INVENTORY_CONFIG=str(tmp_path / "inventory.toml"),
        INVENTORY_METRICS_ADDRESS=f"0.0.0.0:{port}",
        INVENTORY_API_BASE_URL=api_url,  # the only change: the simulator instead of Cloudflare
    )
    migrate = [*image["ENTRYPOINT"], *services["migrate"]["command"]]
    done = subprocess.run(as_here(migrate), cwd=tmp_path, env=env, check=False, timeout=60)
    assert done.returncode == 0
    health = as_here(image["HEALTHCHECK"])
    assert subprocess.run(health, env=env, check=False).returncode == 1  # nothing listens yet
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            as_here([*image["ENTRYPOINT"], *image["CMD"]]),
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: subprocess.run(health, env=env, check=False).returncode == 0)
            engine = make_engine(f"sqlite:///{database}")
            table = models.table_of(models.SyncRun)

            def synced() -> bool:
                with engine.connect() as conn:
                    return conn.execute(select(table.c.status)).scalars().all() == ["succeeded"]

            wait_until(synced)
            engine.dispose()
            daemon.send_signal(15)  # STOPSIGNAL SIGTERM
            assert daemon.wait(20) == 0, (tmp_path / "daemon.log").read_text()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    lines = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()]
    assert {line["event"] for line in lines} >= {"daemon started", "account synced", "stopped"}
    assert sim.api_token not in (tmp_path / "daemon.log").read_text()
