"""Where settings come from, and the record of which source gave which value.

pydantic-settings merges its sources into one dict before validating, so a ValidationError only
knows the field. Each source is wrapped in a ``TracedSource`` that keeps what it returned; when
validation fails, the first (highest priority) source holding the field is where the value came
from. One load's inputs (environment, working directory, file paths) live in a ``ContextVar``
so that ``load_settings`` can be called with a test's own environment and directory.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

from inventory.errors import ConfigError

ENV_PREFIX = "INVENTORY_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
# Variables with our prefix that choose sources instead of holding a setting; INVENTORY_TEST_*
# belong to the test suite and must not stop the service from starting.
_NOT_SETTINGS = frozenset({"inventory_config", "inventory_secrets_dir"})
_TEST_PREFIX = "inventory_test_"


@dataclass(frozen=True)
class Environment:
    """Variables and the directory that relative paths start from."""

    environ: Mapping[str, str]
    cwd: Path
    dotenv_path: Path
    dotenv: Mapping[str, str | None] = field(default_factory=dict)  # keys lower-cased

    def getenv(self, name: str) -> tuple[str, str] | None:
        """The variable's value and where it was found; the real environment beats ``.env``."""
        value = self.environ.get(name)
        if value:
            return value, f"env {name}"
        value = self.dotenv.get(name.lower())
        if value:
            return value, f"{self.dotenv_path}, {name}"
        return None

    def path(self, value: str | os.PathLike[str]) -> Path:
        return self.cwd / Path(value).expanduser()


@dataclass
class Load:
    """One call of ``load_settings``: its inputs and, afterwards, what each source returned."""

    env: Environment
    dotenv_source: DotEnvSettingsSource
    toml_path: Path | None
    secrets_dir: Path | None
    traces: list[TracedSource] = field(default_factory=list)


CURRENT_LOAD: ContextVar[Load | None] = ContextVar("inventory_settings_load", default=None)


