"""What a user names on the command line, checked: accounts by id or name, entity kinds.

Pure: the caller says which accounts exist (configured, or known to the database). A name that
matches nothing is an error naming the valid ones, never a silently empty answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inventory.errors import SelectionError

__all__ = [
    "KIND_ALIASES",
    "KIND_ORDER",
    "KnownAccount",
    "SelectionError",
    "parse_kinds",
    "resolve_account",
    "resolve_accounts",
]

KIND_ORDER = ("portal", "server", "portal_server", "tool", "prompt", "override")
# singular, plural and the word the sync summary uses ("links")
KIND_ALIASES: dict[str, str] = {
    **{k: k for k in KIND_ORDER},
    **{f"{k}s": k for k in KIND_ORDER},
    "link": "portal_server",
    "links": "portal_server",
}
_LISTED = 12


@dataclass(frozen=True, slots=True)
class KnownAccount:
    id: str
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id


def _merge(accounts: Iterable[KnownAccount]) -> list[KnownAccount]:
    merged: dict[str, KnownAccount] = {}
    for account in accounts:
        known = merged.get(account.id.lower())
        if known is None or (known.name is None and account.name):
            merged[account.id.lower()] = KnownAccount(account.id.lower(), account.name)
    return sorted(merged.values(), key=lambda a: (a.name or "~", a.id))


def _valid(accounts: Sequence[KnownAccount]) -> str:
    if not accounts:
        return "no account is configured or known to the database yet"
    shown = ", ".join(a.label for a in accounts[:_LISTED])
    more = f" and {len(accounts) - _LISTED} more" if len(accounts) > _LISTED else ""
    return f"valid: {shown}{more}"


def resolve_account(
    wanted: str, accounts: Iterable[KnownAccount], *, option: str = "--account"
) -> str:
    """The account id ``wanted`` names: an id (any case) or a name the account has had (the
    configured one, or the one the database last recorded: a renamed account answers to both
    until its next sync records the new one)."""
    given = list(accounts)
    known = _merge(given)
    text = wanted.strip()
    for account in known:
        if account.id == text.lower():
            return account.id
    for same in (str.__eq__, lambda a, b: a.lower() == b.lower()):
        ids = list(dict.fromkeys(a.id.lower() for a in given if a.name and same(a.name, text)))
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            msg = f"{option} {wanted!r} names several accounts ({', '.join(ids)}): give the id"
            raise SelectionError(msg)
    raise SelectionError(f"{option} {wanted!r} is not a known account id or name; {_valid(known)}")


def resolve_accounts(
    wanted: Iterable[str], accounts: Iterable[KnownAccount], *, option: str = "--account"
) -> list[str]:
    known = _merge(accounts)
    return list(dict.fromkeys(resolve_account(w, known, option=option) for w in wanted))


def parse_kinds(wanted: Iterable[str], *, option: str = "--kind") -> list[str]:
    """Kinds as typed (singular or plural, any case) → the canonical kinds, in KIND_ORDER."""
    kinds: set[str] = set()
    for value in wanted:
        for part in value.split(","):
            kind = KIND_ALIASES.get(part.strip().lower().replace("-", "_"))
            if kind is None:
                choices = ", ".join(KIND_ORDER)
                msg = (
                    f"{option} {part.strip()!r} is not a kind; use one of {choices} "
                    "(singular or plural; 'links' for portal_server)"
                )
                raise SelectionError(msg)
            kinds.add(kind)
    return [k for k in KIND_ORDER if k in kinds]
