"""What a SIGHUP changes: two configurations compared, with no side effects (the daemon applies it).

Accounts are matched by id: one in the new configuration only is added, one in the old only is
removed, one in both whose entry differs (name, credential, own schedule) is changed. Settings
outside ``RELOADABLE`` keep their start-up value until a restart: the database and the metrics
address are bound at start-up, and the HTTP client with its rate limiters is shared by running
syncs. Only names are reported, never values: some are secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RELOADABLE", "ConfigChange", "compare_settings"]

RELOADABLE = frozenset(
    {
        "accounts",
        "sync_interval",
        "sync_cron",
        "log_level",
        "log_format",
        "page_size",
        "max_pages",
        "account_deadline",
        "history_retention",
        "notify",
    }
)


@dataclass(frozen=True)
class ConfigChange:
    added: list[str]  # account ids, in the new configuration's order
    removed: list[str]  # account ids, in the old configuration's order
    changed: list[str]  # account ids whose entry differs
    settings: list[str]  # reloadable settings that changed, accounts aside
    ignored: list[str]  # settings that changed but need a restart

    @property
    def logging_changed(self) -> bool:
        return bool({"log_level", "log_format"} & set(self.settings))


def compare_settings(old: Any, new: Any) -> ConfigChange:
    names = {name for name in type(new).model_fields if getattr(old, name) != getattr(new, name)}
    if old.database_url_secret() != new.database_url_secret():  # the masked text may not differ
        names.add("database_url")
    before = {a.id: a for a in old.accounts}
    after = {a.id: a for a in new.accounts}
    return ConfigChange(
        added=[i for i in after if i not in before],
        removed=[i for i in before if i not in after],
        changed=[i for i in after if i in before and after[i] != before[i]],
        settings=sorted((names & RELOADABLE) - {"accounts"}),
        ignored=sorted(names - RELOADABLE),
    )
