"""The deployment files as an operator takes them: lock files, image, Compose, systemd,
Kubernetes, the Grafana dashboard and the Prometheus rules, and the metrics they rely on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from inventory.settings import Settings, load_settings
from inventory.simulator import SimulatedCloudflare
from tests.support.container import compose, dockerfile
from tests.support.daemon import daemon_env, running, wait_until

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
yaml = pytest.importorskip("yaml")

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
METRIC = re.compile(r"\binventory_[a-z_]+\b")
DURATION = re.compile(r"^\d+[smhdwy]$")


# --- one source of pins ------------------------------------------------------------------------


def lock(name: str) -> dict[str, str]:
    """``requirements/<name>.lock`` as {canonical name: version}; every pin carries hashes."""
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if match is None:
            assert block.lstrip().startswith("#") or not block.strip(), block
            continue
        assert "--hash=sha256:" in block, f"{match.group(1)} has no hash in {name}.lock"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_files_pin_everything_with_hashes() -> None:
    runtime, dev, build = lock("runtime"), lock("dev"), lock("build")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for spec in project["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in runtime, f"{name} is not in runtime.lock"
        assert requirement.specifier.contains(runtime[name]), (name, runtime[name])
    for spec in project["project"]["optional-dependencies"]["dev"]:
        assert canonicalize_name(Requirement(spec).name) in dev
    # The runtime pins are the ones the tests run with.
    assert {name: dev[name] for name in runtime} == runtime
    (backend,) = project["build-system"]["requires"]
    assert Requirement(backend).specifier.contains(build["setuptools"])
    # dev.py installed this very environment from dev.lock.
    for package, pinned in dev.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            pytest.fail(f"{package}=={pinned} from dev.lock is not installed: run dev.py")
        assert installed == pinned, f"{package}: installed {installed}, dev.lock pins {pinned}"
    assert not (ROOT / "constraints.txt").exists()


def test_the_image_installs_the_locked_dependencies_then_the_wheel() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) == 2
    assert len(set(bases)) == 1, "both stages on the same base image"
    # An exact Python release and Debian release, not a moving tag like 3.11-slim.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", bases[0])
    assert "pip install --no-cache-dir --require-hashes -r requirements/build.lock" in text
    assert "pip install --no-cache-dir --require-hashes -r /tmp/runtime.lock" in text
    assert "pip install --no-cache-dir --no-deps --no-index /wheels/inventory-*.whl" in text
    assert "--no-build-isolation" in text  # the build backend is the locked one
    image = dockerfile()
    assert image["USER"] == "inventory"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("!requirements/", "!migrations/", "!inventory/", "!LICENSE"):
        assert needed in ignored


# --- Compose -------------------------------------------------------------------------------------


def test_compose_starts_as_root_only_to_hand_the_secrets_to_uid_10001() -> None:
    spec = compose()
    assert spec["name"] == "inventory"  # Compose v2 (the file says it is required)
    assert "Compose v2" in (ROOT / "docker-compose.yml").read_text()
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry_points["inventory-entrypoint"] == "inventory.entrypoint:main"
    for name in ("migrate", "inventory"):
        service = spec["services"][name]
        assert service["user"] == "0:0"
        entrypoint = service["entrypoint"]
        assert entrypoint[0] == "inventory-entrypoint"
        assert entrypoint[-1] == "--"
        options = dict(arg.removeprefix("--").split("=", 1) for arg in entrypoint[1:-1])
        assert options["user"] == "10001:10001"
        assert options["secrets-to"] == service["environment"]["INVENTORY_SECRETS_DIR"]
        assert any(t.startswith(options["secrets-to"] + ":") for t in service["tmpfs"])
        for secret in service["secrets"]:
            assert Path(secret["target"]).parent == Path(options["secrets-from"])
            assert Path(secret["target"]).name == secret["source"]
    # PostgreSQL keeps its own healthcheck; the daemon's is the image's HEALTHCHECK.
    assert spec["services"]["postgres"]["healthcheck"]["test"]
    assert "healthcheck" not in spec["services"]["inventory"]
    assert dockerfile()["HEALTHCHECK"] == ["python", "-m", "inventory.daemon.health"]


# --- systemd -------------------------------------------------------------------------------------


def unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "inventory.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_systemd_unit_needs_no_user_and_keeps_its_state() -> None:
    service = unit()
    assert service["DynamicUser"] == ["yes"]
    assert "User" not in service
    assert service["StateDirectory"] == ["inventory"]
    assert service["WorkingDirectory"] == ["/var/lib/inventory"]
    assert service["Environment"].count("INVENTORY_SECRETS_DIR=%d") == 1
    assert {c.split(":")[0] for c in service["LoadCredential"]} == {
        "inventory_database_url",
        "cf_token",
    }
    assert service["ExecStart"] == ["/opt/inventory/bin/inventory run"]
    assert service["ExecStartPre"] == ["/opt/inventory/bin/inventory db upgrade"]
    header = (DEPLOY / "inventory.service").read_text()
    assert "python3 -m venv /opt/inventory" in header
    assert "--require-hashes -r requirements/runtime.lock" in header
    assert service["RestartPreventExitStatus"] == ["2"]


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / "inventory.service"
    # The executables are not installed here: any existing one lets the rest be verified.
    copy.write_text(
        (DEPLOY / "inventory.service")
        .read_text()
        .replace("/opt/inventory/bin/inventory", "/bin/true")
    )
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "inventory.service" in line]
    assert result.returncode == 0, result.stderr
    assert problems == []


# --- Kubernetes ----------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def test_the_kubernetes_manifests_run_unprivileged_with_probes(tmp_path: Path) -> None:
    objects = manifests()
    kustomization = objects.pop("Kustomization")
    listed = {
        manifest["kind"]
        for name in kustomization["resources"]
        for manifest in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text())
    }
    assert listed == set(objects) == {"Namespace", "Secret", "ConfigMap", "Deployment", "Service"}

    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["terminationGracePeriodSeconds"] >= 45
    (migrate,) = pod["initContainers"]
    assert migrate["args"] == ["db", "upgrade"]
    (daemon,) = pod["containers"]
    assert daemon["args"] == ["run"]
    for container in (migrate, daemon):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["securityContext"].get("runAsUser", 10001) != 0
    assert daemon["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert daemon["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert daemon["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == objects["Secret"]["metadata"]["name"]
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440  # group-readable via fsGroup

    # The configuration as the pod reads it: the ConfigMap's settings and accounts, the Secret's
    # files in the secrets directory.
    env = {e["name"]: e["value"] for e in daemon["env"]}
    config = objects["ConfigMap"]["data"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in objects["Secret"]["stringData"].items():
        (secrets / name).write_text(value)
    mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
    assert env["INVENTORY_SECRETS_DIR"] == mounts["secrets"]
    toml = config["inventory.toml"].replace(mounts["secrets"], str(secrets))
    (tmp_path / "inventory.toml").write_text(toml)
    assert env["INVENTORY_CONFIG"] == f"{mounts['config']}/inventory.toml"
    environ = {k: v for k, v in config.items() if k.startswith("INVENTORY_")}
    environ.update(
        INVENTORY_CONFIG=str(tmp_path / "inventory.toml"), INVENTORY_SECRETS_DIR=str(secrets)
    )
    settings: Settings = load_settings(environ=environ, cwd=tmp_path)
    assert settings.database_url_secret().startswith("postgresql://")
    assert settings.accounts[0].api_token is not None
    port = objects["Service"]["spec"]["ports"][0]
    assert port["port"] == int(config["INVENTORY_METRICS_ADDRESS"].rsplit(":", 1)[1])

    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        built = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / "kubernetes")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert built.returncode == 0, built.stderr


# --- Grafana and Prometheus ----------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "inventory-rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "inventory-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_alert_rules_are_valid_and_cover_the_failure_modes() -> None:
    path = DEPLOY / "prometheus" / "inventory-rules.yml"
    promtool = shutil.which("promtool")
    if promtool is not None:
        checked = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # Without promtool: the rule file's structure as Prometheus reads it, and expressions that
    # at least balance their brackets and quotes (promtool, where installed, parses PromQL).
    document = yaml.safe_load(path.read_text())
    assert set(document) == {"groups"}
    names = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert DURATION.match(rule["for"])
            assert rule["labels"]["severity"] in ("info", "warning", "critical")
            assert rule["annotations"]["summary"]
            expr = rule["expr"]
            assert _balanced(expr), expr
            names.append(rule["alert"])
    assert len(set(names)) == len(names)
    assert {
        "InventorySyncFailing",
        "InventoryNoRecentSuccess",
        "InventorySyncStuck",
        "InventoryRateLimitExhausted",
        "InventoryConfirmationRequestsSpiking",
        "InventoryRequestsSpiking",
    } <= set(names)


def _balanced(expr: str) -> bool:
    pairs, stack, quoted = {")": "(", "]": "[", "}": "{"}, [], False
    for char in expr:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not quoted


def test_the_dashboard_is_importable(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "inventory-dashboard.json").read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert _balanced(target["expr"]), target["expr"]
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"]) == ("datasource", "datasource")
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # the structure above; promtool, where installed, parses every query
    # Each query as a recording rule: `promtool check rules` parses its PromQL.
    queries = [e.replace("$__rate_interval", "5m") for e in dashboard_exprs()]
    recorded = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_every_metric_the_rules_and_dashboard_use_is_exported(
    sim: SimulatedCloudflare, api_url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    database = tmp_path / "inventory.db"
    shutil.copyfile(sqlite_template, database)
    env = daemon_env(sim, api_url, f"sqlite:///{database}", tmp_path)
    with running(env, tmp_path) as daemon:
        daemon.wait_serving()
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=60)
        status, text = daemon.get("/metrics")
        assert status == 200
        assert daemon.stop() == 0, daemon.output()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    used = {
        name
        for expr in [rule["expr"] for rule in rules()] + dashboard_exprs()
        for name in METRIC.findall(expr)
    }
    assert used, "no metric names found"
    assert used - exported == set()
    # Names beside ids, and the version.
    for i, account in enumerate(sim.account_ids):
        assert f'inventory_account_info{{account="{account}",name="acct-{i}"}} 1.0' in text
    assert 'inventory_build_info{python="' in text
    assert f'version="{version("inventory")}"' in text
