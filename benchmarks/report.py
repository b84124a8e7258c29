"""Figures → ratios, targets met or not, and the table printed (and pasted into the docs)."""

from __future__ import annotations

from typing import Any

from benchmarks import replicas_budget

__all__ = ["evaluate", "render", "replicas_targets"]

_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_PHASES = (
    ("initial", "initial sync (empty database)"),
    ("floor_b", "floor (b): raw executemany, same rows"),
    ("initial_few", "initial sync, fewer accounts (RSS check)"),
    ("unchanged", "resync, nothing changed"),
    ("churn", "resync after 1 % churn"),
    ("observed", "resync, Cloudflare moved last_synced on every server"),
)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def _target(
    name: str, db: str, value: float, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    met = value <= limit if at_most else value >= limit
    return {"target": name, "db": db, "value": round(value, 3), "limit": limit, "met": met}


def evaluate(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 5 that this run measures, per database."""
    accounts = int(out["workload"]["accounts"])
    targets: list[dict[str, Any]] = []
    for db, r in out["dbs"].items():
        floor_a = float(r.get("floor_a", out["floor_a"])["wall_s"])
        initial, unchanged, churn = r["initial"], r["unchanged"], r["churn"]
        changed = changed_entities(churn)
        floors = floor_a + float(r["floor_b"]["wall_s"])
        targets += [
            _target("initial / (floor a + floor b)", db, _ratio(initial["wall_s"], floors), 1.5),
            _target("unchanged: time / floor a", db, _ratio(unchanged["wall_s"], floor_a), 1.2),
            _target("unchanged: entity + history rows", db, unchanged["entity_rows"], 0),
            _target("unchanged: run rows per account", db, unchanged["rows_written"] / accounts, 5),
            _target(
                "churn: entity + history rows per changed entity",
                db,
                _ratio(churn["entity_rows"], changed),
                3,
            ),
            _target(
                "churn: all rows (incl. run rows) per changed entity",
                db,
                _ratio(churn["rows_written"], changed),
                3,
            ),
        ]
        observed = r.get("observed")
        if observed is not None:
            servers = int(out.get("resynced") or 0)
            targets += [
                _target(
                    "observations: time / floor a", db, _ratio(observed["wall_s"], floor_a), 1.2
                ),
                # one current row and its open version per server, never a history row
                _target(
                    "observations: entity + history rows per re-synced server",
                    db,
                    _ratio(observed["entity_rows"], servers),
                    2,
                ),
                _target("observations: versions written", db, _changed(observed), 0),
            ]
        for phase in ("initial", "unchanged", "churn"):
            targets.append(
                _target(
                    f"{phase}: requests / minimum",
                    db,
                    _ratio(r[phase]["requests"], out["min_requests"]),
                    1 + 2 * accounts / out["min_requests"],
                )
            )
        targets.append(
            _target(
                f"peak RSS: {accounts} accounts / {out['workload']['small_accounts']} accounts",
                db,
                _ratio(initial["rss_peak_mb"], r["initial_few"]["rss_peak_mb"]),
                1.2,
            )
        )
    for db, sides in (out.get("peer") or {}).get("dbs", {}).items():
        for phase in ("unchanged", "churn"):
            ours, dlt = sides["ours"].get(phase), sides["dlt"].get(phase)
            if ours and dlt:
                targets.append(
                    _target(
                        f"peer: dlt time / our time, {phase} resync",
                        db,
                        _ratio(dlt["wall_s"], ours["wall_s"]),
                        5,
                        at_most=False,
                    )
                )
    limiter = out["limiter"]
    targets += [
        _target("limiter: 429 responses", "-", limiter["too_many_requests"], 0),
        _target(
            "limiter: most requests in one window / limit",
            "-",
            _ratio(limiter["max_in_window"], limiter["case"]["requests"]),
            1.0,
        ),
    ]
    if out.get("replicas_budget"):
        targets += replicas_targets(out["replicas_budget"])
    return targets


def replicas_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Replicas sharing one budget: no 429, never more than the budget in one window."""
    targets = []
    for row in figures["rows"]:
        targets += [
            _target(f"replicas, sync {row['sync']}: 429 responses", "postgresql", row["429"], 0),
            _target(
                f"replicas, sync {row['sync']}: most requests in one window / limit",
                "postgresql",
                _ratio(row["densest_window"], figures["budget"]),
                1.0,
            ),
        ]
    return targets


def _changed(phase: dict[str, Any]) -> int:
    return sum(int(n) for n in phase["changes"].values())


def changed_entities(phase: dict[str, Any]) -> int:
    """Entities whose stored content a sync changed (added + changed + removed, every kind).

    More than the simulator's churn picks: a changed tool also moves its server's
    ``last_synced``, so the server is a changed entity too.
    """
    return sum(int(n) for n in phase["changes"].values())


def _mb(value: float) -> str:
    return f"{value:.0f}"


def render(out: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    dbs = list(out["dbs"])
    head = "| phase | " + " | ".join(
        f"{_NAMES[db]} s | rows written | requests | peak RSS MB" for db in dbs
    )
    lines = [head + " |", "|---|" + "---:|" * (4 * len(dbs))]
    cells = []
    for db in dbs:
        fa = out["dbs"][db].get("floor_a", out["floor_a"])
        cells.append(f"{fa['wall_s']:.2f} | — | {fa['requests']} | {_mb(fa['rss_peak_mb'])}")
    lines.append("| floor (a): bare httpx + JSON parse | " + " | ".join(cells) + " |")
    for key, label in _PHASES:
        if any(key not in out["dbs"][db] for db in dbs):
            continue  # a run from before the phase existed
        row = []
        for db in dbs:
            r = out["dbs"][db][key]
            rows = r.get("rows_written")
            row.append(
                f"{r['wall_s']:.2f} | {rows if rows is not None else '—'} | {r['requests']} | "
                f"{_mb(r['rss_peak_mb'])}"
            )
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += [
        "",
        f"Churn: the simulator changed {out['churned']} entities; the sync stored "
        + ", ".join(
            f"{changed_entities(out['dbs'][db]['churn'])} changed entities ({_NAMES[db]})"
            for db in dbs
        )
        + ". "
        f"Minimum requests per "
        f"sync: {out['min_requests']} (+ at most {2 * out['workload']['accounts']} empty "
        "terminal pages).",
        "",
        "| target | database | measured | limit | met |",
        "|---|---|---:|---:|---|",
    ]
    for t in targets:
        name = _NAMES.get(t["db"], t["db"])
        lines.append(
            f"| {t['target']} | {name} | {t['value']:g} | {t['limit']:g} | "
            f"{'yes' if t['met'] else '**no**'} |"
        )
    lines += _render_peer(out.get("peer"))
    lim = out["limiter"]
    case = lim["case"]
    lines += [
        "",
        f"Limiter: {case['accounts']} accounts on one token, {case['syncs']} back-to-back syncs "
        f"(each a fresh client), {lim['requests']} requests under a {case['requests']} / "
        f"{case['period']:g} s limit (scaled down from 1,200 / 300 s) in {lim['wall_s']:.1f} s "
        f"(no client can do it in under {lim['min_wall_s']:.0f} s): "
        f"{lim['too_many_requests']} responses 429, at most {lim['max_in_window']} requests in any "
        f"{case['period']:g} s window.",
    ]
    if out.get("replicas_budget"):
        lines += ["", replicas_budget.render(out["replicas_budget"]), ""]
    lines.append(f"Whole run: {out['total_s']:.0f} s.")
    return "\n".join(lines)


def _rows(r: dict[str, Any]) -> str:
    rows = r.get("rows_written")
    return str(rows) if rows is not None else "—"


def _render_peer(peer: dict[str, Any] | None) -> list[str]:
    if not peer:
        return []
    lines = [
        "",
        f"dlt peer ({peer['accounts']} accounts, same simulator state, same run; dlt's REST API "
        "source, merge / scd2):",
        "",
        "| database | phase | ours s | dlt s | dlt / ours | ours rows | dlt rows | ours requests "
        "| dlt requests | ours peak RSS MB | dlt peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for db, sides in peer["dbs"].items():
        for phase, ours in sides["ours"].items():
            dlt = sides["dlt"].get(phase)
            if dlt is None:
                continue
            lines.append(
                f"| {_NAMES[db]} | {phase} | {ours['wall_s']:.2f} | {dlt['wall_s']:.2f} | "
                f"{_ratio(dlt['wall_s'], ours['wall_s']):.1f} | {_rows(ours)} | {_rows(dlt)} | "
                f"{ours['requests']} | {dlt['requests']} | {_mb(ours['rss_peak_mb'])} | "
                f"{_mb(dlt['rss_peak_mb'])} |"
            )
    return lines


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one workload on different databases as one, each database with its own floor."""
    out = dict(runs[0])
    out["dbs"] = {}
    for run in runs:
        if run["workload"] != out["workload"]:
            raise ValueError("cannot put different workloads side by side")
        for db, phases in run["dbs"].items():
            out["dbs"][db] = {"floor_a": run["floor_a"], **phases}
    peers = [run["peer"] for run in runs if run.get("peer")]
    if peers:
        dbs = {db: sides for peer in peers for db, sides in peer["dbs"].items()}
        out["peer"] = {**peers[0], "dbs": dbs}
    return out
