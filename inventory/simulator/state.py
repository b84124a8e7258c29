"""The stateful fake of Cloudflare's MCP portal inventory: accounts, reads and listing pages.

Accounts are generated on first use from the seed and their index. The mutations (``mutations.py``)
drop an account's cached pages and the serialized bytes of what they touch; everything else keeps
its bytes, so an unchanged account lists byte-identical pages.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from inventory.simulator import activity
from inventory.simulator.entities import AccountState
from inventory.simulator.faults import FaultSet
from inventory.simulator.generate import Shape, base_time, build_account
from inventory.simulator.mutations import SERVER_STATUSES, Mutations
from inventory.simulator.pages import PageCache, success_body
from inventory.simulator.ratelimit import RateLimiter

__all__ = ["SERVER_STATUSES", "RequestRecord", "SimulatedCloudflare", "UnknownAccountError"]


class UnknownAccountError(KeyError):
    """The account id is not one the simulator serves."""


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int
    account_id: str | None
    endpoint: str | None  # 'portals' | 'servers' | None
    page: int | None
    per_page: int | None
    auth: str | None  # 'bearer' | 'key' | None
    entity_id: str | None = None  # a detail request's id (GET …/portals/{id})
    time: float = field(default_factory=time.time)


class SimulatedCloudflare(Mutations):
    def __init__(
        self,
        *,
        seed: int = 1,
        accounts: int = 3,
        portals_per_account: int = 5,
        servers_per_account: int = 8,
        servers_per_portal: int = 3,
        tools_per_server: int = 4,
        prompts_per_server: int = 2,
        unattached_per_account: int = 2,
        api_token: str = "sim-token",  # noqa: S107 - the fake's well-known credential
        api_email: str = "sim@example.com",
        api_key: str = "sim-key",
        result_info: bool = True,
        rate_limit: tuple[int, float] | None = None,
        portal_only_per_account: int = 0,
        resync_every: timedelta | None = None,
    ) -> None:
        self.seed = seed
        self.shape = Shape(
            portals=portals_per_account,
            servers=servers_per_account,
            servers_per_portal=servers_per_portal,
            tools=tools_per_server,
            prompts=prompts_per_server,
            unattached=unattached_per_account,
        )
        self.account_ids = [_account_id(seed, i) for i in range(accounts)]
        self.api_token, self.api_email, self.api_key = api_token, api_email, api_key
        self.result_info = result_info
        # servers (of those attached to portals) that /servers does not list in each new account
        self.portal_only_per_account = portal_only_per_account
        # (requests, window seconds) per credential; None: tracked for headers, never enforced
        self.rate_limit = rate_limit
        # Cloudflare re-syncing every server this often, as pass_time() moves the clock
        self.resync_every = resync_every
        self.limiter = RateLimiter()  # every credential's window, shared by all the servers
        # Which rate-limit headers answers carry: the IETF draft's ``Ratelimit`` and
        # ``Ratelimit-Policy`` (Cloudflare's), the older ``x-ratelimit-*``, or none at all.
        self.ratelimit_headers: Literal["ietf", "x", "none"] = "ietf"
        # Seconds the server's clock is ahead of this machine's (the ``Date`` of every answer).
        self.clock_skew = 0.0
        # Tokens besides ``api_token``: valid, but with or without MCP Portals Read.
        self._tokens: dict[str, bool] = {}
        self.faults = FaultSet()
        self.requests: list[RequestRecord] = []
        self.pages = PageCache()
        self._index = {account_id: i for i, account_id in enumerate(self.account_ids)}
        self._accounts: dict[str, AccountState] = {}
        self._raw: dict[tuple[str, str], list[bytes]] = {}  # set_listing's serialized items
        self._lock = threading.RLock()
        self._clock = base_time(seed) + timedelta(hours=1)
        self._mutations = 0
        self._log_lock = threading.Lock()
        # advance() and churn() draw from their own generator; explicit mutations never touch it
        self.rng = random.Random(f"inventory-simulator-activity:{seed}")

    # --- accounts and reads -------------------------------------------------------------------

    def has_account(self, account_id: str) -> bool:
        return account_id in self._index

    def _account(self, account_id: str) -> AccountState:
        acct = self._accounts.get(account_id)
        if acct is None:
            if account_id not in self._index:
                raise UnknownAccountError(account_id)
            with self._lock:
                acct = self._accounts.get(account_id)
                if acct is None:
                    index = self._index[account_id]
                    acct = build_account(account_id, index, seed=self.seed, shape=self.shape)
                    attached = sorted(
                        {li.server_id for p in acct.portals.values() for li in p.links}
                    )
                    acct.hidden.update(attached[: self.portal_only_per_account])
                    self._accounts[account_id] = acct
        return acct

    def is_revoked(self, account_id: str) -> bool:
        return self._account(account_id).revoked

    def set_listing(self, account_id: str, endpoint: str, items: Sequence[Any] | None) -> None:
        """Serve exactly ``items`` (any JSON values, valid records or not) as the account's
        listing of ``endpoint``, in place of its entities, through the same paging, envelopes,
        auth and faults. ``None`` serves the entities again."""
        with self._lock:
            self._account(account_id)  # an unknown account raises
            if items is None:
                self._raw.pop((account_id, endpoint), None)
            else:
                self._raw[account_id, endpoint] = [
                    json.dumps(item, ensure_ascii=True, separators=(",", ":")).encode()
                    for item in items
                ]
            self.pages.drop_account(account_id)

    def add_token(self, token: str, *, portals_read: bool = True) -> None:
        """Another valid API token; one without MCP Portals Read gets Cloudflare's 403 for any
        listing, the very answer a revoked or unknown token gets."""
        self._tokens[token] = portals_read

    def token_permitted(self, token: str) -> bool | None:
        """None: not a token this server knows; else whether it may list MCP resources."""
        if token == self.api_token:
            return True
        return self._tokens.get(token)

    def count(self, account_id: str, endpoint: str) -> int:
        with self._lock:
            raw = self._raw.get((account_id, endpoint))
            return len(raw) if raw is not None else self._account(account_id).count(endpoint)

    def _pieces(self, account_id: str, endpoint: str, start: int, stop: int) -> list[bytes]:
        raw = self._raw.get((account_id, endpoint))
        if raw is None:
            return self._account(account_id).page_pieces(endpoint, start, stop)
        pieces: list[bytes] = []
        for item in raw[start:stop]:
            pieces += [item, b","]
        return pieces[:-1]

    def _listing(self, account_id: str, endpoint: str) -> list[dict[str, Any]]:
        with self._lock:
            pieces = self._pieces(account_id, endpoint, 0, self.count(account_id, endpoint))
        # decoding the served bytes gives deep copies that are exactly what the API would list
        result: list[dict[str, Any]] = json.loads(b"".join([b"[", *pieces, b"]"]))
        return result

    def portals(self, account_id: str) -> list[dict[str, Any]]:
        return self._listing(account_id, "portals")

    def servers(self, account_id: str) -> list[dict[str, Any]]:
        return self._listing(account_id, "servers")

    def portal_ids(self, account_id: str) -> list[str]:
        with self._lock:
            return [p.id for p in self._account(account_id).ordered_portals()]

    def deleted_portal_ids(self, account_id: str) -> list[str]:
        with self._lock:
            return list(self._account(account_id).deleted)

    def server_ids(self, account_id: str) -> list[str]:
        with self._lock:
            return [s.id for s in self._account(account_id).ordered_servers()]

    def listed_server_ids(self, account_id: str) -> list[str]:
        """The servers ``/servers`` lists (all but those only portals show)."""
        with self._lock:
            return [s.id for s in self._account(account_id).listed_servers()]

    def portal_server_ids(self, account_id: str, portal_id: str) -> list[str]:
        with self._lock:
            acct = self._account(account_id)
            return [
                li.server_id for li in acct.portal(portal_id).links if li.server_id in acct.servers
            ]

    def unattached_server_ids(self, account_id: str) -> list[str]:
        with self._lock:
            acct = self._account(account_id)
            used = {li.server_id for p in acct.portals.values() for li in p.links}
            return [s.id for s in acct.ordered_servers() if s.id not in used]

    def tool_names(self, account_id: str, server_id: str) -> list[str]:
        with self._lock:
            return [t["name"] for t in self._account(account_id).server(server_id).tools]

    def prompt_names(self, account_id: str, server_id: str) -> list[str]:
        with self._lock:
            return [p["name"] for p in self._account(account_id).server(server_id).prompts]

    def page_body(
        self,
        account_id: str,
        endpoint: str,
        page: int,
        per_page: int,
        *,
        repeat_last: bool = False,
        cap: int | None = None,
    ) -> bytes:
        """A listing page; with ``cap``, at most that many items a page whatever ``per_page``
        asks (pages then go by ``cap``), ``result_info`` still echoing the ``per_page`` asked."""
        size = min(per_page, cap) if cap is not None else per_page
        with self._lock:
            acct = self._account(account_id)
            total = self.count(account_id, endpoint)
            pages = math.ceil(total / size)
            source = pages if repeat_last and page > pages > 0 else page
            raw = (account_id, endpoint) in self._raw
            key = (
                acct.id,
                acct.version,
                endpoint,
                source,
                page,
                per_page,
                cap,
                self.result_info,
                raw,
            )
            body = self.pages.get(key)
            if body is not None:
                return body
            start = (source - 1) * size
            pieces = self._pieces(account_id, endpoint, start, start + size)
        info = None
        if self.result_info:
            count = max(0, min(size, total - start))
            info = {"page": page, "per_page": per_page, "count": count, "total_count": total}
            info["total_pages"] = pages
        body = success_body(pieces, info)
        self.pages.put(key, body)
        return body

    def detail_body(self, account_id: str, endpoint: str, entity_id: str) -> bytes | None:
        """What ``GET …/{endpoint}/{id}`` answers with 200, or None for its 404."""
        with self._lock:
            pieces = self._account(account_id).detail_pieces(endpoint, entity_id)
        return None if pieces is None else success_body(pieces, None, single=True)

    # --- request log --------------------------------------------------------------------------

    def record(self, entry: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(entry)

    def clear_requests(self) -> None:
        with self._log_lock:
            self.requests.clear()

    # --- random activity ----------------------------------------------------------------------

    def advance(self, steps: int = 1) -> list[str]:
        with self._lock:
            return [activity.random_mutation(self) for _ in range(steps)]

    def churn(self, fraction: float) -> int:
        with self._lock:
            return sum(activity.churn_account(self, a, fraction) for a in self.account_ids)


def _account_id(seed: int, index: int) -> str:
    return hashlib.sha256(f"inventory-simulator:{seed}:{index}".encode()).hexdigest()[:32]
