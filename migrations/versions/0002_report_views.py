"""report views: changes, inventory_versions, server_status_periods, sync health, exposure

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:05:00.000000

The views are literal SQL, one text per dialect where the databases differ (values as text,
null-safe comparison, durations). docs/reports.md documents them and the queries over them.
The field lists below are frozen with this revision on purpose: a later revision that adds a
column recreates the views it should appear in.

SQLite note: a later revision that rebuilds one of these tables with ``batch_alter_table``
must drop the views first and recreate them after (SQLite refuses to rename a table under a
view that names it); ``VIEWS`` and ``_view_sql`` here show what to recreate.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# kind -> (history table, key columns, label column, value fields); field types: t text,
# b boolean, ts timestamp, j JSON. "modified_at"/"modified_by" are columns of the view, not
# fields; the last JSON field of a kind ("raw"/"definition"/"extra") repeats the typed
# fields, so it is listed only when no typed field explains the change.
KINDS: dict[str, tuple[str, tuple[str, ...], str | None, tuple[tuple[str, str], ...]]] = {
    "portal": (
        "portals_history",
        ("id",),
        "name",
        (
            ("name", "t"),
            ("hostname", "t"),
            ("description", "t"),
            ("secure_web_gateway", "b"),
            ("code_mode", "t"),
            ("allow_code_mode", "b"),
            ("created_at", "ts"),
            ("created_by", "t"),
            ("raw", "j"),
        ),
    ),
    "server": (
        "servers_history",
        ("id",),
        "name",
        (
            ("name", "t"),
            ("hostname", "t"),
            ("auth_type", "t"),
            ("description", "t"),
            ("status", "t"),
            ("error", "t"),
            ("error_details", "j"),
            ("authentication_status", "t"),
            ("last_synced", "ts"),
            ("last_successful_sync", "ts"),
            ("secure_web_gateway", "b"),
            ("is_shared_oauth_callback_enabled", "b"),
            ("auth_config_summary", "j"),
            ("created_at", "ts"),
            ("created_by", "t"),
            ("source", "t"),
            ("raw", "j"),
        ),
    ),
    "portal_server": (
        "portal_servers_history",
        ("portal_id", "server_id"),
        None,
        (("default_disabled", "b"), ("on_behalf", "b"), ("extra", "j")),
    ),
    "tool": (
        "tools_history",
        ("server_id", "name"),
        "name",
        (("title", "t"), ("description", "t"), ("derived_key", "b"), ("definition", "j")),
    ),
    "prompt": (
        "prompts_history",
        ("server_id", "name"),
        "name",
        (("title", "t"), ("description", "t"), ("derived_key", "b"), ("definition", "j")),
    ),
    "override": (
        "overrides_history",
        ("portal_id", "server_id", "item_kind", "name"),
        "name",
        (
            ("enabled", "b"),
            ("alias", "t"),
            ("description", "t"),
            ("portal_alias", "t"),
            ("portal_description", "t"),
            ("server_alias", "t"),
            ("server_description", "t"),
            ("derived_key", "b"),
            ("raw", "j"),
        ),
    ),
}
VIEWS = (
    "changes",
    "inventory_versions",
    "server_status_periods",
    "sync_health",
    "sync_run_durations",
    "exposure",
)


class _Dialect:
    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"
        self.null_text = "CAST(NULL AS TEXT)"
        self.null_ts = "CAST(NULL AS TIMESTAMPTZ)" if self.pg else "NULL"

    def as_text(self, expr: str, kind: str) -> str:
        if kind == "b":
            return f"CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END"
        if kind == "ts":
            # the format SQLite stores, so both databases print the same text
            if self.pg:
                return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
            return expr
        if kind == "j":
            return (
                f"NULLIF(CAST({expr} AS TEXT), 'null')"
                if self.pg
                else f"NULLIF(json({expr}), 'null')"
            )
        return f"CAST({expr} AS TEXT)"

    def same(self, left: str, right: str) -> str:
        return f"{left} IS NOT DISTINCT FROM {right}" if self.pg else f"{left} IS {right}"

    def differs(self, left: str, right: str) -> str:
        return f"{left} IS DISTINCT FROM {right}" if self.pg else f"{left} IS NOT {right}"

    def seconds(self, start: str, end: str) -> str:
        if self.pg:
            return f"CAST(ROUND(CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS NUMERIC), 3) AS DOUBLE PRECISION)"
        return f"ROUND((julianday({end}) - julianday({start})) * 86400.0, 3)"

    @property
    def now(self) -> str:
        return "now()" if self.pg else "'now'"


def _identity(alias: str, kind: str, keys: tuple[str, ...]) -> str:
    """The columns every row of `changes` and `inventory_versions` starts with."""
    key = " || '/' || ".join(f"{alias}.{k}" for k in keys)
    portal = (
        f"{alias}.portal_id" if "portal_id" in keys else f"{alias}.id" if kind == "portal" else None
    )
    server = (
        f"{alias}.server_id" if "server_id" in keys else f"{alias}.id" if kind == "server" else None
    )
    item = f"{alias}.name" if kind in ("tool", "prompt", "override") else None
    return (
        f"{alias}.account_id AS account_id, '{kind}' AS kind, CAST({key} AS TEXT) AS entity_key, "
        f"CAST({portal or 'NULL'} AS TEXT) AS portal_id, CAST({server or 'NULL'} AS TEXT) AS server_id, "
        f"CAST({item or 'NULL'} AS TEXT) AS item_name"
    )


def _same_key(left: str, right: str, keys: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in ("account_id", *keys))


def _changes_sql(d: _Dialect) -> str:
    arms = []
    for kind, (table, keys, _label, fields) in KINDS.items():
        audited = kind in ("portal", "server")
        who = "v.modified_by" if audited else d.null_text
        when = "v.modified_at" if audited else d.null_ts
        ident = _identity("v", kind, keys)
        arms.append(
            f"SELECT v.valid_from AS at, {ident}, CASE WHEN EXISTS (SELECT 1 FROM {table} e "
            f"WHERE {_same_key('e', 'v', keys)} AND e.valid_from < v.valid_from) "
            f"THEN 'restored' ELSE 'created' END AS change, {d.null_text} AS field, "
            f"{d.null_text} AS old_value, {d.null_text} AS new_value, {who} AS modified_by, "
            f"{when} AS modified_at, v.run_id AS run_id FROM {table} v WHERE v.change = 'created'"
        )
        arms.append(
            f"SELECT v.valid_to AS at, {ident}, 'deleted' AS change, {d.null_text} AS field, "
            f"{d.null_text} AS old_value, {d.null_text} AS new_value, {d.null_text} AS modified_by, "
            f"{d.null_ts} AS modified_at, v.ended_run_id AS run_id FROM {table} v "
            f"WHERE v.ended_by = 'deleted'"
        )
        typed, summary = fields[:-1], fields[-1][0]
        names = " UNION ALL ".join(f"SELECT '{name}' AS field" for name, _ in fields)
        old = " ".join(f"WHEN '{n}' THEN {d.as_text('p.' + n, t)}" for n, t in fields)
        new = " ".join(f"WHEN '{n}' THEN {d.as_text('v.' + n, t)}" for n, t in fields)
        unexplained = " AND ".join(d.same(f"p.{n}", f"v.{n}") for n, _ in typed)
        arms.append(
            f"SELECT d.* FROM (SELECT v.valid_from AS at, {ident}, 'updated' AS change, "
            f"f.field AS field, CASE f.field {old} END AS old_value, "
            f"CASE f.field {new} END AS new_value, {who} AS modified_by, {when} AS modified_at, "
            f"v.run_id AS run_id FROM {table} v JOIN {table} p ON {_same_key('p', 'v', keys)} "
            f"AND p.valid_to = v.valid_from AND p.ended_by = 'updated' CROSS JOIN ({names}) f "
            f"WHERE v.change = 'updated' AND (f.field <> '{summary}' OR ({unexplained}))) d "
            f"WHERE {d.differs('d.old_value', 'd.new_value')}"
        )
    return "\nUNION ALL\n".join(arms)


def _versions_sql(d: _Dialect) -> str:
    arms = []
    for kind, (table, keys, label, _fields) in KINDS.items():
        arms.append(
            f"SELECT {_identity('v', kind, keys)}, CAST({'v.' + label if label else 'NULL'} AS TEXT) "
            "AS name, v.version_id AS version_id, v.content_hash AS content_hash, "
            "v.valid_from AS valid_from, v.valid_to AS valid_to, v.change AS change, "
            "v.ended_by AS ended_by, v.run_id AS run_id, v.ended_run_id AS ended_run_id "
            f"FROM {table} v"
        )
    return "\nUNION ALL\n".join(arms)


def _status_periods_sql(d: _Dialect) -> str:
    # gaps and islands: a period starts at a server's first version, after a gap (deleted,
    # then restored) or where the status differs from the version before
    return f"""
