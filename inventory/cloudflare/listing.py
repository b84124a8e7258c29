"""Page through one MCP listing of one account: a "dumb" get that returns everything or raises.

No reshaping and no retries here (the client keeps those). ``result_info`` is not in Cloudflare's
spec, and an API may serve fewer items than ``per_page`` asks without saying so, so a short page
is not the end. A listing ends only where the data ends:

- an empty page;
- a page that repeats the previous one;
- the last of ``total_pages`` when ``result_info`` gives it, or a short page once the items listed
  reach its ``total_count``;
- a JSON error envelope with 400 or 404 for a page after a non-empty one (an API that refuses to
  page past its end, whether the last page was full or, served short without a word, not). Such
  a listing records how it ended (``end_error``); nothing proves it complete, so each of its
  deletion candidates is confirmed individually like any other, and no memo of it is kept.

``max_pages`` still guards against a listing that never ends. A listing that changed while it was
paged is still returned, marked ``consistent=False`` with the reasons, so the caller can keep it
from deleting anything. What a consistent-looking listing may still have missed (an item deleted
from an already-served page shifts the rest left by one) is caught by the caller, which confirms
every deletion through the detail routes before recording it (``inventory.cloudflare.confirm``).

Unchanged pages: given the digests of the pages a previous clean run read (``known``), a page
whose body is byte for byte the one read then is not decoded. A listing whose every page matches,
to the same last page, is returned ``unchanged``, its items still undecoded (``decoded()``
decodes them when the other listing of the account changed); at the first page that differs the
held pages are decoded and paging goes on as usual. The same bytes make the same decisions, so
an unchanged listing ends where it ended before (the terminal empty page is one of its pages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args
from urllib.parse import quote

from inventory.cloudflare.body import Page
from inventory.cloudflare.client import CloudflareClient, RequestStats
from inventory.cloudflare.deadline import Deadline
from inventory.errors import ApiError, BadResponseError, PagingError

__all__ = ["Endpoint", "Listing", "detail_path", "fetch_listing", "listing_path"]

Endpoint = Literal["portals", "servers"]
_MAX_PER_PAGE = 100
_MAX_REPORTED_REPEATS = 5  # a listing shifted by a whole page would otherwise list every id
_PAST_END_STATUSES = (400, 404)  # what an API may answer for a page past its last one


@dataclass(frozen=True)
class Listing:
    endpoint: Endpoint
    items: list[dict[str, Any]]  # raw, first-seen order, one per string id (id-less items kept)
    pages: int  # pages requested
    consistent: bool  # False if the listing changed while it was paged
    problems: tuple[str, ...]  # why it is not consistent, for an operator
    # How it was read (not what it says, so not compared):
    digests: tuple[str, ...] = field(default=(), compare=False)  # of each page body, in order
    per_page: int = field(default=_MAX_PER_PAGE, compare=False)
    held: tuple[Page, ...] = field(default=(), repr=False, compare=False)  # undecoded pages
    # Set when a 400/404 error envelope for a page after a non-empty one ended the listing.
    end_error: str | None = field(default=None, compare=False)

    @property
    def unchanged(self) -> bool:
        """Every page was byte for byte one a previous clean run read: ``items`` is not filled."""
        return bool(self.held)

    def decoded(self) -> Listing:
        """This listing with its items, decoding the pages an unchanged listing holds."""
        if not self.held:
            return self
        state = _Pages(self.endpoint)
        for number, page in enumerate(self.held, start=1):
            state.take(number, page.decoded(), per_page=self.per_page, what=self.endpoint)
        listing = state.listing(self.pages)
        return replace(listing, digests=self.digests, per_page=self.per_page)


def listing_path(account_id: str, endpoint: Endpoint) -> str:
    return f"/accounts/{quote(account_id, safe='')}/access/ai-controls/mcp/{endpoint}"


def detail_path(account_id: str, endpoint: Endpoint, entity_id: str) -> str:
    return f"{listing_path(account_id, endpoint)}/{quote(entity_id, safe='')}"


def fetch_listing(
    client: CloudflareClient,
    *,
    account_id: str,
    endpoint: Endpoint,
    headers: dict[str, str],
    credential_key: str,
    per_page: int = 100,
    max_pages: int = 1000,
    stats: RequestStats | None = None,
    on_page: Callable[[Endpoint, int, int], None] | None = None,
    known: Sequence[str] = (),
    deadline: Deadline | None = None,  # the account's: no request outlives it
) -> Listing:
    if endpoint not in get_args(Endpoint):
        raise ValueError(f"endpoint must be one of {get_args(Endpoint)}, not {endpoint!r}")
    if not 1 <= per_page <= _MAX_PER_PAGE or max_pages < 1:
        raise ValueError(f"need 1 <= per_page <= {_MAX_PER_PAGE} and max_pages >= 1")
    path = listing_path(account_id, endpoint)
    state = _Pages(endpoint)
    held: list[Page] = []  # pages matching ``known`` so far, not decoded yet
    digests: list[str] = []
    for page in range(1, max_pages + 1):
        expected = known[page - 1] if len(held) == page - 1 and page <= len(known) else None
        try:
            response = client.get_page(
                path,
                params={"page": page, "per_page": per_page},
                headers=headers,
                credential_key=credential_key,
                stats=stats,
                deadline=deadline,
            )
        except ApiError as exc:
            _decode_held(state, held, path=path, per_page=per_page)
            if not state.past_the_end(page, exc):
                raise
            listing = state.listing(page)
            return replace(listing, digests=tuple(digests), per_page=per_page, end_error=str(exc))
        digests.append(response.digest)
        what = f"{path}?page={page}"
        if response.digest == expected:  # the body read at this page last time: not decoded
            held.append(response)
            if on_page is not None:
                on_page(endpoint, page, 0)
            if page == len(known):
                return Listing(
                    endpoint=endpoint,
                    items=[],
                    pages=page,
                    consistent=True,
                    problems=(),
                    digests=tuple(digests),
                    per_page=per_page,
                    held=tuple(held),
                )
            continue
        _decode_held(state, held, path=path, per_page=per_page)  # the listing changed
        ended = state.take(page, response.decoded(), per_page=per_page, what=what)
        if on_page is not None:
            on_page(endpoint, page, len(state.items))
        if ended:
            return replace(state.listing(page), digests=tuple(digests), per_page=per_page)
    raise PagingError(
        f"the {endpoint} listing of account {account_id} did not end within {max_pages} pages of "
        f"{per_page}: Cloudflare kept sending full pages; raise max_pages if that many is real",
        url=path,
    )


def _decode_held(state: _Pages, held: list[Page], *, path: str, per_page: int) -> None:
    for number, earlier in enumerate(held, start=1):
        state.take(number, earlier.decoded(), per_page=per_page, what=f"{path}?page={number}")
    held.clear()


class _Pages:
    """What the pages read so far add up to, and whether the next page is needed."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.items: list[dict[str, Any]] = []
        self.first_page: dict[str, int] = {}  # id -> page it was first seen on
        self.repeats: list[str] = []
        self.problems: list[str] = []
        self.previous: list[object] | None = None
        self.total_count: int | None = None

    def past_the_end(self, page: int, exc: ApiError) -> bool:
        """Whether an error for ``page`` is an API refusing to page past its end."""
        return (
            page > 1
            and exc.status_code in _PAST_END_STATUSES
            and bool(exc.codes)  # a JSON error envelope, not an HTML page or a bare status
        )

    def take(self, page: int, envelope: dict[str, Any], *, per_page: int, what: str) -> bool:
        """Add one page; True when it was the last."""
        raw: list[object] = envelope["result"]
        info = envelope.get("result_info")
        info = info if isinstance(info, dict) else {}
        self._note_total(page, _count(info.get("total_count")))
        if not raw:
            return True
        result: list[dict[str, Any]] = []
        for n, item in enumerate(raw, start=1):
            if not isinstance(item, dict):
                raise BadResponseError(
                    f"item {n} on page {page} of {what} is not an object but {type(item).__name__}",
                    url=what,
                )
            result.append(item)
        signature = [item.get("id") if isinstance(item.get("id"), str) else item for item in result]
        if signature == self.previous:
            return True  # the API repeating its last page: the end, not more data
        self.previous = signature
        for item in result:
            self._add(page, item)
        # A server may serve fewer than asked without a word: a short page ends the listing only
        # when result_info says it is the last.
        total_pages = _count(info.get("total_pages"))
        if total_pages is not None:
            return page >= total_pages
        size = min(per_page, _count(info.get("per_page")) or per_page)
        total = self.total_count
        return len(result) < size and total is not None and len(self.items) >= total

    def _add(self, page: int, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if not isinstance(item_id, str):
            self.items.append(item)  # the caller rejects it, with the reason
            return
        first = self.first_page.get(item_id)
        if first is None:
            self.first_page[item_id] = page
            self.items.append(item)
        elif first == page:
            self.repeats.append(f"id {item_id} appeared twice on page {page}")
        else:
            self.repeats.append(f"id {item_id} appeared on pages {first} and {page}")

    def _note_total(self, page: int, total: int | None) -> None:
        if total is None:
            return
        if self.total_count is not None and total != self.total_count:
            self.problems.append(
                f"total_count changed from {self.total_count} to {total} before page {page}: "
                "the listing changed while it was paged"
            )
        self.total_count = total

    def listing(self, pages: int) -> Listing:
        problems = list(self.problems)
        if self.repeats:
            shown = "; ".join(self.repeats[:_MAX_REPORTED_REPEATS])
            more = len(self.repeats) - _MAX_REPORTED_REPEATS
            problems.insert(
                0,
                shown
                + (f" (and {more} more)" if more > 0 else "")
                + ": the listing changed while it was paged",
            )
        if self.total_count is not None and self.total_count != len(self.items):
            problems.append(
                f"Cloudflare reported total_count {self.total_count} but {len(self.items)} "
                "distinct items were listed"
            )
        return Listing(
            endpoint=self.endpoint,
            items=self.items,
            pages=pages,
            consistent=not problems,
            problems=tuple(problems),
        )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
