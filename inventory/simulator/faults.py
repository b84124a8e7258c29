"""Scripted misbehaviour of the simulated API.

A ``Fault`` matches requests by account, endpoint and page (``None`` matches anything) and fires
``times`` times (``None``: forever). The first matching fault in insertion order wins; only one
fault applies to a request. A fault applies to listing requests unless ``detail`` is set: then
only to detail requests (``GET …/portals/{id}``, ``…/servers/{id}``), of ``entity_id`` if given.

Kinds::

    status            answer `status` with an error envelope (Retry-After or only Ratelimit)
    delay             sleep `seconds`, then answer normally
    hold              wait until released (``FaultSet.release``), `seconds` at most, then answer
    stall             send headers and half the body, sleep `seconds`, close
    truncate          promise the full Content-Length, send part of the body, close
    html              520 with an HTML error page
    success_false     200 whose envelope says success false
    empty_body        200 with an empty body
    repeat_last_page  a page past the end repeats the last non-empty page (fires only past the end)
    drift_insert      a new item appears at the start of the listing just before the page is served
    drift_remove      the first item of the listing disappears just before the page is served: on
                      page 2 or later, a delete on an already-served page (the rest shift left)
    drift_swap        as drift_remove, and a new item is created at the end: total_count stays
    invalid_record    the page's first item breaks the schema as `violation` says
    page_cap          at most `cap` items a page whatever per_page asks, without a word (pages go
                      by `cap`; result_info, when on, echoes the per_page asked)
    past_end_error    a page past the end answers `status` (400 or 404) with an error envelope
                      (fires only past the end)
    account_404       404 with Cloudflare's "could not route to the account" error (7003)
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["Endpoint", "Fault", "FaultKind", "FaultSet", "Violation", "corrupt_record"]

FaultKind = Literal[
    "status",
    "delay",
    "hold",
    "stall",
    "truncate",
    "html",
    "success_false",
    "empty_body",
    "repeat_last_page",
    "drift_insert",
    "drift_remove",
    "drift_swap",
    "invalid_record",
    "page_cap",
    "past_end_error",
    "account_404",
]
Violation = Literal["missing_id", "wrong_type", "bad_enum", "long_string"]
Endpoint = Literal["portals", "servers"]


@dataclass
class Fault:
    kind: FaultKind
    account_id: str | None = None
    endpoint: Endpoint | None = None
    page: int | None = None
    times: int | None = None
    status: int = 500
    retry_after: float | None = None
    ratelimit_headers: bool = False
    seconds: float = 1.0
    violation: Violation = "missing_id"
    cap: int = 20
    detail: bool = False
    entity_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.endpoint not in (None, *get_args(Endpoint)):
            raise ValueError(f"unknown endpoint {self.endpoint!r}")
        if self.violation not in get_args(Violation):
            raise ValueError(f"unknown violation {self.violation!r}")
        if self.kind == "past_end_error" and self.status not in (400, 404):
            raise ValueError("a past_end_error fault answers status 400 or 404")
        if self.cap < 1:
            raise ValueError("cap must be at least 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")
        self.released = threading.Event()  # not a field: a "hold" waits on it

    def wait_released(self) -> bool:
        """A "hold": block until released, ``seconds`` at most; True if released."""
        return self.released.wait(self.seconds)

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def matches(
        self, account_id: str, endpoint: str, page: int | None, entity_id: str | None = None
    ) -> bool:
        if (entity_id is not None) != self.detail:
            return False
        return (
            self.account_id in (None, account_id)
            and self.endpoint in (None, endpoint)
            and self.page in (None, page)
            and self.entity_id in (None, entity_id)
        )


class FaultSet:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def release(self) -> int:
        """Let every request a "hold" fault holds (and will hold) through; removes them."""
        with self._lock:
            holds = [f for f in self._faults if f.kind == "hold"]
            self._faults = [f for f in self._faults if f.kind != "hold"]
        for fault in holds:
            fault.released.set()
        return len(holds)

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def snapshot(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(
        self,
        account_id: str,
        endpoint: str,
        page: int | None,
        *,
        past_end: bool,
        entity_id: str | None = None,
    ) -> Fault | None:
        """The fault for this request, if any; ``entity_id`` for a detail request."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(account_id, endpoint, page, entity_id):
                    continue
                if fault.kind in ("repeat_last_page", "past_end_error") and not past_end:
                    continue
                if fault.kind == "past_end_error" and page == 1:
                    continue  # an empty listing's first page is empty, not past the end
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None


def corrupt_record(record: dict[str, Any], violation: Violation) -> None:
    if violation == "missing_id":
        record.pop("id", None)
    elif violation == "wrong_type":
        record["name"] = 12345
    elif violation == "bad_enum":
        # servers have `status`; portals' only top-level enum is `code_mode`
        record["status" if "auth_type" in record else "code_mode"] = "exploded"
    else:
        record["name"] = "x" * 100_000
