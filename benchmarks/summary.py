"""benchmarks/results/summary.md: issue 13's targets, each with its baseline, the measured figure and the ratio.

Reads the JSON files the benchmarks wrote (http.json, chat.json, tenants.json); a missing file leaves its
rows marked "not run".

    python -m benchmarks.summary
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _row(path: str, target: str, baseline: str, figure: str, ratio: str, met: bool | None, before: str = "") -> str:
    verdict = "not run" if met is None else ("met" if met else "**missed**")
    return f"| {path} | {target} | {before} | {baseline} | {figure} | {ratio} | {verdict} |"


def rows() -> list[str]:
    http, chat, tenants = _load("http"), _load("chat"), _load("tenants")
    was: dict[str, Any] = _load("before") or {}
    out = []
    if http:
        ack, api = http["webhook_ack"], http["chat_api"]
        out.append(
            _row(
                "Papercups webhook ack ÷ bare durable view (1 INSERT + 1 LPUSH)",
                "≥ 0.5",
                f"{ack['baseline_requests_per_s']:,} req/s, p50 {ack['baseline_p50_ms']} ms",
                f"{ack['target_requests_per_s']:,} req/s, p50 {ack['target_p50_ms']} ms",
                f"**{ack['ratio_median']}** (rounds: {', '.join(map(str, ack['ratio_per_round']))})",
                ack["ratio_median"] >= 0.5,
                before=f"{was['webhook_ack']['ratio']}" if was else "",
            )
        )
        out.append(
            _row(
                "chat API (offline responder, new session per request) ÷ bare DRF view",
                "≥ 0.2",
                f"{api['baseline_requests_per_s']:,} req/s, p50 {api['baseline_p50_ms']} ms",
                f"{api['target_requests_per_s']:,} req/s, p50 {api['target_p50_ms']} ms",
                f"**{api['ratio_median']}** (rounds: {', '.join(map(str, api['ratio_per_round']))})",
                api["ratio_median"] >= 0.2,
                before=f"{was['chat_api']['ratio']}" if was else "",
            )
        )
        ack_sql, chat_sql = http["statements"]["webhook_ack"], http["statements"]["chat_turn"]

        def sql(figures: dict[str, Any]) -> int:
            return int(figures["statements"]) - int(figures.get("transaction_control", 0))

        def described(ack: dict[str, Any], chat: dict[str, Any]) -> str:
            riding = ""
            if "search_path_riding" in ack:
                riding = (
                    f", of them in the next statement's query: {ack['search_path_riding']} / "
                    f"{chat['search_path_riding']}"
                )
            return (
                f"{sql(ack)} / {sql(chat)} (+ {ack.get('transaction_control', 0)} / "
                f"{chat.get('transaction_control', 0)} BEGIN/COMMIT/SAVEPOINT/RELEASE; `SET search_path`: "
                f"{ack['search_path_sets']} / {chat['search_path_sets']}{riding})"
            )

        out.append(
            _row(
                "SQL statements: webhook ack / chat turn",
                "≤ 3 / ≤ 12",
                "—",
                described(ack_sql, chat_sql),
                "—",
                sql(ack_sql) <= 3 and sql(chat_sql) <= 12,
                before=described(was["statements"]["webhook_ack"], was["statements"]["chat_turn"]) if was else "",
            )
        )
    else:
        out.append(_row("HTTP hot paths and SQL statements", "", "", "", "", None))
    if chat:
        retrieval = chat["retrieval"]
        out.append(
            _row(
                f"retrieval p95 at {retrieval['passages']:,} passages in the tenant",
                "≤ 5 ms",
                f"primary-key lookup p95 {retrieval['baseline_pk_lookup_p95_ms']} ms",
                f"p95 {retrieval['p95_ms']} ms (p50 {retrieval['p50_ms']} ms)"
                + (" — main's last run, not re-run here (issue 12 rewrites retrieval)" if "http" in chat else ""),
                f"{retrieval['p95_ratio_vs_pk_lookup']}x the lookup",
                retrieval["p95_ms"] <= 5,
                before=f"p95 {was['retrieval_p95_ms']} ms" if was else "",
            )
        )
    else:
        out.append(_row("retrieval p95 at 10,000 passages", "≤ 5 ms", "", "", "", None))
    noop = (tenants or {}).get("noop_migrate_schemas")
    if noop and "baseline_per_schema_ms" in noop:
        out.append(
            _row(
                f"no-op `migrate_schemas` over {noop['schemas']:,} schemas",
                "≤ 60 s at 1,000",
                f"django-tenants per schema: {noop['baseline_per_schema_ms']} ms "
                f"(→ {noop['baseline_total_s_extrapolated']} s)",
                f"{noop['total_s']} s ({noop['per_schema_ms']} ms per schema)",
                f"{noop['ratio_vs_baseline']}",
                noop["total_s"] * 1000 / max(noop["schemas"], 1) <= 60,
                before=(
                    f"{was['noop_migrate_schemas']['total_s']} s over {was['noop_migrate_schemas']['schemas']:,}"
                    if was
                    else ""
                ),
            )
        )
    else:
        out.append(_row("no-op `migrate_schemas` over 1,000 tenant schemas", "≤ 60 s", "", "", "", None))
    if http:
        memory = http["memory"]
        worst = max(memory["netia_workers_mb"], default=0.0)
        bare = max(memory["bare_workers_mb"], default=0.0)
        out.append(
            _row(
                f"web worker RSS after {memory['requests_served']:,} mixed requests",
                "≤ 150 MB",
                f"bare project worker {bare} MB",
                f"largest worker {worst} MB (all: {', '.join(map(str, memory['netia_workers_mb']))})",
                f"{round(worst / bare, 2) if bare else '—'}",
                worst <= 150,
                before=f"{was['worker_rss_mb']} MB" if was else "",
            )
        )
    return out


def main() -> None:
    http = _load("http")
    header = [
        "# Benchmark summary (issue 13 targets)",
        "",
        "Written by `make bench` (`python -m benchmarks.summary`) from the JSON files beside it. Ratios are",
        "measured side by side in one run, alternating baseline and target, on the machine named in each file.",
        "",
    ]
    before = _load("before")
    if before:
        header += [f"Before: {before['what']}", ""]
    if http:
        header += [
            f"HTTP: {http['server']}; client {http['client']}, {http['seconds_per_run']} s per run, "
            f"{http['rounds']} rounds per pair, {http['tenants']} tenants; machine: {http['machine']['cpus']} CPUs, "
            f"load average before {', '.join(f'{x:.1f}' for x in http['machine']['load_before'])}.",
            "",
        ]
    table = [
        "| path | target | before (main) | baseline now | figure now | ratio now | verdict |",
        "|---|---|---|---|---|---|---|",
        *rows(),
    ]
    text = "\n".join(header + table) + "\n"
    (RESULTS / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
