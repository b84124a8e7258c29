"""One Cloudflare account to mirror, and the credential it is read with.

A credential is given in exactly one way: an API token (inline, from a named environment variable,
or from a file) or a global API key with its email. Indirect secrets are read while validating, so
a missing variable or unreadable file is reported like any other bad value: by name, never by
content.

Tokens, keys and emails travel as HTTP header values, so each must be printable ASCII without
spaces. A secret file may start with a byte-order mark and end with one line ending (LF or CRLF),
as editors save them; both are dropped. Any other offending character is a configuration error
naming the setting, the position and the kind of character, never the value. Every secret read
is registered with ``inventory.redaction`` before it is checked.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

from inventory import timespec
from inventory.redaction import register_secret
from inventory.settings.sources import Environment, current_environment, did_you_mean

__all__ = ["AccountConfig"]

_ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")
_TOKEN_WAYS = ("api_token", "api_token_env", "api_token_file")
_KEY_WAYS = ("api_key", "api_key_env", "api_key_file")


class AccountConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str | None = None
    api_token: SecretStr | None = None
    api_email: str | None = None
    api_key: SecretStr | None = None
    # Where the secret was read from ("env CF_TOKEN_A", "file /run/…", "inline"); never the secret.
    credential_source: str = "inline"
    # This account's own schedule for `inventory run`, replacing the top-level one.
    sync_interval: float | None = None
    sync_cron: str | None = None

    @field_validator("sync_interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> float | None:
        return None if value is None else timespec.seconds(value)

    @field_validator("sync_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return timespec.check_cron(value)  # the daemon's own parser

    @model_validator(mode="before")
    @classmethod
    def _resolve_credential(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        # Before the credential: a misspelt `api_tokn` is an unknown key, not a missing token.
        known = {*cls.model_fields, *_TOKEN_WAYS, *_KEY_WAYS} - {"credential_source"}
        for key in data:
            if key not in known:
                raise ValueError(f"unknown key {key!r}{did_you_mean(str(key), known)}")
        return _resolve_credential(dict(data), current_environment())

    @field_validator("id", mode="before")
    @classmethod
    def _normalize_id(cls, value: object) -> str:
        if isinstance(value, str) and _ACCOUNT_ID.fullmatch(value.strip().lower()):
            return value.strip().lower()
        raise ValueError("must be the 32-character hexadecimal account ID")

    @field_validator("name", mode="before")
    @classmethod
    def _blank_name_is_none(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("api_email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if problem := header_value_problem(value):
            raise ValueError(f"holds {problem}: it is sent as a header, which must be ASCII")
        if "@" not in value:
            raise ValueError("must be an email address")
        return value

    @property
    def auth_scheme(self) -> Literal["token", "key"]:
        return "token" if self.api_token is not None else "key"

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def credential_key(self) -> str:
        if self.api_token is not None:
            material = self.api_token.get_secret_value()
        else:
            material = f"{self.api_email}\0{self._key()}"
        return f"{self.auth_scheme}:{hashlib.sha256(material.encode()).hexdigest()[:12]}"

    def auth_headers(self) -> dict[str, str]:
        if self.api_token is not None:
            return {"Authorization": f"Bearer {self.api_token.get_secret_value()}"}
        return {"X-Auth-Email": self.api_email or "", "X-Auth-Key": self._key()}

    def _key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key is not None else ""


def _resolve_credential(data: dict[str, Any], env: Environment) -> dict[str, Any]:
    token_ways = [way for way in _TOKEN_WAYS if data.get(way) is not None]
    key_ways = [way for way in _KEY_WAYS if data.get(way) is not None]
    has_email = data.get("api_email") is not None
    if token_ways and (key_ways or has_email):
        raise ValueError("give either an API token or api_email with an API key, not both")
    ways = token_ways or key_ways
    if not ways:
        if has_email:
            raise ValueError("api_email needs api_key, api_key_env or api_key_file")
        raise ValueError(
            "no credential: set api_token, api_token_env or api_token_file "
            "(or api_email with api_key, api_key_env or api_key_file)"
        )
    if len(ways) > 1:
        raise ValueError(f"give the secret one way only, not {' and '.join(ways)}")
    if not token_ways and not has_email:
        raise ValueError(f"{ways[0]} needs api_email")
    way = ways[0]
    secret, source = _read_secret(way, data.pop(way), env)
    data["api_token" if token_ways else "api_key"] = SecretStr(secret)
    if source is not None:
        data["credential_source"] = source
    return data


def _read_secret(way: str, value: object, env: Environment) -> tuple[str, str | None]:
    """The secret and where it came from (None: inline). Messages name the place, not the secret."""
    if way.endswith("_env"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{way} must be the name of an environment variable")
        found = env.getenv(value)
        if found is None or not found[0].strip():
            raise ValueError(f"environment variable {value} (named by {way}) is not set or empty")
        secret, source = found
    elif way.endswith("_file"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{way} must be a file path")
        path = env.path(value)
        source = f"file {path}"
        try:
            secret = _file_secret(path.read_bytes())
        except UnicodeDecodeError:
            raise ValueError(f"{way} {path} is not UTF-8 text") from None
        except OSError as exc:
            raise ValueError(f"cannot read {way} {path}: {exc.strerror}") from None
    else:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise ValueError(f"{way} must be a string")
        secret, source = value, None
    register_secret(secret)
    where = f" ({source})" if source else ""
    if not secret.strip():
        raise ValueError(f"{way} is empty{where}")
    if problem := header_value_problem(secret):
        raise ValueError(
            f"{way}{where} holds {problem}: a credential must be printable ASCII without spaces"
        )
    return secret, source


def _file_secret(data: bytes) -> str:
    """A secret file's text without a leading byte-order mark and one final LF or CRLF."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text.removesuffix(ending)
    return text


_KINDS = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a line feed (newline)",
    "\r": "a carriage return",
    "\x00": "a NUL character",
    "\xa0": "a no-break space",
    "\u200b": "a zero-width space",
    "\ufeff": "a byte-order mark",
}


def header_value_problem(value: str) -> str | None:
    """What makes ``value`` unfit for an HTTP header, with its position; never the value."""
    offending = [(i, char) for i, char in enumerate(value, 1) if not "!" <= char <= "~"]
    if not offending:
        return None
    position, char = offending[0]
    kind = _KINDS.get(char)
    if kind is None:
        if char.isascii():
            kind = "a control character"
        elif char.isspace():
            kind = "a whitespace character"
        elif unicodedata.category(char) == "Cf":
            kind = "an invisible formatting character"
        else:
            kind = "a non-ASCII character"
    more = len(offending) - 1
    also = f" (and {more} more such character{'s' if more > 1 else ''})" if more else ""
    return f"{kind} (U+{ord(char):04X}) at position {position}{also}"
