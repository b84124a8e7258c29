from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from inventory.errors import ConfigError
from inventory.settings import AccountConfig, Settings, load_settings
from inventory.settings import sources as settings_sources

ACCOUNT_A = "0123456789abcdef0123456789abcdef"
ACCOUNT_B = "fedcba9876543210fedcba9876543210"
TOKEN_A = "tokA-Zq9xW7vR2sT4uY6"
TOKEN_B = "tokB-Lm3nP5qR7sT9vX1"
API_KEY = "globalkey-8c1d2e3f4a5b"
DB_PASSWORD = "pw-Hunter2-xyzzy"

NO_ACCOUNTS = (
    "no accounts configured: add [[accounts]] to inventory.toml, set INVENTORY_ACCOUNTS, "
    "or set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN"
)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    return path


@pytest.fixture
def env(secrets_dir: Path) -> dict[str, str]:
    # Every test names its own secrets directory, so a real /run/secrets cannot leak in.
    return {"INVENTORY_SECRETS_DIR": str(secrets_dir)}


def load(env: dict[str, str], cwd: Path, **kwargs: object) -> Settings:
    kwargs.setdefault("require_accounts", False)
    return load_settings(environ=env, cwd=cwd, **kwargs)  # type: ignore[arg-type]


def load_error(env: dict[str, str], cwd: Path, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(env, cwd, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for secret in (TOKEN_A, TOKEN_B, API_KEY, DB_PASSWORD):
        assert secret not in message
    return info.value


def accounts_json(*accounts: dict[str, object]) -> str:
    return json.dumps(list(accounts))


# --- sources and priority -------------------------------------------------------------------


def test_defaults_without_any_source(env: dict[str, str], cwd: Path) -> None:
    settings = load(env, cwd)
    assert settings.database_url == "sqlite:///inventory.db"
    assert settings.api_base_url == "https://api.cloudflare.com/client/v4"
    assert settings.page_size == 100
    assert settings.max_retries == 5
    assert settings.sync_interval == 900
    assert settings.history_retention is None
    assert settings.log_level == "info"
    assert settings.accounts == []


def test_no_accounts_is_an_error_only_when_accounts_are_required(
    env: dict[str, str], cwd: Path
) -> None:
    assert load(env, cwd, require_accounts=False).accounts == []
    error = load_error(env, cwd, require_accounts=True)
    assert str(error) == NO_ACCOUNTS


def write_all_layers(env: dict[str, str], cwd: Path, secrets_dir: Path) -> None:
    env["INVENTORY_PAGE_SIZE"] = "20"
    (cwd / ".env").write_text("INVENTORY_PAGE_SIZE=30\n")
    (cwd / "inventory.toml").write_text("page_size = 40\n")
    (secrets_dir / "inventory_page_size").write_text("50\n")


def test_priority_override_env_dotenv_toml_secrets(
    env: dict[str, str], cwd: Path, secrets_dir: Path
) -> None:
    write_all_layers(env, cwd, secrets_dir)
    assert load(env, cwd, overrides={"page_size": 10}).page_size == 10
    assert load(env, cwd).page_size == 20
    del env["INVENTORY_PAGE_SIZE"]
    assert load(env, cwd).page_size == 30
    (cwd / ".env").unlink()
    assert load(env, cwd).page_size == 40
    (cwd / "inventory.toml").unlink()
    assert load(env, cwd).page_size == 50
    (secrets_dir / "inventory_page_size").unlink()
    assert load(env, cwd).page_size == 100


def test_without_files_only_overrides_and_the_given_environment_count(
    env: dict[str, str], cwd: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's settings: a user's .env, TOML file (and the notify targets in it) and secrets
    # directory, named or by default, do not reach them.
    write_all_layers(env, cwd, secrets_dir)
    (cwd / "inventory.toml").write_text('[[notify]]\nname = "n"\nurl_env = "HOOK"\n')
    (cwd / ".env").write_text(f"INVENTORY_CONFIG={cwd / 'inventory.toml'}\nHOOK=http://h/\n")
    monkeypatch.setattr(settings_sources, "DEFAULT_SECRETS_DIR", secrets_dir)
    settings = load(env, cwd, files=False)
    assert (settings.page_size, settings.notify) == (20, [])
    del env["INVENTORY_PAGE_SIZE"]
    settings = load(env, cwd, overrides={"max_pages": 7}, files=False)
    assert (settings.page_size, settings.max_pages) == (100, 7)


def test_sources_merge_per_setting(env: dict[str, str], cwd: Path, secrets_dir: Path) -> None:
    (secrets_dir / "INVENTORY_DATABASE_URL").write_text(
        f"postgresql+psycopg://inv:{DB_PASSWORD}@db/inventory\n"
    )
    (cwd / "inventory.toml").write_text('log_level = "debug"\nmax_retries = 2\n')
    (cwd / ".env").write_text("INVENTORY_MAX_RETRIES=3\n")
    env["INVENTORY_VERIFY_TLS"] = "false"
    settings = load(env, cwd, overrides={"max_concurrency": 8, "page_size": None})
    assert settings.database_url_secret() == f"postgresql+psycopg://inv:{DB_PASSWORD}@db/inventory"
    assert settings.log_level == "debug"
    assert settings.max_retries == 3
    assert settings.verify_tls is False
    assert settings.max_concurrency == 8
    assert settings.page_size == 100  # an unset option (None) does not hide the default


def test_toml_path_from_inventory_config(env: dict[str, str], cwd: Path, tmp_path: Path) -> None:
    (cwd / "inventory.toml").write_text("page_size = 40\n")
    elsewhere = tmp_path / "etc" / "inventory.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("page_size = 7\n")
    env["INVENTORY_CONFIG"] = str(elsewhere)
    assert load(env, cwd).page_size == 7
    env["INVENTORY_CONFIG"] = "../etc/inventory.toml"  # relative to the working directory
    assert load(env, cwd).page_size == 7


def test_toml_path_from_dotenv(env: dict[str, str], cwd: Path) -> None:
    (cwd / "custom.toml").write_text("page_size = 9\n")
    (cwd / ".env").write_text("INVENTORY_CONFIG=custom.toml\n")
    assert load(env, cwd).page_size == 9


def test_missing_config_file_is_named(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_CONFIG"] = "missing.toml"
    error = load_error(env, cwd)
    assert str(cwd / "missing.toml") in str(error)
    assert error.source == "env INVENTORY_CONFIG"


def test_unparsable_toml_names_path_and_line(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text(f'page_size = 10\napi_token = "{TOKEN_A}\n')
    error = load_error(env, cwd)
    assert str(cwd / "inventory.toml") in str(error)
    assert "line 2" in str(error)


def test_toml_that_is_not_utf8(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_bytes(b'log_level = "\xff"\n')
    assert "UTF-8" in str(load_error(env, cwd))


def test_secrets_dir_named_but_missing(env: dict[str, str], cwd: Path, tmp_path: Path) -> None:
    env["INVENTORY_SECRETS_DIR"] = str(tmp_path / "nowhere")
    error = load_error(env, cwd)
    assert str(tmp_path / "nowhere") in str(error)
    assert error.source == "env INVENTORY_SECRETS_DIR"


def test_default_secrets_dir_used_when_it_exists(
    cwd: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets_dir / "inventory_max_pages").write_text("12")
    monkeypatch.setattr(settings_sources, "DEFAULT_SECRETS_DIR", secrets_dir)
    assert load({}, cwd).max_pages == 12
    monkeypatch.setattr(settings_sources, "DEFAULT_SECRETS_DIR", secrets_dir / "absent")
    assert load({}, cwd).max_pages == 1000


def test_process_environment_and_directory_by_default(
    cwd: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("INVENTORY_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("INVENTORY_PAGE_SIZE", "33")
    (cwd / "inventory.toml").write_text("max_pages = 5\n")
    settings = load_settings(require_accounts=False)
    assert (settings.page_size, settings.max_pages) == (33, 5)


# --- unknown names --------------------------------------------------------------------------


def test_unknown_toml_key(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text("pagesize = 10\n")
    error = load_error(env, cwd)
    assert "'pagesize'" in str(error)
    assert "page_size" in str(error)  # the suggestion
    assert error.source == f"{cwd / 'inventory.toml'}, key pagesize"


def test_unknown_prefixed_environment_variable(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_PAGESIZE"] = "10"
    error = load_error(env, cwd)
    assert "INVENTORY_PAGESIZE" in str(error)
    assert error.source == "environment"


def test_unknown_variable_in_dotenv(env: dict[str, str], cwd: Path) -> None:
    (cwd / ".env").write_text("INVENTORY_LOGLEVEL=debug\n")
    error = load_error(env, cwd)
    assert "INVENTORY_LOGLEVEL" in str(error)
    assert error.source == str(cwd / ".env")


def test_variables_that_are_not_settings_are_ignored(
    env: dict[str, str], cwd: Path, tmp_path: Path
) -> None:
    (tmp_path / "other.toml").write_text("")
    env.update(
        INVENTORY_CONFIG=str(tmp_path / "other.toml"),
        INVENTORY_TEST_POSTGRES_URL="postgresql://localhost/test",
        PATH="/usr/bin",
        OTHER_APP_PAGE_SIZE="3",
    )
    (cwd / ".env").write_text("SOMETHING_ELSE=1\n")
    assert load(env, cwd).page_size == 100


def test_unknown_override(env: dict[str, str], cwd: Path) -> None:
    error = load_error(env, cwd, overrides={"page_sise": 3})
    assert "'page_sise'" in str(error)
    assert error.source == "command line"


# --- validation errors: one line, the setting and the source ---------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PAGE_SIZE", "500", "page_size: input should be less than or equal to 100"),
        ("PAGE_SIZE", "0", "page_size: input should be greater than or equal to 1"),
        ("MAX_RETRIES", "21", "max_retries"),
        ("MAX_CONCURRENCY", "65", "max_concurrency"),
        ("LOG_LEVEL", "loud", "log_level"),
        ("LOG_FORMAT", "xml", "log_format"),
        ("API_BASE_URL", "ftp://api.example.com", "api_base_url: must be an http"),
        ("API_BASE_URL", "https://", "api_base_url"),
        ("METRICS_ADDRESS", "localhost", "metrics_address: must be host:port"),
        ("SYNC_CRON", "every hour", "sync_cron"),
        ("VERIFY_TLS", "maybe", "verify_tls"),
    ],
)
def test_invalid_value_from_environment(
    env: dict[str, str], cwd: Path, name: str, value: str, expected: str
) -> None:
    env[f"INVENTORY_{name}"] = value
    error = load_error(env, cwd)
    assert str(error).startswith(expected)
    assert error.source == f"env INVENTORY_{name}"


def test_invalid_value_from_each_source_names_it(
    env: dict[str, str], cwd: Path, secrets_dir: Path
) -> None:
    (secrets_dir / "inventory_max_pages").write_text("none")
    assert load_error(env, cwd).source == f"secret file {secrets_dir / 'inventory_max_pages'}"
    (cwd / "inventory.toml").write_text('max_pages = "lots"\n')
    assert load_error(env, cwd).source == f"{cwd / 'inventory.toml'}, key max_pages"
    (cwd / ".env").write_text("INVENTORY_MAX_PAGES=lots\n")
    assert load_error(env, cwd).source == f"{cwd / '.env'}, INVENTORY_MAX_PAGES"
    assert load_error(env, cwd, overrides={"max_pages": -1}).source == "command line"


def test_several_problems_in_one_line_each_with_its_source(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text("max_concurrency = 0\n")
    env["INVENTORY_PAGE_SIZE"] = "0"
    message = str(load_error(env, cwd))
    assert "page_size" in message
    assert "(from env INVENTORY_PAGE_SIZE)" in message
    assert "max_concurrency" in message
    assert f"(from {cwd / 'inventory.toml'}, key max_concurrency)" in message


def test_ca_bundle_must_exist(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_CA_BUNDLE"] = "corp.pem"
    error = load_error(env, cwd)
    assert str(cwd / "corp.pem") in str(error)
    (cwd / "corp.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert load(env, cwd).ca_bundle == cwd / "corp.pem"


def test_api_base_url_trailing_slash_is_stripped(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_API_BASE_URL"] = "http://127.0.0.1:8787/client/v4/"
    assert load(env, cwd).api_base_url == "http://127.0.0.1:8787/client/v4"


def test_case_insensitive_log_level_and_cron(env: dict[str, str], cwd: Path) -> None:
    env.update(INVENTORY_LOG_LEVEL="WARNING", INVENTORY_SYNC_CRON="*/15 * * * *")
    settings = load(env, cwd)
    assert settings.log_level == "warning"
    assert settings.sync_cron == "*/15 * * * *"


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("900", 900), ("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2.5m", 150)],
)
def test_duration_strings(env: dict[str, str], cwd: Path, text: str, seconds: float) -> None:
    env["INVENTORY_SYNC_INTERVAL"] = text
    assert load(env, cwd).sync_interval == seconds


def test_durations_in_toml(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text(
        'history_retention = "180d"\nread_timeout = 45\nretry_max_time = "2m"\n'
    )
    settings = load(env, cwd)
    assert settings.history_retention == 180 * 86400
    assert settings.read_timeout == 45
    assert settings.retry_max_time == 120


def test_history_retention_can_be_switched_off(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text('history_retention = "30d"\n')
    env["INVENTORY_HISTORY_RETENTION"] = "none"
    assert load(env, cwd).history_retention is None


@pytest.mark.parametrize("text", ["soon", "-5", "0", "15 minutes", "inf"])
def test_bad_durations(env: dict[str, str], cwd: Path, text: str) -> None:
    env["INVENTORY_SYNC_INTERVAL"] = text
    error = load_error(env, cwd)
    assert str(error).startswith("sync_interval:")
    assert error.source == "env INVENTORY_SYNC_INTERVAL"


# --- accounts ------------------------------------------------------------------------------


def test_accounts_from_toml(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT_A.upper()}"\nname = "prod"\napi_token = "{TOKEN_A}"\n'
        f'[[accounts]]\nid = "{ACCOUNT_B}"\napi_email = "ops@example.com"\n'
        f'api_key = "{API_KEY}"\n'
    )
    first, second = load(env, cwd, require_accounts=True).accounts
    assert (first.id, first.name, first.label, first.auth_scheme) == (
        ACCOUNT_A,
        "prod",
        "prod",
        "token",
    )
    assert first.auth_headers() == {"Authorization": f"Bearer {TOKEN_A}"}
    assert (second.label, second.auth_scheme) == (ACCOUNT_B, "key")
    assert second.auth_headers() == {"X-Auth-Email": "ops@example.com", "X-Auth-Key": API_KEY}


def test_accounts_from_environment_json_replace_toml_accounts(
    env: dict[str, str], cwd: Path
) -> None:
    (cwd / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT_A}"\napi_token = "{TOKEN_A}"\n'
    )
    env["INVENTORY_ACCOUNTS"] = accounts_json({"id": ACCOUNT_B, "api_token": TOKEN_B})
    assert [account.id for account in load(env, cwd).accounts] == [ACCOUNT_B]


def test_accounts_from_dotenv(env: dict[str, str], cwd: Path) -> None:
    (cwd / ".env").write_text(
        f"INVENTORY_ACCOUNTS='{accounts_json({'id': ACCOUNT_A, 'api_token': TOKEN_A})}'\n"
    )
    assert [account.id for account in load(env, cwd).accounts] == [ACCOUNT_A]


def test_malformed_accounts_json(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_ACCOUNTS"] = f'[{{"id": "{ACCOUNT_A}", "api_token": "{TOKEN_A}"'
    error = load_error(env, cwd)
    assert "invalid JSON" in str(error)
    assert "line 1 column" in str(error)
    assert error.source == "env INVENTORY_ACCOUNTS"


def test_accounts_json_that_is_not_a_list(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_ACCOUNTS"] = json.dumps({"id": ACCOUNT_A, "api_token": TOKEN_A})
    error = load_error(env, cwd)
    assert str(error).startswith("accounts:")
    assert error.source == "env INVENTORY_ACCOUNTS"


@pytest.mark.parametrize("bad_id", ["abc", ACCOUNT_A + "0", "g" * 32, 12345])
def test_bad_account_id_names_position_and_name(
    env: dict[str, str], cwd: Path, bad_id: object
) -> None:
    env["INVENTORY_ACCOUNTS"] = accounts_json(
        {"id": ACCOUNT_A, "api_token": TOKEN_A},
        {"id": bad_id, "name": "staging", "api_token": TOKEN_A},
    )
    error = load_error(env, cwd)
    assert str(error).startswith("accounts[1] ('staging'): id: must be the 32-character")
    assert str(bad_id) not in str(error)  # it could be a token pasted into the wrong field


def test_bad_account_without_name_is_named_by_position(env: dict[str, str], cwd: Path) -> None:
    (cwd / "inventory.toml").write_text(f'[[accounts]]\nid = "nope"\napi_token = "{TOKEN_A}"\n')
    error = load_error(env, cwd)
    assert str(error).startswith("accounts[0]: id:")
    assert error.source == f"{cwd / 'inventory.toml'}, [[accounts]]"


def test_unknown_account_key(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_ACCOUNTS"] = accounts_json(
        {"id": ACCOUNT_A, "name": "prod", "api_token": TOKEN_A, "zone": "x"}
    )
    assert str(load_error(env, cwd)).startswith("accounts[0] ('prod'): unknown key 'zone'")


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        ({}, "no credential"),
        ({"api_token": TOKEN_A, "api_key": API_KEY, "api_email": "a@b.c"}, "not both"),
        ({"api_token": TOKEN_A, "api_email": "a@b.c"}, "not both"),
        ({"api_token": TOKEN_A, "api_token_env": "CF_TOKEN"}, "one way only"),
        ({"api_token": TOKEN_A, "api_token_file": "token.txt"}, "one way only"),
        ({"api_key": API_KEY}, "needs api_email"),
        ({"api_email": "a@b.c"}, "api_email needs api_key"),
        ({"api_email": "nobody", "api_key": API_KEY}, "api_email: must be an email address"),
        ({"api_token": ""}, "api_token is empty"),
        ({"api_token": f"{TOKEN_A} {TOKEN_B}"}, "api_token holds a space (U+0020) at position"),
    ],
)
def test_credential_errors(
    env: dict[str, str], cwd: Path, credential: dict[str, str], expected: str
) -> None:
    env["INVENTORY_ACCOUNTS"] = accounts_json({"id": ACCOUNT_A, "name": "prod", **credential})
    error = load_error(env, cwd)
    assert str(error).startswith("accounts[0] ('prod'): ")
    assert expected in str(error)
    assert error.source == "env INVENTORY_ACCOUNTS"


def test_duplicate_account_ids(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_ACCOUNTS"] = accounts_json(
        {"id": ACCOUNT_A, "api_token": TOKEN_A},
        {"id": ACCOUNT_B, "api_token": TOKEN_A},
        {"id": ACCOUNT_A.upper(), "api_token": TOKEN_B},
    )
    error = load_error(env, cwd)
    assert ACCOUNT_A in str(error)
    assert "accounts[0] and accounts[2]" in str(error)
    assert error.source == "env INVENTORY_ACCOUNTS"


def test_token_from_named_environment_variable(env: dict[str, str], cwd: Path) -> None:
    env.update(
        CF_TOKEN_A=TOKEN_A,
        INVENTORY_ACCOUNTS=accounts_json({"id": ACCOUNT_A, "api_token_env": "CF_TOKEN_A"}),
    )
    (account,) = load(env, cwd).accounts
    assert account.auth_headers() == {"Authorization": f"Bearer {TOKEN_A}"}
    assert account.credential_source == "env CF_TOKEN_A"


def test_token_variable_may_live_in_dotenv(env: dict[str, str], cwd: Path) -> None:
    (cwd / ".env").write_text(f"CF_TOKEN_A={TOKEN_A}\n")
    env["INVENTORY_ACCOUNTS"] = accounts_json({"id": ACCOUNT_A, "api_token_env": "CF_TOKEN_A"})
    (account,) = load(env, cwd).accounts
    assert account.auth_headers()["Authorization"] == f"Bearer {TOKEN_A}"


def test_key_file_loses_its_byte_order_mark_and_one_line_ending(
    env: dict[str, str], cwd: Path
) -> None:
    (cwd / "cf.key").write_bytes(f"\ufeff{API_KEY}\r\n".encode())
    (cwd / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT_A}"\napi_email = "ops@example.com"\n'
        'api_key_file = "cf.key"\n'
    )
    (account,) = load(env, cwd).accounts
    assert account.auth_headers()["X-Auth-Key"] == API_KEY
    assert account.credential_source == f"file {cwd / 'cf.key'}"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (f"\n  {API_KEY}\n", "a line feed (newline) (U+000A) at position 1"),
        (f"{API_KEY}\n\n", "a line feed (newline) (U+000A) at position 23"),
        (f"{API_KEY} \n", "a space (U+0020) at position 23"),
    ],
)
def test_key_file_with_more_than_one_line_ending_is_refused(
    env: dict[str, str], cwd: Path, content: str, kind: str
) -> None:
    (cwd / "cf.key").write_text(content)
    (cwd / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT_A}"\napi_email = "ops@example.com"\n'
        'api_key_file = "cf.key"\n'
    )
    message = str(load_error(env, cwd))
    assert (
        f"accounts[0] ({ACCOUNT_A}): api_key_file (file {cwd / 'cf.key'}) holds {kind}" in message
    )
    assert API_KEY not in message


@pytest.mark.parametrize("value", ["", "   "])
def test_named_variable_unset_or_empty(env: dict[str, str], cwd: Path, value: str) -> None:
    env.update(
        CF_TOKEN_A=value,
        INVENTORY_ACCOUNTS=accounts_json({"id": ACCOUNT_A, "api_token_env": "CF_TOKEN_A"}),
    )
    assert "CF_TOKEN_A" in str(load_error(env, cwd))
    del env["CF_TOKEN_A"]
    assert "CF_TOKEN_A" in str(load_error(env, cwd))


def test_token_file_missing_or_empty(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_ACCOUNTS"] = accounts_json({"id": ACCOUNT_A, "api_token_file": "token.txt"})
    error = load_error(env, cwd)
    assert f"cannot read api_token_file {cwd / 'token.txt'}" in str(error)
    (cwd / "token.txt").write_text("\n")
    assert f"{cwd / 'token.txt'}" in str(load_error(env, cwd))
    assert "empty" in str(load_error(env, cwd))


def test_shared_token_gives_one_credential_key(env: dict[str, str], cwd: Path) -> None:
    env.update(
        CF_TOKEN=TOKEN_A,
        INVENTORY_ACCOUNTS=accounts_json(
            {"id": ACCOUNT_A, "api_token": TOKEN_A},
            {"id": ACCOUNT_B, "api_token_env": "CF_TOKEN"},
            {"id": "a" * 32, "api_token": TOKEN_B},
            {"id": "b" * 32, "api_email": "ops@example.com", "api_key": API_KEY},
        ),
    )
    a, b, c, d = load(env, cwd).accounts
    assert a.credential_key == b.credential_key
    assert a.credential_key != c.credential_key
    assert a.credential_key.startswith("token:")
    assert d.credential_key.startswith("key:")
    for account in (a, c, d):
        assert TOKEN_A not in account.credential_key
        assert API_KEY not in account.credential_key


def test_account_config_built_directly() -> None:
    account = AccountConfig(id=ACCOUNT_A.upper(), name="prod", api_token=TOKEN_A)
    assert account.id == ACCOUNT_A
    assert account.auth_headers() == {"Authorization": f"Bearer {TOKEN_A}"}
    with pytest.raises(ValueError, match="not both"):
        AccountConfig.model_validate(
            {"id": ACCOUNT_A, "api_token": TOKEN_A, "api_email": "a@b.c", "api_key": API_KEY}
        )


# --- the official SDK's variables ----------------------------------------------------------


def test_cloudflare_variables_define_one_account(env: dict[str, str], cwd: Path) -> None:
    env.update(CLOUDFLARE_ACCOUNT_ID=ACCOUNT_A, CLOUDFLARE_API_TOKEN=TOKEN_A)
    (account,) = load(env, cwd, require_accounts=True).accounts
    assert account.id == ACCOUNT_A
    assert account.auth_headers() == {"Authorization": f"Bearer {TOKEN_A}"}
    assert account.credential_source == "env CLOUDFLARE_API_TOKEN"


def test_cloudflare_email_and_key(env: dict[str, str], cwd: Path) -> None:
    env.update(
        CLOUDFLARE_ACCOUNT_ID=ACCOUNT_A,
        CLOUDFLARE_EMAIL="ops@example.com",
        CLOUDFLARE_API_KEY=API_KEY,
    )
    (account,) = load(env, cwd).accounts
    assert account.auth_headers() == {"X-Auth-Email": "ops@example.com", "X-Auth-Key": API_KEY}


def test_cloudflare_key_without_email(env: dict[str, str], cwd: Path) -> None:
    env.update(CLOUDFLARE_ACCOUNT_ID=ACCOUNT_A, CLOUDFLARE_API_KEY=API_KEY)
    assert "CLOUDFLARE_EMAIL" in str(load_error(env, cwd))


def test_cloudflare_account_without_credential(env: dict[str, str], cwd: Path) -> None:
    env["CLOUDFLARE_ACCOUNT_ID"] = ACCOUNT_A
    error = load_error(env, cwd)
    assert "CLOUDFLARE_API_TOKEN" in str(error)
    assert error.source == "env CLOUDFLARE_ACCOUNT_ID"


def test_cloudflare_variables_ignored_when_accounts_are_configured(
    env: dict[str, str], cwd: Path
) -> None:
    (cwd / "inventory.toml").write_text(
        f'[[accounts]]\nid = "{ACCOUNT_B}"\napi_token = "{TOKEN_B}"\n'
    )
    env.update(CLOUDFLARE_ACCOUNT_ID=ACCOUNT_A, CLOUDFLARE_API_KEY=API_KEY)
    assert [account.id for account in load(env, cwd).accounts] == [ACCOUNT_B]


def test_cloudflare_token_without_account_id_is_not_an_account(
    env: dict[str, str], cwd: Path
) -> None:
    env["CLOUDFLARE_API_TOKEN"] = TOKEN_A
    assert str(load_error(env, cwd, require_accounts=True)) == NO_ACCOUNTS


# --- secrets never shown -------------------------------------------------------------------


@pytest.fixture
def secret_settings(env: dict[str, str], cwd: Path) -> Settings:
    (cwd / "key.txt").write_text(API_KEY)
    env.update(
        CF_TOKEN_A=TOKEN_A,
        INVENTORY_DATABASE_URL=f"postgresql+psycopg://user:{DB_PASSWORD}@host/db",
        INVENTORY_ACCOUNTS=accounts_json(
            {"id": ACCOUNT_A, "name": "a", "api_token_env": "CF_TOKEN_A"},
            {"id": ACCOUNT_B, "api_token": TOKEN_B},
            {"id": "c" * 32, "api_email": "ops@example.com", "api_key_file": "key.txt"},
        ),
    )
    return load(env, cwd)


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN_A, TOKEN_B, API_KEY, DB_PASSWORD):
        assert secret not in text


def test_repr_and_str_hold_no_secret(secret_settings: Settings) -> None:
    assert_no_secret(repr(secret_settings))
    assert_no_secret(str(secret_settings))
    for account in secret_settings.accounts:
        assert_no_secret(repr(account))
        assert_no_secret(str(account))
    assert "postgresql+psycopg://user:***@host/db" in repr(secret_settings)


def test_database_password_is_masked_but_available(secret_settings: Settings) -> None:
    assert secret_settings.database_url == "postgresql+psycopg://user:***@host/db"
    assert secret_settings.database_url_secret() == (
        f"postgresql+psycopg://user:{DB_PASSWORD}@host/db"
    )
    copied = pickle.loads(pickle.dumps(secret_settings))  # noqa: S301 - our own object
    assert copied.database_url_secret() == secret_settings.database_url_secret()


def test_password_in_query_string_is_masked(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_DATABASE_URL"] = f"postgresql://host/db?user=u&password={DB_PASSWORD}"
    settings = load(env, cwd)
    assert_no_secret(repr(settings))
    assert settings.database_url_secret().endswith(DB_PASSWORD)


def test_invalid_database_url_hides_password(env: dict[str, str], cwd: Path) -> None:
    env["INVENTORY_DATABASE_URL"] = f"postgresql://user:{DB_PASSWORD}@host:port/db"
    error = load_error(env, cwd)
    assert str(error).startswith("database_url: is not a valid SQLAlchemy database URL")
    assert error.source == "env INVENTORY_DATABASE_URL"


def test_redacted(secret_settings: Settings, cwd: Path) -> None:
    redacted = secret_settings.redacted()
    assert_no_secret(json.dumps(redacted))
    assert redacted["database_url"] == "postgresql+psycopg://user:***@host/db"
    assert redacted["page_size"] == 100
    accounts = redacted["accounts"]
    assert isinstance(accounts, list)
    a, b, c = accounts
    assert a["api_token"] == "*** (env CF_TOKEN_A)"
    assert b["api_token"] == "*** (env INVENTORY_ACCOUNTS)"
    assert c["api_key"] == f"*** (file {cwd / 'key.txt'})"
    assert c["api_email"] == "ops@example.com"


def test_settings_are_frozen(secret_settings: Settings) -> None:
    with pytest.raises(ValueError, match="frozen"):
        secret_settings.page_size = 5  # type: ignore[misc]


def test_accounts_from_secrets_dir(env: dict[str, str], cwd: Path, secrets_dir: Path) -> None:
    (secrets_dir / "inventory_accounts").write_text(
        accounts_json({"id": ACCOUNT_A, "api_token": TOKEN_A})
    )
    (account,) = load(env, cwd).accounts
    assert account.auth_headers()["Authorization"] == f"Bearer {TOKEN_A}"


def test_cloudflare_variables_from_dotenv(env: dict[str, str], cwd: Path) -> None:
    (cwd / ".env").write_text(
        f"CLOUDFLARE_ACCOUNT_ID={ACCOUNT_A}\nCLOUDFLARE_API_TOKEN={TOKEN_A}\n"
    )
    settings = load(env, cwd)
    assert [account.id for account in settings.accounts] == [ACCOUNT_A]
    accounts = settings.redacted()["accounts"]
    assert isinstance(accounts, list)
    assert accounts[0]["api_token"] == f"*** ({cwd / '.env'}, CLOUDFLARE_API_TOKEN)"


def test_settings_built_directly_read_the_process_environment(
    cwd: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("INVENTORY_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("INVENTORY_MAX_PAGES", "3")
    settings = Settings(page_size=5)
    assert (settings.page_size, settings.max_pages) == (5, 3)