def listed_once(keys: Sequence[str], *, field: str, what: Callable[[str], str]) -> None:
    """Refuse a list that names one item twice: "<what> is listed twice (field[i] and field[j])"."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            raise ValueError(
                f"{what(key)} is listed twice ({field}[{seen[key]}] and {field}[{index}])"
            )
        seen[key] = index


def current_environment() -> Environment:
    load = CURRENT_LOAD.get()
    if load is not None:
        return load.env
    cwd = Path.cwd()
    return Environment(os.environ, cwd, cwd / ".env")


def prepare_load(
    settings_cls: type[BaseSettings],
    environ: Mapping[str, str],
    cwd: Path,
    *,
    config: Path | None = None,
    files: bool = True,
) -> Load:
    """One load's inputs; ``config`` (the option ``--config``) beats INVENTORY_CONFIG.

    ``files=False``: no ``.env``, TOML file or secrets directory, whatever ``environ`` names.
    """
    cwd = cwd.absolute()
    if not files:
        nothing = _DotEnvSource(settings_cls, env_file=None)
        return Load(
            env=Environment(environ, cwd, cwd / ".env", nothing.env_vars),
            dotenv_source=nothing,
            toml_path=None,
            secrets_dir=None,
        )
    dotenv_path = cwd / ".env"
    dotenv_source = _DotEnvSource(
        settings_cls, env_file=dotenv_path, dotenv_filtering="only_existing"
    )
    env = Environment(environ, cwd, dotenv_path, dotenv_source.env_vars)
    toml_path: Path | None
    if config is not None:
        toml_path = given = env.path(config)
        if not given.is_file():
            raise ConfigError(f"config file {given} {absent(given)}", source="--config")
    else:
        toml_path = _chosen_path(env, "INVENTORY_CONFIG", cwd / "inventory.toml", want_dir=False)
    return Load(
        env=env,
        dotenv_source=dotenv_source,
        toml_path=toml_path,
        secrets_dir=_chosen_path(env, "INVENTORY_SECRETS_DIR", DEFAULT_SECRETS_DIR, want_dir=True),
    )


def _chosen_path(env: Environment, variable: str, default: Path, *, want_dir: bool) -> Path | None:
    """The path a variable names (which must exist), else the default if it exists."""
    found = env.getenv(variable)
    if found is None:
        exists = default.is_dir() if want_dir else default.is_file()
        return default if exists else None
    path = env.path(found[0])
    if want_dir and not path.is_dir():
        raise ConfigError(
            f"secrets directory {path} {absent(path, want_dir=True)}", source=found[1]
        )
    if not want_dir and not path.is_file():
        raise ConfigError(f"config file {path} {absent(path)}", source=found[1])
    return path


def absent(path: Path, *, want_dir: bool = False) -> str:
    """Why ``path`` is not the file (or, ``want_dir``, the directory) wanted."""
    if not path.exists():
        return "does not exist"
    if want_dir:
        return "is not a directory"
    return "is a directory, not a file" if path.is_dir() else "is not a regular file"


def build_sources(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, load: Load
) -> tuple[PydanticBaseSettingsSource, ...]:
    env = load.env
    dotenv = env.dotenv_path
    traces = [
        TracedSource(init_settings, lambda _: "command line"),
        TracedSource(_EnvSource(settings_cls, environ=env.environ), lambda f: f"env {_var(f)}"),
    ]
    if load.dotenv_source.env_vars:  # no .env, or an empty one: nothing to read (3 ms saved)
        traces.append(TracedSource(load.dotenv_source, lambda f: f"{dotenv}, {_var(f)}"))
    if load.toml_path is not None:
        toml = load.toml_path
        traces.append(
            TracedSource(
                _read_toml(settings_cls, toml),
                lambda f: f"{toml}, [[accounts]]" if f == "accounts" else f"{toml}, key {f}",
            )
        )
    if load.secrets_dir is not None:
        secrets = load.secrets_dir
        traces.append(
            TracedSource(
                _SecretsSource(settings_cls, secrets_dir=secrets),
                lambda f: f"secret file {secrets / _var(f).lower()}",
            )
        )
    fallback = _CloudflareSource(settings_cls, env)
    traces.append(TracedSource(fallback, lambda _: fallback.origin))
    load.traces = traces
    return tuple(traces)


def _var(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def _read_toml(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("invalid TOML: the file is not UTF-8 text", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=str(path)) from None


class TracedSource(PydanticBaseSettingsSource):
    """Runs one source, keeps its output and turns its errors into ConfigError."""

    def __init__(self, inner: PydanticBaseSettingsSource, describe: Callable[[str], str]) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner
        self.is_toml = isinstance(inner, TomlConfigSettingsSource)
        self.describe = describe
        self.data: dict[str, Any] = {}

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.inner._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.inner._set_settings_sources_data(states)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            self.data = self.inner()
        except SettingsError as exc:
            raise self._explain(exc) from None
        return self.data

    def _explain(self, exc: SettingsError) -> ConfigError:
        match = re.search(r'field "(\w+)"', str(exc))
        name = match.group(1) if match else "accounts"
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            # The message and position only: the document may hold a token.
            where = f"line {cause.lineno} column {cause.colno} (char {cause.pos})"
            return ConfigError(
                f"{name}: invalid JSON: {cause.msg} at {where}", source=self.describe(name)
            )
        reason = f": {cause.strerror}" if isinstance(cause, OSError) else ""
        return ConfigError(f"{name}: cannot read the value{reason}", source=self.describe(name))

    def __repr__(self) -> str:
        return f"TracedSource({type(self.inner).__name__})"  # the inner repr may quote values


def reject_unknown(names: Iterable[str], settings_cls: type[BaseSettings], source: str) -> None:
    known = {_var(name).lower() for name in settings_cls.model_fields}
    unknown = sorted(
        name.upper()
        for name in names
        if name.lower().startswith(ENV_PREFIX.lower())
        and name.lower() not in known | _NOT_SETTINGS
        and not name.lower().startswith(_TEST_PREFIX)
    )
    if unknown:
        hint = did_you_mean(unknown[0], [name.upper() for name in known])
        raise ConfigError(f"unknown setting {', '.join(unknown)}{hint}", source=source)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class _EnvSource(EnvSettingsSource):
    """The environment source, reading the mapping it is given instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], *, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items() if value != ""}

    def __call__(self) -> dict[str, Any]:
        reject_unknown(self._environ, self.settings_cls, "environment")
        return super().__call__()


class _DotEnvSource(DotEnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        reject_unknown(self.env_vars, self.settings_cls, str(self.env_file))
        return super().__call__()


class _SecretsSource(SecretsSettingsSource):
    """Files of the secrets directory; a byte-order mark an editor saved is dropped too."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if isinstance(value, str):
            value = value.removeprefix("\ufeff").strip()
        return value, key, is_complex


class _CloudflareSource(PydanticBaseSettingsSource):
    """One account from the official SDK's variables, when no other source names any."""

    def __init__(self, settings_cls: type[BaseSettings], env: Environment) -> None:
        super().__init__(settings_cls)
        self.env = env
        self.origin = "env CLOUDFLARE_ACCOUNT_ID"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        account_id = self.env.getenv("CLOUDFLARE_ACCOUNT_ID")
        if account_id is None or "accounts" in self.current_state:
            return {}
        self.origin = account_id[1]
        account: dict[str, Any] = {"id": account_id[0]}
        # A token wins over a global key when both are set, as in the SDK's own preference.
        if self.env.getenv("CLOUDFLARE_API_TOKEN") or not self.env.getenv("CLOUDFLARE_API_KEY"):
            account["api_token_env"] = "CLOUDFLARE_API_TOKEN"  # noqa: S105 - a variable name
        else:
            email = self.env.getenv("CLOUDFLARE_EMAIL")
            if email is None:
                raise ConfigError("CLOUDFLARE_API_KEY needs CLOUDFLARE_EMAIL", source="environment")
            account.update(api_email=email[0], api_key_env="CLOUDFLARE_API_KEY")
            self.origin = f"{account_id[1]} and {email[1]}"
        return {"accounts": [account]}
