"""Groups of CLI commands, each registered on the main application by cli.py."""
