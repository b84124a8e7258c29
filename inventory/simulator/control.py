"""The unauthenticated ``/__simulator/...`` endpoints: drive a simulator in another process."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from inventory.simulator.api import Response
from inventory.simulator.catalog import dumps
from inventory.simulator.faults import Fault
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["CONTROL_PREFIX", "handle_control"]

CONTROL_PREFIX = "/__simulator/"

Handler = Callable[[SimulatedCloudflare, Mapping[str, str], bytes], Any]


def _advance(sim: SimulatedCloudflare, query: Mapping[str, str], _: bytes) -> Any:
    return sim.advance(int(query.get("steps", "1")))


def _churn(sim: SimulatedCloudflare, query: Mapping[str, str], _: bytes) -> Any:
    return {"changed": sim.churn(float(query.get("fraction", "0.01")))}


def _add_fault(sim: SimulatedCloudflare, _: Mapping[str, str], body: bytes) -> Any:
    try:
        data = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the fault is not JSON: {exc}") from None
    return dataclasses.asdict(sim.faults.add(Fault.from_json(data)))


def _release(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    return {"released": sim.faults.release()}


def _list_faults(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    return [dataclasses.asdict(f) for f in sim.faults.snapshot()]


def _clear_faults(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    cleared = len(sim.faults)
    sim.faults.clear()
    return {"cleared": cleared}


def _requests(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    records = list(sim.requests)
    return {
        "total": len(records),
        "by_status": dict(Counter(str(r.status) for r in records)),
        "by_endpoint": dict(Counter(r.endpoint or "other" for r in records)),
        "by_account": dict(Counter(r.account_id or "none" for r in records)),
    }


def _reset_requests(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    sim.clear_requests()
    return {"ok": True}


def _resync(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    return {"servers": sum(sim.resync_servers(a) for a in sim.account_ids)}


def _pass_time(sim: SimulatedCloudflare, query: Mapping[str, str], _: bytes) -> Any:
    minutes = float(query.get("minutes", "15"))
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    if "resync_every" in query:
        every = float(query["resync_every"])
        if every <= 0:
            raise ValueError("resync_every must be a positive number of minutes")
        sim.resync_every = timedelta(minutes=every)
    resynced = sim.pass_time(timedelta(minutes=minutes))
    return {"resynced": resynced, "now": sim.now.isoformat()}


def _accounts(sim: SimulatedCloudflare, _: Mapping[str, str], __: bytes) -> Any:
    return {"account_ids": sim.account_ids}


_ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "advance"): _advance,
    ("POST", "churn"): _churn,
    ("POST", "resync"): _resync,
    ("POST", "pass-time"): _pass_time,
    ("POST", "faults"): _add_fault,
    ("GET", "faults"): _list_faults,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "release"): _release,
    ("GET", "requests"): _requests,
    ("POST", "reset-requests"): _reset_requests,
    ("GET", "accounts"): _accounts,
}


def handle_control(
    sim: SimulatedCloudflare, method: str, path: str, query: Mapping[str, str], body: bytes
) -> Response:
    handler = _ROUTES.get((method, path.removeprefix(CONTROL_PREFIX).strip("/")))
    if handler is None:
        return Response(404, dumps({"error": f"no simulator control {method} {path}"}))
    try:
        result = handler(sim, query, body)
    except (ValueError, TypeError) as exc:
        return Response(400, dumps({"error": str(exc)}))
    return Response(
        201 if (method, path.rstrip("/")) == ("POST", "/__simulator/faults") else 200, dumps(result)
    )
