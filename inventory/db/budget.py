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
"""

from __future__ import annotations

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
    SELECT b.credential_key, b.batch_ends, b.batch_slots
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
calc AS (
    SELECT n.t,
           GREATEST(LEAST(:want, :limit - (SELECT COALESCE(sum(slots), 0) FROM live)), 0)
               AS granted,
           n.t + make_interval(secs => :span) AS grant_ends,
           (SELECT min(l.ends) FROM live l  -- when a slot is free again
            WHERE (SELECT COALESCE(sum(m.slots), 0) FROM live m WHERE m.ends > l.ends) < :limit)
               AS first_end
    FROM n
),
batches AS (
    SELECT ends, slots FROM live
    UNION ALL
    SELECT grant_ends, granted FROM calc WHERE granted > 0
),
agg AS (
    SELECT COALESCE(array_agg(ends ORDER BY ends), '{}') AS ends,
           COALESCE(array_agg(slots::int ORDER BY ends), '{}') AS slots,
           COALESCE(sum(slots), 0)::int AS used
    FROM batches
)
UPDATE rate_limit_budgets b
SET batch_ends = agg.ends, batch_slots = agg.slots, slots_used = agg.used
FROM agg, calc, cur
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
        }
        with self._engine.connect() as conn:
            if credential_key not in self._known:
                conn.execute(_CREATE, params)
            granted, used, wait, window = conn.execute(_RESERVE, params).one()
        self._known.add(credential_key)
        return BudgetGrant(
            slots=int(granted), used=int(used), wait=max(float(wait), 0.0), window=window
        )