WITH ordered AS (
  SELECT h.account_id, h.id, h.name, h.status, h.error, h.valid_from, h.valid_to, h.ended_by,
         LAG(h.status) OVER w AS prev_status, LAG(h.valid_to) OVER w AS prev_valid_to
  FROM servers_history h
  WINDOW w AS (PARTITION BY h.account_id, h.id ORDER BY h.valid_from)
), marked AS (
  SELECT o.*, CASE WHEN o.prev_status IS NULL OR o.prev_status <> o.status
                     OR o.prev_valid_to IS NULL OR o.prev_valid_to <> o.valid_from
                   THEN 1 ELSE 0 END AS is_start
  FROM ordered o
), numbered AS (
  SELECT m.*, SUM(m.is_start) OVER (PARTITION BY m.account_id, m.id ORDER BY m.valid_from
                                    ROWS UNBOUNDED PRECEDING) AS period
  FROM marked m
), periods AS (
  SELECT account_id, id AS server_id, period, MIN(status) AS status,
         MAX(CASE WHEN is_start = 1 THEN name END) AS server_name,
         MAX(CASE WHEN is_start = 1 THEN error END) AS error,
         MIN(valid_from) AS started_at,
         CASE WHEN COUNT(*) = COUNT(valid_to) THEN MAX(valid_to) END AS ended_at,
         MAX(CASE WHEN ended_by = 'deleted' THEN 1 ELSE 0 END) AS deleted
  FROM numbered
  GROUP BY account_id, id, period
)
SELECT account_id, server_id, server_name, status, error, started_at, ended_at,
       CASE WHEN ended_at IS NULL THEN NULL WHEN deleted = 1 THEN 'deleted'
            ELSE 'changed' END AS ended_by,
       {d.seconds("started_at", f"COALESCE(ended_at, {d.now})")} AS duration_seconds,
       CASE WHEN ended_at IS NULL THEN 1 ELSE 0 END AS is_current
