"""A batch of events → the request's body and headers (pure).

``json``: ``{"ids": [...], "events": [...]}``, each event as docs/notifications.md describes it.
``slack``: ``{"text": ...}``, one line per event, for a Slack incoming webhook (or anything that
reads the same shape). Either way the body is signed when the target has a secret::

    X-Inventory-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the secret>

and ``Idempotency-Key`` is the event's own ``id`` when the request carries one event, else the
batch's id; either is the same on every attempt (a crash included). ``X-Inventory-Event-Ids``
always lists the ids of the request's events: a receiver drops the ones it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SIGNATURE_HEADER", "request_for", "sign", "slack_line"]

SIGNATURE_HEADER = "X-Inventory-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _name(entity: Mapping[str, Any]) -> str:
    name = entity.get("name")
    return f"{name} ({entity.get('id')})" if name else str(entity.get("id"))


def slack_line(event: Mapping[str, Any]) -> str:
    account = event.get("account") or {}
    where = account.get("name") or account.get("id") or ""
    kind = str(event.get("type"))
    entity = event.get("entity") or {}
    if kind.startswith("exposure."):
        verb = "now reachable" if kind == "exposure.added" else "no longer reachable"
        portal, server = entity.get("portal") or {}, entity.get("server") or {}
        text = (
            f"{entity.get('kind')} `{entity.get('name')}` of server {_name(server)} is {verb} "
            f"through portal {_name(portal)}"
        )
    elif kind == "server.status_changed":
        status = (event.get("changes") or {}).get("status") or {}
        error = ((event.get("changes") or {}).get("error") or {}).get("new")
        text = f"server {_name(entity)}: {status.get('old')} → {status.get('new')}" + (
            f" ({error})" if error else ""
        )
    elif kind == "sync.failed":
        text = f"{event.get('failed_runs')} syncs in a row failed: {event.get('error')}"
    elif kind == "sync.recovered":
        text = f"syncing again after {event.get('failed_runs')} failed runs"
    elif kind == "sync.first":
        counts = event.get("counts") or {}
        text = "first sync: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    elif kind == "notify.test":
        text = "test notification from inventory"
    else:
        changed = ", ".join(sorted(event.get("changes") or {}))
        text = f"{kind} {_name(entity)}" + (f": {changed}" if changed else "")
    return f"*{kind}* " + (f"[{where}] " if where else "") + text


def request_for(
    events: Sequence[Mapping[str, Any]],
    *,
    batch_id: str,
    fmt: str,
    secret: str | None,
    user_agent: str = "inventory",
) -> tuple[bytes, dict[str, str]]:
    ids = [str(e["id"]) for e in events]
    document: dict[str, Any]
    if fmt == "slack":
        document = {"text": "\n".join(slack_line(e) for e in events)}
    else:
        document = {"ids": ids, "events": list(events)}
    body = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        # one event: its own id, so a re-sent event is known by the id it had (a batch refused
        # and sent again one event at a time included); several: the batch's id
        "Idempotency-Key": ids[0] if len(ids) == 1 else batch_id,
        "X-Inventory-Event-Ids": ",".join(ids),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return body, headers
