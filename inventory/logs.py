"""Structured logging: JSON lines off a terminal, readable lines on one.

Whatever the format or level, a logged exception shows its type, its message and its frames
(file, line, function), never local variables: a frame's locals hold request headers and
credentials. Every event then passes ``inventory.redaction.scrub_event`` before it is rendered,
the last line of defence against a secret that reached a message anyway.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Literal

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from inventory.redaction import scrub_event

__all__ = ["configure_logging", "exception_frames", "format_exception", "logging_configured"]

LogFormat = Literal["auto", "json", "console"]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_TRANSFORMER = ExceptionDictTransformer(show_locals=False)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured.

    Test runners and embedding programs swap stderr; a logger holding the old one would write
    to a closed stream.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _exc_info(value: object) -> ExcInfo | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


def _without_locals(stacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for stack in stacks:
        for frame in stack.get("frames", []):
            frame.pop("locals", None)
        for group in stack.get("exceptions", []):
            _without_locals(group if isinstance(group, list) else group.get("stacks", []))
    return stacks


def exception_frames(exc_info: ExcInfo) -> list[dict[str, Any]]:
    """The exception and its causes: type, message, notes and frames (file, line, function)."""
    return _without_locals(_TRANSFORMER(exc_info))


def format_exception(exc_info: ExcInfo) -> str:
    """``exception_frames`` as text, outermost exception first; no source lines, no locals."""
    lines: list[str] = []
    for index, stack in enumerate(exception_frames(exc_info)):
        if index:
            lines.append("caused by:" if stack.get("is_cause") else "while handling:")
        lines.append("Traceback (most recent call last):")
        lines.extend(
            f'  File "{f["filename"]}", line {f["lineno"]}, in {f["name"]}'
            for f in stack.get("frames", [])
        )
        message = stack["exc_value"]
        lines.append(f"{stack['exc_type']}: {message}" if message else stack["exc_type"])
        lines.extend(f"  note: {note}" for note in stack.get("exc_notes", []))
    return "\n".join(lines)


def _render_exception(*, as_text: bool) -> structlog.types.Processor:
    def render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
        exc_info = _exc_info(event_dict.pop("exc_info", None))
        if exc_info is not None:
            event_dict["exception"] = (
                format_exception(exc_info) if as_text else exception_frames(exc_info)
            )
        return event_dict

    return render


def _plain_traceback(sio: Any, exc_info: ExcInfo) -> None:
    """ConsoleRenderer's formatter, for an exception that reached it unrendered: no locals."""
    sio.write("\n" + format_exception(exc_info))


_CONFIGURED = threading.Event()


def logging_configured() -> bool:
    """Whether ``configure_logging`` ran in this process."""
    return _CONFIGURED.is_set()


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog and the standard library (SQLAlchemy, Alembic, httpx) to stderr."""
    _CONFIGURED.set()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_plain_traceback
        )
    )
    # Exceptions become text first, so that the scrubber sees their messages.
    tail = [_render_exception(as_text=not use_json), scrub_event, renderer]
    structlog.configure(
        processors=[*shared, structlog.dev.set_exc_info, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    # httpx logs every request with its URL at INFO; our own lines say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler's warnings are sentences about job names ("Execution of job … skipped: …");
    # the daemon's own lines ("sync skipped", account_id=…) say the same in our terms.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