FROM periods"""


def _run_durations_sql(d: _Dialect) -> str:
    return f"""
SELECT r.id AS run_id, r.account_id, r.status, r.started_at, r.observed_at, r.finished_at,
       r.added, r.changed, r.removed, r.rejected, r.requests, r.pages, r.retries,
       r.consistent, r.error_class, r.error_message,
       CASE WHEN r.finished_at IS NULL THEN NULL
            ELSE {d.seconds("r.started_at", "r.finished_at")} END AS duration_seconds,
       CASE WHEN r.status IN ('failed', 'abandoned') THEN 1 ELSE 0 END AS is_failure
FROM sync_runs r"""


SYNC_HEALTH = """
SELECT a.id AS account_id, a.name AS account_name, a.configured, a.last_run_id, a.last_status,
       a.last_sync_at, a.last_success_at,
       (SELECT COUNT(*) FROM sync_runs r WHERE r.account_id = a.id) AS runs,
       (SELECT COUNT(*) FROM sync_runs r
        WHERE r.account_id = a.id AND r.status IN ('failed', 'abandoned')) AS failed_runs,
       (SELECT MAX(r.started_at) FROM sync_runs r
        WHERE r.account_id = a.id AND r.status IN ('failed', 'abandoned')) AS last_failure_at,
       (SELECT r.error_class FROM sync_runs r
        WHERE r.account_id = a.id AND r.status IN ('failed', 'abandoned')
        ORDER BY r.started_at DESC, r.id DESC LIMIT 1) AS last_error_class,
       (SELECT r.error_message FROM sync_runs r
        WHERE r.account_id = a.id AND r.status IN ('failed', 'abandoned')
        ORDER BY r.started_at DESC, r.id DESC LIMIT 1) AS last_error_message,
       (SELECT AVG(r.duration_seconds) FROM sync_run_durations r
        WHERE r.account_id = a.id AND r.finished_at IS NOT NULL) AS avg_duration_seconds
FROM accounts a"""

# Portable SQL (no dialect text): docs/reports.md repeats it over the history tables, AS OF T.
EXPOSURE = """
SELECT p.account_id, p.id AS portal_id, p.name AS portal_name, p.hostname AS portal_hostname,
       p.code_mode, p.allow_code_mode,
       CASE WHEN p.code_mode IS NOT NULL THEN p.code_mode <> 'off'
            ELSE COALESCE(p.allow_code_mode, FALSE) END AS code_mode_on,
       NOT COALESCE(p.secure_web_gateway, FALSE) AS skips_gateway,
       ps.server_id, s.name AS server_name, s.auth_type, s.status AS server_status,
       ps.default_disabled, t.name AS tool_name,
       CASE WHEN t.name IS NOT NULL THEN COALESCE(po.enabled, so.enabled, TRUE) END AS tool_enabled
FROM portals p
LEFT JOIN portal_servers ps ON ps.account_id = p.account_id AND ps.portal_id = p.id
LEFT JOIN servers s ON s.account_id = ps.account_id AND s.id = ps.server_id
LEFT JOIN tools t ON t.account_id = s.account_id AND t.server_id = s.id
LEFT JOIN overrides po ON po.account_id = t.account_id AND po.portal_id = p.id
     AND po.server_id = t.server_id AND po.item_kind = 'tool' AND po.name = t.name
LEFT JOIN overrides so ON so.account_id = t.account_id AND so.portal_id = ''
     AND so.server_id = t.server_id AND so.item_kind = 'tool' AND so.name = t.name"""


def _view_sql(name: str, d: _Dialect) -> str:
    builders = {
        "changes": _changes_sql,
        "inventory_versions": _versions_sql,
        "server_status_periods": _status_periods_sql,
        "sync_run_durations": _run_durations_sql,
    }
    if name in builders:
        return builders[name](d)
    return {"sync_health": SYNC_HEALTH, "exposure": EXPOSURE}[name]


def upgrade() -> None:
    d = _Dialect(op.get_bind().dialect.name)
    # sync_health reads sync_run_durations: create it first
    for name in ("sync_run_durations", *(v for v in VIEWS if v != "sync_run_durations")):
        op.execute(f"CREATE VIEW {name} AS {_view_sql(name, d)}")


def downgrade() -> None:
    for name in ("sync_health", *(v for v in VIEWS if v != "sync_health")):
        op.execute(f"DROP VIEW IF EXISTS {name}")
