"""Reports over the history: the SQL views' queries, AS OF lookups, named reports.

Retention (pruning old history) is ``inventory.db.retention``; times as people type them,
``inventory.timespec``.
"""
