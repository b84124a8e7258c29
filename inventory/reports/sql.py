"""The SQL behind every report: portable text over the documented views and history tables.

docs/reports.md shows each of these verbatim (the test suite checks that it does, and runs
every block there on SQLite and PostgreSQL). Parameters: ``:since``/``:until``/``:as_of`` are
instants (bind them with ``UTCDateTime`` so SQLite gets its stored text format); optional
filters are NULL for "all".
"""

from __future__ import annotations

__all__ = ["AS_OF_CTE", "DOCUMENTED"]


def _as_of(alias: str) -> str:
    return (
        f"{alias}.valid_from <= :as_of AND ({alias}.valid_to IS NULL OR {alias}.valid_to > :as_of)"
    )


CHANGES = """
SELECT at, account_id, kind, entity_key, change, field, old_value, new_value,
       modified_by, modified_at, run_id
FROM changes
WHERE at >= :since AND at < :until
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
  AND (CAST(:kind AS TEXT) IS NULL OR kind = :kind)
ORDER BY at, account_id, kind, entity_key, COALESCE(field, '')
"""

INVENTORY_AS_OF = """
SELECT account_id, kind, entity_key, name, content_hash, valid_from, run_id
FROM inventory_versions
WHERE valid_from <= :as_of AND (valid_to IS NULL OR valid_to > :as_of)
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, kind, entity_key
"""

PORTAL_AS_OF = f"""
SELECT p.account_id, p.id, p.name, p.hostname, p.description, p.code_mode, p.allow_code_mode,
       p.secure_web_gateway, p.modified_at, p.modified_by, p.valid_from, p.valid_to, p.run_id
FROM portals_history p
WHERE p.id = :portal_id
  AND (CAST(:account_id AS TEXT) IS NULL OR p.account_id = :account_id)
  AND {_as_of("p")}
ORDER BY p.account_id
"""

PORTAL_SERVERS_AS_OF = f"""
SELECT ps.server_id, s.name AS server_name, s.status, s.auth_type, ps.default_disabled,
       ps.on_behalf
FROM portal_servers_history ps
LEFT JOIN servers_history s ON s.account_id = ps.account_id AND s.id = ps.server_id
     AND {_as_of("s")}
WHERE ps.account_id = :account_id AND ps.portal_id = :portal_id AND {_as_of("ps")}
ORDER BY ps.server_id
"""

PORTAL_TOOLS_AS_OF = f"""
SELECT t.server_id, t.name AS tool_name, COALESCE(po.enabled, so.enabled, TRUE) AS enabled
FROM portal_servers_history ps
JOIN tools_history t ON t.account_id = ps.account_id AND t.server_id = ps.server_id
     AND {_as_of("t")}
LEFT JOIN overrides_history po ON po.account_id = t.account_id AND po.portal_id = ps.portal_id
     AND po.server_id = t.server_id AND po.item_kind = 'tool' AND po.name = t.name
     AND {_as_of("po")}
LEFT JOIN overrides_history so ON so.account_id = t.account_id AND so.portal_id = ''
     AND so.server_id = t.server_id AND so.item_kind = 'tool' AND so.name = t.name
     AND {_as_of("so")}
WHERE ps.account_id = :account_id AND ps.portal_id = :portal_id AND {_as_of("ps")}
ORDER BY t.server_id, t.name
"""

SERVER_AS_OF = f"""
SELECT s.account_id, s.id, s.name, s.hostname, s.description, s.auth_type, s.status, s.error,
       s.authentication_status, s.source, s.modified_at, s.modified_by, s.valid_from,
       s.valid_to, s.run_id
FROM servers_history s
WHERE s.id = :server_id
  AND (CAST(:account_id AS TEXT) IS NULL OR s.account_id = :account_id)
  AND {_as_of("s")}
ORDER BY s.account_id
"""

