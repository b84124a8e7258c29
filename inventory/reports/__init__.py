"""Reports over the history: the SQL views' queries, AS OF lookups, named reports, retention."""

from typing import Any

from inventory.reports.timespec import TimeSpecError, parse_duration, parse_instant

__all__ = ["PruneResult", "TimeSpecError", "parse_duration", "parse_instant", "prune_history"]


def __getattr__(name: str) -> Any:
    # prune needs SQLAlchemy: loaded when asked for, so that a table's renderer (which lives in
    # this package) does not cost `config check` the database stack at start-up
    if name in ("PruneResult", "prune_history"):
        from inventory.reports import prune

        return getattr(prune, name)
    raise AttributeError(name)
