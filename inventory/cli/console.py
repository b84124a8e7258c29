"""What every command group prints with: the consoles, and one line for a user's mistake.

``out`` and ``err`` are rich Consoles made on first use: importing rich costs ``--help``
start-up time. ``fail`` prints one red line on stderr and exits (2 unless told otherwise);
``user_errors`` turns the errors a user can cause into such a line, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from inventory.errors import InventoryError
from inventory.redaction import scrub_text
from inventory.sync.outcome import describe_error

__all__ = ["err", "fail", "fit_consoles", "out", "piped_width", "user_errors", "warn"]


def piped_width() -> int:
    """The width of output that is not a terminal: $COLUMNS, else 80."""
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else 80


class _LazyConsole:
    """A rich Console made on first use: importing rich costs `--help` start-up time."""

    def __init__(self, *, stderr: bool) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)

    def _made(self) -> Any:
        if self._console is None:
            from rich.console import Console  # lazily: start-up time (see the class docstring)

            stream = sys.stderr if self._stderr else sys.stdout
            # On a terminal rich follows its size (and $COLUMNS); piped, piped_width().
            width = None if stream.isatty() else piped_width()
            object.__setattr__(self, "_console", Console(stderr=self._stderr, width=width))
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._made(), name, value)


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


def fit_consoles() -> None:
    """Size the consoles for this invocation (the environment may differ from import time)."""
    for console in (out, err):
        # one not made yet reads piped_width() when it is (and rich stays unimported till then)
        if console._console is not None and not console.file.isatty():
            console.width = piped_width()


def fail(message: str, code: int = 2) -> NoReturn:
    from rich.markup import escape  # lazily: start-up time

    message = escape(scrub_text(message))  # "[[accounts]]" in a message is not markup
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    from rich.markup import escape  # lazily: start-up time

    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and an exit code."""
    try:
        yield
    except InventoryError as exc:  # ConfigError and the rest: exit 2
        fail(str(exc), 2)
    except Exception as exc:
        # Not `except SQLAlchemyError`: importing SQLAlchemy costs `config check` and `--help`
        # half a second. If it was never imported, no error can be one of its.
        sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
        if sqlalchemy_exc is None or not isinstance(exc, sqlalchemy_exc.SQLAlchemyError):
            raise
        fail(describe_error(exc), 1)
