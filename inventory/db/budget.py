"""The shared rate-limit budget (``inventory.ratebudget.BudgetStore``) in PostgreSQL.

One row per credential fingerprint in ``rate_limit_budgets``, holding the window as a log of
batches: when each batch handed out stops counting (its reservation, plus the window, plus the
time to send it) and how many slots it holds. A batch is one statement: the row is locked
(``FOR UPDATE``), batches that stopped counting are dropped, slots of an earlier batch that were
never sent are given back, what the server reported beyond our count is booked, and up to the
slots asked are granted from what is left. Times are the database's clock, so replicas' clocks
need not agree.

Why a log of batches, not one fixed window: the server keeps a sliding window from each
request's arrival, so a slot used late in one fixed window would still count when the next
window's burst arrives; each batch here frees its slots exactly one span after it was granted.
A process that dies therefore holds nothing longer than one span: the window and two ``hold``
times (inventory/ratelimit.py, ``SharedRateLimiter``).

Which process gets the slots: each ask carries the ranks of the waiting requests it is for
(the daemon's: their accounts' last success), each with an equal share of the slots asked; the
requests left wanting are recorded as waiters (``waiter_*``) until a short expiry, replaced each
time their process asks again. Slots that an older request waiting elsewhere still wants are
held back for it: requests are served oldest first across the replicas, as they are within
one, not in the order their processes happen to ask. A waiter's entry is what its process
hands out: unpaced, the granted slots go one each to the waiting requests, oldest first, so an
entry is one slot for each request the grant did not reach (a request served by its process's
batch leaves none behind, to hold slots back for nothing); paced, each request takes its whole
share. A process that stops asking holds nothing back once its entries expire.

Paced asks (the daemon's accounts are overdue: the budget did not cover a cycle) are granted at
most half the budget per half span, so that the slots, and the syncs they serve, come at an
even pace rather than in one burst per window: syncs in one burst per span leave an account
2 or 3 whole spans apart, and 3 spans (each longer than the window) can be a cycle too many.
And they are granted whole shares (a sync's request and its next), but for what the asker gives
back in the same ask (a sync's next request that missed its lease takes its slot again): a sync
split between two half spans ends half a span late.
"""

from __future__ import annotations

import math

from sqlalchemy import Engine, text

from inventory.ratebudget import BudgetAsk, BudgetGrant

__all__ = ["PostgresBudgetStore"]

_CREATE = text(
    "INSERT INTO rate_limit_budgets (credential_key, batch_ends, batch_slots, slots_used) "
    "VALUES (:key, '{}', '{}', 0) ON CONFLICT DO NOTHING"
)

