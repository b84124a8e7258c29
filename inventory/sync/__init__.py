"""One account's sync: fetch → transform → diff → load, in one transaction.

    syncer     Syncer: every account, each under its lock, failures recorded; the daemon's too
    account    one account's sync as a recipe (fetch, transform, diff, load)
    outcome    the result, the status policy and ``describe_error`` (pure)
    transform  raw API records → rows (pure); diff: rows → changes (pure)

Importing this package imports none of its modules: the CLI takes ``describe_error`` without
loading the database stack.
"""
