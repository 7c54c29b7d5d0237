"""The HTTP hot paths against bare Django baselines, side by side, alternating, under production settings.

- Papercups webhook ack (`POST /papercups/webhook`, a new visitor message each time) vs a bare durable view
  (parse, 1 INSERT, 1 LPUSH) in a bare Django project;
- `POST /api/v1/chat` (offline responder, a new visitor session and a question never asked before each
  time, so the answer cache misses) vs a bare DRF view validating the same body.

Both projects run under the project's gunicorn.conf.py (WEB_CONCURRENCY workers, production settings:
DJANGO_DEBUG=false, JSON logs, access log, Prometheus multiprocess metrics) on this machine; each pair is
measured in rounds that alternate baseline and target (ABBA), and the ratio is taken per round, so a noisy
machine moves both sides. Requests rotate over `--tenants` tenants (a search_path switch and cache lookups
per request, as a server of many tenants sees). Also measured: SQL statements per request (in process, with
warm caches and the connection left in another tenant's schema) and the workers' resident memory after
every request of the run. Writes benchmarks/results/http.json; database netia_bench_http, ports 8771-8773
(`BENCH_HTTP_DATABASE` and `BENCH_HTTP_PORT`, the first of the three, override them).

    python -m benchmarks.bench_http [--tenants 20] [--seconds 8] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks._django import setup

RESULTS = Path(__file__).parent / "results" / "http.json"
ROOT = Path(__file__).resolve().parent.parent
# Both overridable, so that two checkouts on one machine can benchmark at the same time without sharing data.
DATABASE = os.environ.get("BENCH_HTTP_DATABASE", "netia_bench_http")
_PORT_BASE = int(os.environ.get("BENCH_HTTP_PORT", "8771"))
NETIA_PORT, BARE_PORT, LEAN_PORT = _PORT_BASE, _PORT_BASE + 1, _PORT_BASE + 2
TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})
# Production settings need their secrets explicitly; fixed here so the tenants created in this process
# (their webhook secrets encrypted) can be read by the servers.
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "bench-http-secret-key-not-for-production-0123456789",
    "NETIA_ENCRYPTION_KEYS": "c2VjcmV0LWtleS1mb3ItdGhlLWh0dHAtYmVuY2htYXI=",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    # TLS ends at the load balancer; the benchmark speaks plain HTTP on 127.0.0.1.
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "CHAT_RATE_PER_TOKEN": "100000000/m",
    "CHAT_RATE_PER_IP": "100000000/m",
    # Counted, as every rate, but never reached: runs within the same hour share the per-tenant counters.
    "CHAT_TENANT_TURNS_PER_HOUR": "100000000",
    "OPENAI_API_KEY": "",
}
KNOWLEDGE = {
    "Shipping": "We ship to Canada in 3 to 5 business days for 12 dollars. Orders over 80 dollars ship free.",
    "Opening hours": "We are open Monday to Friday from 8:00 to 18:00 and on Saturday from 9:00 to 13:00.",
    "Returns": "You can return any unused item within 30 days for a full refund. Keep the receipt.",
    "Payment": "We accept credit cards, debit cards and bank transfers. Invoices are sent by email.",
    "Location": "Our shop is at 12 Market Street, next to the central station. Parking is free on Sundays.",
    "Gift cards": "Gift cards from 10 to 200 dollars, valid for two years, usable online and in the shop.",
}
QUESTIONS = [
    "How long does shipping to Canada take",
    "When are you open on Saturday",
    "Can I return an item I bought",
    "Do you accept credit cards",
    "Where is your shop",
    "Do you sell gift cards",
]


def _tenants(count: int) -> list[Any]:
    """`count` Papercups-connected tenants with a small knowledge base, on a plan with a (high) reply limit."""
    from datetime import timedelta

    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from billing.models import BillingAccount, Plan
    from billing.services import trial_extend
    from chat.services import knowledge_article_create
    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from webhooks.services import papercups_tenant_onboard

    plan, _ = Plan.objects.get_or_create(
        code="bench-http", defaults={"name": "Benchmark", "is_active": False, "ai_replies_per_month": 10**9}
    )
    tenants = []
    for i in range(count):
        account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-http-{i}"))
        tenant = Tenant.objects.filter(papercups_account_id=account_id).first()
        if tenant is None:
            tenant = papercups_tenant_onboard(
                name=f"Bench Shop {i}",
                owner_email=f"owner{i}@bench.test",
                papercups_account_id=account_id,
                actor=SYSTEM,
            ).tenant
            with tenant_context(tenant):
                for title, content in KNOWLEDGE.items():
                    knowledge_article_create(tenant=tenant, title=title, content=content)
        trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=365), actor=SYSTEM)
        BillingAccount.objects.filter(tenant=tenant).update(plan=plan)
        tenants.append(tenant)
    return tenants


def _papercups_event(tenant: Any, n: int) -> dict[str, Any]:
    """A visitor's message:created as Papercups sends it (a new message id each time)."""
    conversation, customer = uuid.uuid4(), uuid.uuid4()
    return {
        "event": "message:created",
        "payload": {
            "id": str(uuid.uuid4()),
            "object": "message",
            "body": f"{QUESTIONS[n % len(QUESTIONS)]}? ({n})",
            "type": "reply",
            "private": False,
            "source": "chat",
            "created_at": "2026-03-14T15:09:26",
            "sent_at": "2026-03-14T15:09:25Z",
            "conversation_id": str(conversation),
            "account_id": str(tenant.papercups_account_id),
            "user_id": None,
            "customer_id": str(customer),
            "customer": {"id": str(customer), "object": "customer", "name": "Joe", "email": "joe@example.com"},
            "metadata": None,
        },
    }


