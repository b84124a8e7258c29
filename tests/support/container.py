"""Reading the container files (Dockerfile, docker-compose.yml) without a Docker engine."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ROOT", "compose", "dockerfile"]

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> dict[str, Any]:
    """The Dockerfile's final stage: instruction -> argument (JSON forms decoded)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final: dict[str, Any] = {"ENV": {}}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if word == "FROM":
            final = {"ENV": {}, "FROM": rest}
        elif word == "ENV":
            final["ENV"].update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word == "HEALTHCHECK":
            final[word] = json.loads(rest.split(" CMD ", 1)[1])
        elif word in ("ENTRYPOINT", "CMD"):
            final[word] = json.loads(rest)
        else:
            final[word] = rest
    return final


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded
