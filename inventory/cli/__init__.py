"""The ``inventory`` command line: the app (``app``), its command groups (``commands/``), the
consoles they print with (``console``) and the global options (``options``).

Exit codes: 0 success (an account skipped because another process syncs it, or superseded by a
later run, is not a failure); 1 an account failed (the others still synced); 2 configuration or
usage problem. A user's mistake gets one line on stderr, never a traceback.
"""

from inventory.cli.app import app, main
from inventory.cli.options import Options

__all__ = ["Options", "app", "main"]