_RESERVE = text(
    """
WITH n AS (SELECT clock_timestamp() AS t),
cur AS (
    SELECT b.credential_key, b.batch_ends, b.batch_slots,
           b.waiter_ids, b.waiter_ranks, b.waiter_slots, b.waiter_ends
    FROM rate_limit_budgets b
    WHERE b.credential_key = :key
    FOR UPDATE
),
kept AS (
    SELECT e.ends,
           CASE WHEN e.ends = CAST(:window AS timestamptz)
                THEN GREATEST(e.slots - :give_back, 0) ELSE e.slots END AS slots
    FROM cur, n, unnest(cur.batch_ends, cur.batch_slots) AS e(ends, slots)
    WHERE e.ends > n.t
),
extra AS (
    -- what the server counted beyond us counts until a span after it was counted
    SELECT n.t + make_interval(secs => :span - :server_used_age) AS ends,
           GREATEST(:server_used - (SELECT COALESCE(sum(slots), 0) FROM kept), 0) AS slots
    FROM n
    WHERE :server_used_age < :span
    UNION ALL
    SELECT n.t + make_interval(secs => :blocked), :limit FROM n WHERE :blocked > 0
),
live AS (
    SELECT ends, slots FROM kept WHERE slots > 0
    UNION ALL
    SELECT ends, slots FROM extra WHERE slots > 0
),
others AS (
    -- the requests waiting in other processes (and in this one, if it only gives back)
    SELECT w.id, w.rank, w.slots, w.ends
    FROM cur, n,
         unnest(COALESCE(cur.waiter_ids, '{}'), COALESCE(cur.waiter_ranks, '{}'),
                COALESCE(cur.waiter_slots, '{}'), COALESCE(cur.waiter_ends, '{}'))
             AS w(id, rank, slots, ends)
    WHERE w.ends > n.t AND (w.id <> :waiter OR :want = 0)
),
mine AS (
    -- the requests this batch is for, lowest rank first, each with its share of the slots
    SELECT m.rank, m.i, m.slots, sum(m.slots) OVER (ORDER BY m.rank, m.i) AS upto
    FROM unnest(CAST(:ranks AS float8[]), CAST(:shares AS int[]))
         WITH ORDINALITY AS m(rank, slots, i)
),
sums AS (
    SELECT (SELECT COALESCE(sum(slots), 0) FROM live) AS used,
           -- granted in the last half span (they end more than half a span from now)
           (SELECT COALESCE(sum(l.slots), 0) FROM live l, n
            WHERE l.ends > n.t + make_interval(secs => :span / 2)) AS recent
),
fits AS (
    -- what is free for each request once the older ones, here and elsewhere, had theirs
    SELECT COALESCE(sum(GREATEST(LEAST(
               m.slots,
               :limit - sums.used - (m.upto - m.slots)
                   - (SELECT COALESCE(sum(o.slots), 0) FROM others o WHERE o.rank < m.rank)
           ), 0)), 0) AS slots
    FROM mine m, sums
),
free AS (
    SELECT GREATEST(LEAST(
               :want,
               fits.slots,
               CASE WHEN :paced THEN :half - sums.recent ELSE :want END  -- paced: half per half
           ), 0) AS slots
    FROM sums, fits
),
calc AS (
    SELECT n.t,
           CASE WHEN :paced  -- whole shares (a sync's request and its next), or what it gave back
                THEN GREATEST(LEAST(free.slots, :give_back),
                              (SELECT COALESCE(max(m.upto), 0) FROM mine m
                               WHERE m.upto <= free.slots))
                ELSE free.slots END AS granted,
           n.t + make_interval(secs => :span) AS grant_ends,
           GREATEST(
               CASE WHEN sums.used < :limit AND fits.slots > 0 THEN n.t
                    -- what is free is held back for older requests elsewhere: the next slot
                    -- for this ask is the next one to end
                    WHEN sums.used < :limit THEN COALESCE((SELECT min(ends) FROM live), n.t)
                    ELSE (SELECT min(l.ends) FROM live l  -- when a slot is free again
                          WHERE (SELECT COALESCE(sum(m.slots), 0) FROM live m
                                 WHERE m.ends > l.ends) < :limit) END,
               CASE WHEN NOT :paced OR sums.recent < :half THEN n.t
                    ELSE (SELECT min(l.ends) FROM live l  -- when the pace allows one again
                          WHERE l.ends > n.t + make_interval(secs => :span / 2))
                         - make_interval(secs => :span / 2) END
           ) AS first_end
    FROM n, sums, fits, free
),
batches AS (
    SELECT ends, slots FROM live
    UNION ALL
    SELECT grant_ends, granted FROM calc WHERE granted > 0
),
waiting AS (
    SELECT id, rank, slots, ends FROM others
    UNION ALL
    -- this batch's requests that the grant does not cover wait, as the asker hands the slots
    -- out: paced, each request's share (its sync's next request is kept for it); otherwise one
    -- slot each, to the waiting requests oldest first (so no entry outlives its request)
    SELECT :waiter, m.rank,
           CASE WHEN :paced
                THEN m.slots - LEAST(m.slots, GREATEST(calc.granted - (m.upto - m.slots), 0))
                ELSE 1 END,
           calc.t + make_interval(secs => :waiter_for)
    FROM mine m, calc
    WHERE :waiter <> '' AND CASE WHEN :paced THEN m.upto > calc.granted ELSE m.i > calc.granted END
),
wagg AS (
    SELECT array_agg(id ORDER BY rank) AS ids, array_agg(rank ORDER BY rank) AS ranks,
           array_agg(slots::int ORDER BY rank) AS slots, array_agg(ends ORDER BY rank) AS ends
    FROM waiting
),
agg AS (
    SELECT COALESCE(array_agg(ends ORDER BY ends), '{}') AS ends,
           COALESCE(array_agg(slots::int ORDER BY ends), '{}') AS slots,
           COALESCE(sum(slots), 0)::int AS used
    FROM batches
)
UPDATE rate_limit_budgets b
SET batch_ends = agg.ends, batch_slots = agg.slots, slots_used = agg.used,
    waiter_ids = wagg.ids, waiter_ranks = wagg.ranks, waiter_slots = wagg.slots,
    waiter_ends = wagg.ends
FROM agg, wagg, calc, cur
WHERE b.credential_key = cur.credential_key
RETURNING calc.granted, b.slots_used,
          COALESCE(EXTRACT(EPOCH FROM calc.first_end - calc.t), 0), calc.grant_ends
"""
)


class PostgresBudgetStore:
    """``BudgetStore`` on PostgreSQL: one round trip per batch (one more per new credential)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the shared rate-limit budget needs PostgreSQL")
        # One statement is atomic on its own: autocommit spares BEGIN and COMMIT round trips.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._known: set[str] = set()

    def __repr__(self) -> str:
        return "PostgresBudgetStore()"

    def reserve(self, credential_key: str, ask: BudgetAsk) -> BudgetGrant:
        ranks, shares = _shares(ask)
        params = {
            "key": credential_key,
            "want": ask.slots,
            "limit": ask.limit,
            "span": ask.span,
            "server_used": ask.server_used,
            "server_used_age": ask.server_used_age,
            "blocked": ask.blocked_for,
            "window": ask.window,
            "give_back": ask.give_back,
            "waiter": ask.waiter,
            "ranks": ranks,
            "shares": shares,
            "waiter_for": ask.waiter_for,
            "paced": ask.paced,
            "half": (ask.limit + 1) // 2,
        }
        with self._engine.connect() as conn:
            if credential_key not in self._known:
                conn.execute(_CREATE, params)
            granted, used, wait, window = conn.execute(_RESERVE, params).one()
        self._known.add(credential_key)
        return BudgetGrant(
            slots=int(granted), used=int(used), wait=max(float(wait), 0.0), window=window
        )


def _shares(ask: BudgetAsk) -> tuple[list[float], list[int]]:
    """The requests a batch is for (unranked ones, a slot each, if none is said) and their
    shares of it: equal, the older ones taking what does not divide evenly."""
    if not ask.slots:
        return [], []
    ranks = sorted(ask.ranks)[: ask.slots] or [math.inf] * ask.slots
    each, left = divmod(ask.slots, len(ranks))
    return ranks, [each + (1 if i < left else 0) for i in range(len(ranks))]
