"""Deletions confirmed before they are recorded: each candidate asked about by its detail route.

A candidate is a stored portal, or a stored server ``/servers`` listed, that this run's listing
no longer shows. A listing can miss a live entity without a sign (an item deleted from an
already-served page shifts the rest left by one; a delete and a create keep ``total_count``), so
absence alone proves nothing. For each consistent listing with candidates:

1. above ``threshold`` candidates, the listing is read once more and the two intersected (an id
   the second reading shows is live, and the first reading hid it);
2. one probe per account and run: the detail of an id the listing just returned must answer
   200, which shows that the account, the token and the route are fine — a 404 for the account
   or the route must never read as "entity gone";
3. each candidate left: a 404 whose JSON envelope carries a not-found code
   (``client.NOT_FOUND_CODES``) confirms it gone; a 200 means the listing hid a live entity: it
   is kept (updated from the answer) and the listing counts as inconsistent, so nothing of its
   kind is deleted this run; anything else keeps the candidate and makes the run partial.

An inconsistent listing deletes nothing of its kind, so its candidates are not asked about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.cloudflare.client import CloudflareClient, Detail, RequestStats
from inventory.cloudflare.deadline import Deadline
from inventory.cloudflare.listing import Endpoint, Listing, detail_path

__all__ = ["Confirmation", "confirm_deletions", "listed_ids"]

_ENDPOINTS: tuple[Endpoint, ...] = ("portals", "servers")
_MAX_REPORTED = 5
_PROBES = 3  # listed ids tried in turn when the one probed was deleted since it was listed


@dataclass(slots=True)
class Confirmation:
    gone: dict[Endpoint, set[str]] = field(default_factory=lambda: {e: set() for e in _ENDPOINTS})
    found: dict[Endpoint, list[dict[str, Any]]] = field(
        default_factory=lambda: {e: [] for e in _ENDPOINTS}
    )
    kept: dict[Endpoint, set[str]] = field(default_factory=lambda: {e: set() for e in _ENDPOINTS})
    hid: set[Endpoint] = field(default_factory=set)  # listings that hid a live entity
    problems: list[str] = field(default_factory=list)
    requests: int = 0  # detail requests sent, the probe included (retries not counted)
    pages: int = 0  # pages of listings read again


def listed_ids(items: Iterable[dict[str, Any]]) -> set[str]:
    return {i for i in (item.get("id") for item in items) if isinstance(i, str)}


@dataclass
class _Asker:
    client: CloudflareClient
    account_id: str
    headers: dict[str, str]
    credential_key: str
    stats: RequestStats
    confirmation: Confirmation
    deadline: Deadline | None = None  # the account's: no detail request outlives it

    def ask(self, endpoint: Endpoint, entity_id: str) -> tuple[Detail, str]:
        path = detail_path(self.account_id, endpoint, entity_id)
        self.confirmation.requests += 1
        detail = self.client.get_detail(
            path,
            headers=self.headers,
            credential_key=self.credential_key,
            stats=self.stats,
            deadline=self.deadline,
        )
        got = detail.record.get("id") if detail.record is not None else entity_id
        if got != entity_id:
            return Detail("unknown", reason=f"GET {path} answered for id {got!r}"), path
        return detail, path


def confirm_deletions(
    client: CloudflareClient,
    *,
    account_id: str,
    headers: dict[str, str],
    credential_key: str,
    stats: RequestStats,
    listings: Mapping[Endpoint, Listing],
    candidates: Mapping[Endpoint, set[str]],
    threshold: int,
    reread: Callable[[Endpoint], Listing],
    check: Callable[[], None] = lambda: None,
    into: Confirmation | None = None,
    deadline: Deadline | None = None,
) -> Confirmation:
    """Sort each listing's candidates into gone, found (live) and kept (not confirmed).

    ``into``: the Confirmation to fill, so its counts survive an error half way."""
    done = into if into is not None else Confirmation()
    asker = _Asker(client, account_id, headers, credential_key, stats, done, deadline)
    left: dict[Endpoint, list[str]] = {}
    for endpoint in _ENDPOINTS:
        ids = set(candidates.get(endpoint, ()))
        if not ids or not listings[endpoint].consistent:
            continue
        if len(ids) > threshold:
            ids = _intersect(done, endpoint, ids, reread(endpoint), threshold)
        if ids and endpoint not in done.hid:
            left[endpoint] = sorted(ids)
    if not left:
        return done
    if not _probe(asker, listings, first=next(iter(left))):
        for endpoint, unconfirmed in left.items():
            done.kept[endpoint].update(unconfirmed)
        return done
    for endpoint, to_confirm in left.items():
        _confirm(asker, endpoint, to_confirm, check)
    return done


def _intersect(
    done: Confirmation, endpoint: Endpoint, ids: set[str], again: Listing, threshold: int
) -> set[str]:
    done.pages += again.pages
    hidden = ids & listed_ids(again.items)
    if hidden:
        done.found[endpoint].extend(i for i in again.items if i.get("id") in hidden)
        done.hid.add(endpoint)
        done.problems.append(
            f"{len(hidden)} of the {len(ids)} {endpoint} missing from the listing (more than "
            f"confirm_threshold = {threshold}) were in a second reading of it: the listing "
            "changed while it was paged"
        )
    return ids - hidden


def _probe(asker: _Asker, listings: Mapping[Endpoint, Listing], *, first: Endpoint) -> bool:
    """One detail request for an id just listed: is a 404 from this route worth believing?"""
    order = (first, *(e for e in _ENDPOINTS if e != first))
    for endpoint in order:
        tries = sorted(listed_ids(listings[endpoint].items))[:_PROBES]
        for n, entity_id in enumerate(tries, start=1):
            detail, path = asker.ask(endpoint, entity_id)
            if detail.state == "found":
                return True
            if detail.state == "gone" and n < len(tries):
                continue  # deleted since it was listed: that proves nothing either way
            asker.confirmation.problems.append(
                f"deletions not confirmed: {endpoint[:-1]} {entity_id}, which the listing "
                f"just returned, did not come back from GET {path} ({detail.reason}); "
                "nothing missing from the listing was deleted"
            )
            return False
    asker.confirmation.problems.append(
        "deletions not confirmed: both listings are empty, so no listed id could show that the "
        "detail routes answer for this account; nothing missing from the listing was deleted"
    )
    return False


def _confirm(asker: _Asker, endpoint: Endpoint, ids: list[str], check: Callable[[], None]) -> None:
    done = asker.confirmation
    unknown: list[str] = []
    for n, entity_id in enumerate(ids):
        check()
        detail, path = asker.ask(endpoint, entity_id)
        if detail.state == "gone":
            done.gone[endpoint].add(entity_id)
        elif detail.state == "found" and detail.record is not None:
            done.found[endpoint].append(detail.record)
            done.hid.add(endpoint)
            done.problems.append(
                f"{endpoint[:-1]} {entity_id} was missing from the listing but GET {path} "
                "answered 200: the listing hid a live entity, so it was kept (updated from that "
                "answer) and nothing else missing from this listing was deleted"
            )
            done.kept[endpoint].update(ids[n + 1 :])  # nothing of this kind goes this run
            break
        else:
            done.kept[endpoint].add(entity_id)
            unknown.append(f"{entity_id} ({detail.reason})")
    if unknown:
        shown = "; ".join(unknown[:_MAX_REPORTED])
        more = len(unknown) - _MAX_REPORTED
        done.problems.append(
            f"could not confirm that {len(unknown)} {endpoint} missing from the listing are "
            f"gone, so they were kept: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
