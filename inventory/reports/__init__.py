"""Reports over the history: the SQL views' queries, AS OF lookups, named reports, retention."""

from inventory.reports.prune import PruneResult, prune_history
from inventory.reports.timespec import TimeSpecError, parse_duration, parse_instant

__all__ = ["PruneResult", "TimeSpecError", "parse_duration", "parse_instant", "prune_history"]