def _chat_body(n: int) -> dict[str, Any]:
    return {"session_id": f"s-{uuid.uuid4().hex}", "message": f"{QUESTIONS[n % len(QUESTIONS)]} ({n})?"}


def _write_lines(path: Path, count: int, line: Any, start: int = 0) -> Path:
    with path.open("w") as out:
        for n in range(start, start + count):
            out.write(line(n) + "\n")
    return path


def _request_lines(tenants: list[Any]) -> dict[str, Any]:
    """For each endpoint, the request line n ("<path>\t<Authorization or ->\t<body>"); new ids every call."""
    from webhooks.selectors import PAPERCUPS_WEBHOOK_PATH

    def webhook(n: int) -> str:
        tenant = tenants[n % len(tenants)]
        path = f"{PAPERCUPS_WEBHOOK_PATH}?token={tenant.webhook_secret}"
        return f"{path}\t-\t{json.dumps(_papercups_event(tenant, n))}"

    def chat(n: int) -> str:
        tenant = tenants[n % len(tenants)]
        return f"/api/v1/chat\tBearer {tenant.chat_token}\t{json.dumps(_chat_body(n))}"

    return {
        "webhook": webhook,
        "webhook_full": webhook,
        "webhook_lean": webhook,
        "bare_durable": lambda n: "/bare/durable\t-\t" + json.dumps(_papercups_event(tenants[0], n)),
        "chat": chat,
        "bare_chat": lambda n: f"/bare/chat\t-\t{json.dumps(_chat_body(n))}",
    }


