"""Reports over the history: the SQL views' queries, AS OF lookups, named reports.

Retention (pruning old history) is ``inventory.db.retention``.
"""

from inventory.reports.timespec import TimeSpecError, parse_duration, parse_instant

__all__ = ["TimeSpecError", "parse_duration", "parse_instant"]