SERVER_ITEMS_AS_OF = f"""
SELECT 'tool' AS item_kind, t.name, t.title, t.description
FROM tools_history t
WHERE t.account_id = :account_id AND t.server_id = :server_id AND {_as_of("t")}
UNION ALL
SELECT 'prompt' AS item_kind, r.name, r.title, r.description
FROM prompts_history r
WHERE r.account_id = :account_id AND r.server_id = :server_id AND {_as_of("r")}
ORDER BY 1 DESC, 2
"""

SERVER_PORTALS_AS_OF = f"""
SELECT ps.portal_id, p.name AS portal_name, ps.default_disabled, ps.on_behalf
FROM portal_servers_history ps
LEFT JOIN portals_history p ON p.account_id = ps.account_id AND p.id = ps.portal_id
     AND {_as_of("p")}
WHERE ps.account_id = :account_id AND ps.server_id = :server_id AND {_as_of("ps")}
ORDER BY ps.portal_id
"""

STATUS_PERIODS = """
SELECT account_id, server_id, server_name, status, error, started_at, ended_at, ended_by,
       duration_seconds
FROM server_status_periods
WHERE (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
  AND (CAST(:server_id AS TEXT) IS NULL OR server_id = :server_id)
ORDER BY account_id, server_id, started_at
"""

IN_ERROR = """
SELECT account_id, server_id, server_name, error, started_at AS in_error_since,
       duration_seconds
FROM server_status_periods
WHERE status = 'error' AND ended_at IS NULL
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY started_at, account_id, server_id
"""

CAPABILITY_CHANGES = """
SELECT at, account_id, server_id, kind, item_name,
       CASE WHEN change = 'deleted' THEN 'disappeared' ELSE 'appeared' END AS event,
       change, run_id
FROM changes
WHERE kind IN ('tool', 'prompt') AND change IN ('created', 'restored', 'deleted')
  AND at >= :since AND at < :until
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
  AND (CAST(:server_id AS TEXT) IS NULL OR server_id = :server_id)
ORDER BY at, account_id, server_id, kind, item_name
"""

SYNC_STATUS = """
SELECT h.account_id, h.account_name, h.configured, h.last_status, h.last_sync_at,
       h.last_success_at, COALESCE(p.runs, 0) AS runs, COALESCE(p.failures, 0) AS failures,
       COALESCE(p.superseded, 0) AS superseded, p.avg_duration_seconds, h.last_failure_at,
       h.last_error_class, h.last_error_message
FROM sync_health h
LEFT JOIN (
  SELECT account_id, COUNT(*) AS runs, SUM(is_failure) AS failures,
         SUM(CASE WHEN status = 'superseded' THEN 1 ELSE 0 END) AS superseded,
         AVG(duration_seconds) AS avg_duration_seconds
  FROM sync_run_durations
  WHERE started_at >= :since
  GROUP BY account_id
) p ON p.account_id = h.account_id
WHERE CAST(:account_id AS TEXT) IS NULL OR h.account_id = :account_id
ORDER BY h.account_id
"""

SYNC_FAILURES = """
SELECT account_id, run_id, started_at, status, error_class, error_message, duration_seconds
FROM sync_run_durations
WHERE is_failure = 1 AND started_at >= :since AND started_at < :until
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY started_at, run_id
"""

SYNC_RUNS = """
SELECT account_id, run_id, started_at, finished_at, status, added, changed, removed,
       error_class, error_message, duration_seconds
FROM sync_run_durations
WHERE started_at >= :since AND started_at < :until
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY started_at, run_id
"""