def _statements(tenants: list[Any]) -> dict[str, Any]:
    """SQL statements of one webhook ack and one chat turn, in process: warm caches, autocommit (as served),
    the connection left in another tenant's schema by the previous request."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from netia.tenancy import tenant_connection, use_public_schema

    client = Client()
    first, other = tenants[0], tenants[1]

    def leave_in_other_schema() -> None:
        tenant_connection().set_tenant(other)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        use_public_schema()

    def webhook(n: int) -> Any:
        return client.post(
            f"/papercups/webhook?token={first.webhook_secret}",
            data=json.dumps(_papercups_event(first, n)),
            content_type="application/json",
        )

    def chat(n: int) -> Any:
        return client.post(
            "/api/v1/chat",
            data=json.dumps(_chat_body(n)),
            content_type="application/json",
            headers={"Authorization": f"Bearer {first.chat_token}"},
        )

    figures: dict[str, Any] = {}
    # Questions no earlier run asked: the answer cache misses (retrieval runs) in the warm-up and the measure.
    fresh = 10**7 + uuid.uuid4().int % 10**7
    for name, call in (("webhook_ack", webhook), ("chat_turn", chat)):
        assert call(fresh).status_code == 200
        leave_in_other_schema()
        with CaptureQueriesContext(connection) as captured:
            assert call(fresh + 1).status_code == 200
        sql = [q["sql"] for q in captured.captured_queries]
        figures[name] = {
            "statements": len(sql),
            "transaction_control": sum(s.split()[0] in TRANSACTION_CONTROL for s in sql),
            "search_path_sets": sum(s.startswith("SET search_path") for s in sql),
            # In the same query as the statement after it (netia.db_backend): no round trip of its own.
            "search_path_riding": sum(s.startswith("SET search_path") and "; " in s for s in sql),
            "sql": [s[:160] for s in sql],
        }
    return figures


def _check_one(port: int, line: str) -> None:
    """One request of the kind a run sends must get 200 with a JSON body (not a redirect, not an error)."""
    import http.client

    path, authorization, body = line.split("\t", 2)
    headers = {"Content-Type": "application/json"}
    if authorization != "-":
        headers["Authorization"] = authorization
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body, headers)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"POST {path.split('?')[0]} answered {response.status}: {answer[:300]!r}")
    json.loads(answer)


def _round_robin(pairs: list[tuple[str, str]], run: Any, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Run each (baseline, target) pair `rounds` times, alternating ABBA, all pairs interleaved."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for pair in pairs for name in pair}
    for r in range(rounds):
        for baseline, target in pairs:
            order = (baseline, target) if r % 2 == 0 else (target, baseline)
            for name in order:
                runs[name].append(run(name))
    return runs


def _ratio_summary(runs: dict[str, list[dict[str, Any]]], baseline: str, target: str) -> dict[str, Any]:
    ratios = [t["requests_per_s"] / b["requests_per_s"] for b, t in zip(runs[baseline], runs[target], strict=True)]
    return {
        "baseline_requests_per_s": round(median(r["requests_per_s"] for r in runs[baseline]), 1),
        "target_requests_per_s": round(median(r["requests_per_s"] for r in runs[target]), 1),
        "baseline_p50_ms": round(median(r["p50_ms"] for r in runs[baseline]), 2),
        "target_p50_ms": round(median(r["p50_ms"] for r in runs[target]), 2),
        "target_p99_ms": round(median(r["p99_ms"] for r in runs[target]), 2),
        "baseline_worker_cpu_ms_per_request": round(median(r["worker_cpu_ms_per_request"] for r in runs[baseline]), 3),
        "target_worker_cpu_ms_per_request": round(median(r["worker_cpu_ms_per_request"] for r in runs[target]), 3),
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio_median": round(median(ratios), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("bench-http needs REDIS_URL (cache and broker, as in production).")
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("bench-http needs DATABASE_URL (the bare baseline connects to the same server).")

    os.environ.update({k: v for k, v in PRODUCTION_ENV.items() if k in ("NETIA_ENCRYPTION_KEYS",)})
    setup(DATABASE)
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.load import Gunicorn, replay
    from netia.celery import app as celery_app

    call_command("migrate_schemas", interactive=False, verbosity=0)
    tenants = _tenants(args.tenants)
    statements = _statements(tenants)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_bare_event (id bigserial PRIMARY KEY, body jsonb NOT NULL)")
        cursor.execute("TRUNCATE bench_bare_event")
    connection.close()

    work = Path(tempfile.mkdtemp(prefix="netia-bench-http-"))
    lines = _request_lines(tenants)
    count = int(args.seconds * 3000)  # more than any endpoint serves in a run
    # Request n asks question n: each endpoint's files continue where its last one ended, and the answer
    # cache starts empty, so no question is answered from the cache (starting every file at 0 made later
    # rounds partly cache hits: chat rounds 0.12, 0.17, 0.21).
    next_number: dict[str, int] = {}
    cache.delete_pattern("chat:answer:*")  # type: ignore[attr-defined] # django-redis's cache

    def fresh(name: str, seconds: float) -> Path:
        size = int(count * seconds / args.seconds)
        start = next_number.get(name, 0)
        next_number[name] = start + size
        return _write_lines(work / f"{name}.lines", size, lines[name], start=start)

    env = {**PRODUCTION_ENV, "DATABASE_URL": os.environ["DATABASE_URL"], "WEB_CONCURRENCY": str(args.workers)}

    def server(name: str, app: str, port: int, **extra: str) -> Gunicorn:
        """`app` under the project's gunicorn.conf.py, with its own Prometheus multiprocess directory."""
        metrics = {"PROMETHEUS_MULTIPROC_DIR": str(work / f"{name}-metrics")}
        return Gunicorn(
            app=app,
            port=port,
            env={**env, **metrics, **extra},
            workers=None,
            config="gunicorn.conf.py",
            log=work / f"{name}.log",
        )

    servers = {
        "netia": server("netia", "netia.wsgi:application", NETIA_PORT),
        "lean": server("lean", "netia.wsgi:application", LEAN_PORT, DJANGO_SETTINGS_MODULE="benchmarks.settings_lean"),
        "bare": server("bare", "benchmarks.bare.wsgi:application", BARE_PORT),
    }
    ports = {
        "webhook": NETIA_PORT,
        "chat": NETIA_PORT,
        "webhook_lean": LEAN_PORT,
        "webhook_full": NETIA_PORT,
        "bare_durable": BARE_PORT,
        "bare_chat": BARE_PORT,
    }
    served = 0

    def run(name: str) -> dict[str, Any]:
        nonlocal served
        server = servers[{NETIA_PORT: "netia", LEAN_PORT: "lean", BARE_PORT: "bare"}[ports[name]]]
        cpu_before = server.worker_cpu_s()
        requests_file = fresh(name, args.seconds)
        figures = replay(
            port=ports[name],
            lines_file=requests_file,
            seconds=args.seconds,
            threads=args.threads,
            connections=args.connections,
        )
        figures["worker_cpu_ms_per_request"] = round(
            (server.worker_cpu_s() - cpu_before) * 1000 / max(figures["requests"], 1), 3
        )
        served += figures["requests"]
        return figures

    with servers["netia"] as netia, servers["bare"] as bare, servers["lean"]:
        for name in ("webhook", "webhook_lean", "bare_durable", "chat", "bare_chat"):
            _check_one(ports[name], lines[name](0))  # a redirect or an error would measure nothing
        for name in ("webhook", "webhook_lean", "bare_durable", "chat", "bare_chat"):  # warm-up: imports, caches
            replay(port=ports[name], lines_file=fresh(name, 2), seconds=2, threads=args.threads, connections=4)
        started = time.perf_counter()
        pairs = [("bare_durable", "webhook"), ("bare_chat", "chat"), ("webhook_lean", "webhook_full")]
        runs = _round_robin(pairs, run, args.rounds)
        elapsed = time.perf_counter() - started
        rss = {"netia_workers_mb": netia.worker_rss_mb(), "bare_workers_mb": bare.worker_rss_mb()}
    purged = celery_app.control.purge()

    result = {
        "benchmark": "http hot paths vs bare Django",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "server": f"gunicorn -c gunicorn.conf.py, {args.workers} sync workers, production settings, both projects",
        "client": runs["webhook"][0]["client"],
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "tenants": args.tenants,
        "webhook_ack": _ratio_summary(runs, "bare_durable", "webhook"),
        "chat_api": _ratio_summary(runs, "bare_chat", "chat"),
        "middleware_cost": {
            "what": "the webhook ack with vs without the Prometheus and structlog middleware (same settings else)",
            **_ratio_summary(runs, "webhook_lean", "webhook_full"),
        },
        "statements": statements,
        "memory": {"requests_served": served, "elapsed_s": round(elapsed, 1), **rss},
        "runs": runs,
        "queued_tasks_purged_after": purged,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "statements")}, indent=2))


if __name__ == "__main__":
    main()
