"""What one account's sync came to: its result, the status policy, and errors in words.

Pure: no HTTP, no SQL, no logging (the CLI imports ``describe_error`` at start-up, so this module
loads neither SQLAlchemy nor structlog).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from inventory.errors import InventoryError
from inventory.redaction import scrub_text

__all__ = ["AccountResult", "Outcome", "decide_outcome", "describe_error"]


@dataclass(slots=True)
class AccountResult:
    account_id: str
    name: str | None
    status: str
    run_id: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: int = 0
    requests: int = 0
    pages: int = 0
    retries: int = 0
    confirmations: int = 0  # detail requests that checked deletions before they were recorded
    duration: float = 0.0
    consistent: bool | None = None
    error_class: str | None = None
    error: str | None = None
    unchanged: bool = False  # every page as the last clean run read it: nothing decoded
    # What an operator should know that does not make the run partial (transform warnings).
    warnings: list[str] = field(default_factory=list)
    observed: int = 0  # rows whose observations (sync times) alone moved, updated in place

    @property
    def ok(self) -> bool:
        """The run applied what it read (stored the account's state)."""
        return self.status in ("succeeded", "partial")

    @property
    def failed(self) -> bool:
        """A failure for exit codes and alerts (skipped and superseded are not)."""
        return self.status == "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run that read everything it could is recorded; ``clean``: it may leave a memo."""

    status: str
    error_class: str | None
    error: str | None
    clean: bool


def decide_outcome(
    problems: Sequence[str], *, rejected: int, ended_on_error: bool = False
) -> Outcome:
    """``problems``: what made a listing or a confirmation incomplete; ``rejected``: records the
    transform quarantined; ``ended_on_error``: a listing ended on an error envelope (400/404)."""
    problems = [*problems]
    if rejected:
        problems.append(f"{rejected} record(s) rejected, see rejected_records")
    if not problems:
        # Only a clean run vouches for its pages; a listing that ended on an error does not (its
        # last page is not one a resync can match).
        return Outcome("succeeded", None, None, clean=not ended_on_error)
    error = "; ".join(problems) + "; nothing was deleted that this hid"
    return Outcome("partial", "Incomplete", error, clean=False)


def describe_error(exc: BaseException, *, database: str = "database error: ") -> str:
    """One scrubbed line for an operator (stored with the run, logged, shown): a database
    error's first line after ``database``, our own errors as written, a bug with its class."""
    if _is_database_error(exc):
        # Driver messages are informative; SQLAlchemy's wrapper adds statements and parameters.
        orig = getattr(exc, "orig", None)
        text = str(orig if orig is not None else exc).strip().splitlines()
        return scrub_text(database + (text[0] if text else type(exc).__name__))
    if isinstance(exc, InventoryError):
        return scrub_text(str(exc))
    return scrub_text(f"{type(exc).__name__}: {exc}")  # a bug's message, stored and shown


def _is_database_error(exc: BaseException) -> bool:
    # Not an import of SQLAlchemy: `--help` and `config check` must not load it (start-up time).
    # If it was never imported, no error can be one of its.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)