EXPOSURE_AS_OF = f"""
SELECT p.account_id, p.id AS portal_id, p.name AS portal_name, p.hostname AS portal_hostname,
       p.code_mode, p.allow_code_mode,
       CASE WHEN p.code_mode IS NOT NULL THEN p.code_mode <> 'off'
            ELSE COALESCE(p.allow_code_mode, FALSE) END AS code_mode_on,
       NOT COALESCE(p.secure_web_gateway, FALSE) AS skips_gateway,
       ps.server_id, s.name AS server_name, s.auth_type, s.status AS server_status,
       ps.default_disabled, t.name AS tool_name,
       CASE WHEN t.name IS NOT NULL
            THEN COALESCE(po.enabled, so.enabled, NOT COALESCE(ps.default_disabled, FALSE)) END
       AS tool_enabled
FROM portals_history p
LEFT JOIN portal_servers_history ps ON ps.account_id = p.account_id AND ps.portal_id = p.id
     AND {_as_of("ps")}
LEFT JOIN servers_history s ON s.account_id = ps.account_id AND s.id = ps.server_id
     AND {_as_of("s")}
LEFT JOIN tools_history t ON t.account_id = s.account_id AND t.server_id = s.id
     AND {_as_of("t")}
LEFT JOIN overrides_history po ON po.account_id = t.account_id AND po.portal_id = p.id
     AND po.server_id = t.server_id AND po.item_kind = 'tool' AND po.name = t.name
     AND {_as_of("po")}
LEFT JOIN overrides_history so ON so.account_id = t.account_id AND so.portal_id = ''
     AND so.server_id = t.server_id AND so.item_kind = 'tool' AND so.name = t.name
     AND {_as_of("so")}
WHERE {_as_of("p")}
"""

EXPOSURE = """
SELECT account_id, portal_id, portal_name, portal_hostname, code_mode_on, skips_gateway,
       server_id, server_name, auth_type, server_status, default_disabled, tool_name, tool_enabled
FROM exposure
WHERE (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, portal_id, COALESCE(server_id, ''), COALESCE(tool_name, '')
"""

CODE_MODE = """
SELECT DISTINCT account_id, portal_id, portal_name, code_mode, allow_code_mode
FROM exposure
WHERE code_mode_on
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, portal_id
"""

NO_GATEWAY = """
SELECT DISTINCT account_id, portal_id, portal_name
FROM exposure
WHERE skips_gateway
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, portal_id
"""

UNAUTHENTICATED = """
SELECT DISTINCT account_id, server_id, server_name, portal_id, portal_name
FROM exposure
WHERE auth_type = 'unauthenticated'
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, server_id, portal_id
"""

ENABLED_TOOLS = """
SELECT account_id, portal_id, portal_name, server_id, server_name, tool_name
FROM exposure
WHERE tool_enabled
  AND (CAST(:account_id AS TEXT) IS NULL OR account_id = :account_id)
ORDER BY account_id, portal_id, server_id, tool_name
"""

# Prepended to an exposure report to answer it AS OF :as_of: the CTE shadows the view.
AS_OF_CTE = f"WITH exposure AS ({EXPOSURE_AS_OF})"

# name -> SQL, as docs/reports.md shows it under "-- name: <name>"
DOCUMENTED: dict[str, str] = {
    "changes": CHANGES,
    "inventory-as-of": INVENTORY_AS_OF,
    "portal-as-of": PORTAL_AS_OF,
    "portal-servers-as-of": PORTAL_SERVERS_AS_OF,
    "portal-tools-as-of": PORTAL_TOOLS_AS_OF,
    "server-as-of": SERVER_AS_OF,
    "server-items-as-of": SERVER_ITEMS_AS_OF,
    "server-portals-as-of": SERVER_PORTALS_AS_OF,
    "status-periods": STATUS_PERIODS,
    "in-error": IN_ERROR,
    "capability-changes": CAPABILITY_CHANGES,
    "sync-status": SYNC_STATUS,
    "sync-failures": SYNC_FAILURES,
    "sync-runs": SYNC_RUNS,
    "exposure-as-of": EXPOSURE_AS_OF,
    "exposure": EXPOSURE,
    "code-mode": CODE_MODE,
    "no-gateway": NO_GATEWAY,
    "unauthenticated": UNAUTHENTICATED,
    "enabled-tools": ENABLED_TOOLS,
}
