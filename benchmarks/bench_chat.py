"""POST /api/v1/chat under gunicorn vs a bare DRF view; intent classification; retrieval at 10,000 passages.

Writes benchmarks/results/chat.json. Uses its own database (netia_bench_chat) and a local fake OpenAI
server answering instantly, so the figures measure Netia, not the LLM.

    python -m benchmarks.bench_chat [--requests 1000] [--concurrency 4] [--passages 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._django import percentile, setup

RESULTS = Path(__file__).parent / "results" / "chat.json"
PORT = 8765
WORDS = [
    "delivery",
    "price",
    "order",
    "cake",
    "bread",
    "opening",
    "hours",
    "saturday",
    "parking",
    "gluten",
    "allergy",
    "refund",
    "invoice",
    "booking",
    "table",
    "menu",
    "vegan",
    "coffee",
    "croissant",
    "birthday",
    "wedding",
    "catering",
    "discount",
    "voucher",
    "gift",
    "card",
    "pickup",
    "shipping",
]


def _bench_tenant() -> Any:
    """The benchmark's tenant, on an unlimited plan so metering never stops the bot mid-run."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import BillingAccount, Plan, UsagePeriod
    from billing.services import trial_extend
    from tenants.models import Tenant
    from tenants.services import tenant_onboard

    tenant = Tenant.objects.filter(name="Bench Bakery").first()
    tenant = tenant or tenant_onboard(name="Bench Bakery", owner_email="bench@bench.test").tenant
    plan, _ = Plan.objects.get_or_create(code="bench-unlimited", defaults={"name": "Benchmark", "is_active": False})
    trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=365))
    BillingAccount.objects.filter(tenant=tenant).update(plan=plan)
    UsagePeriod.objects.filter(tenant=tenant).delete()
    return tenant


def _fill_knowledge(tenant: Any, passages: int) -> float:
    """Rebuild the tenant's knowledge base with `passages` one-passage articles; returns seconds spent.

    Text mixes a few shop words with a 5,000-word synthetic vocabulary drawn Zipf-like, so a query matches
    a realistic fraction of passages rather than all of them.
    """
    import random

    from django_tenants.utils import tenant_context

    from chat.models import KnowledgeArticle
    from chat.services import knowledge_article_create

    rng = random.Random(7)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9))) for _ in range(5000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    started = time.perf_counter()
    with tenant_context(tenant):
        KnowledgeArticle.objects.all().delete()
        for i in range(passages):
            words = rng.choices(vocabulary, weights=weights, k=57) + rng.sample(WORDS, 3)
            rng.shuffle(words)
            knowledge_article_create(
                tenant=tenant, title=f"Article {i} {rng.choice(WORDS)}", content=" ".join(words) + "."
            )
    return time.perf_counter() - started


def _retrieval(tenant: Any, queries: int) -> dict[str, float]:
    import random

    from django.db import connection
    from django_tenants.utils import tenant_context

    from chat.retrieval import passages_search

    rng = random.Random(11)
    search: list[float] = []
    baseline: list[float] = []
    with tenant_context(tenant):
        for _ in range(queries):
            question = f"do you have {rng.choice(WORDS)} and {rng.choice(WORDS)} on {rng.choice(WORDS)}?"
            t0 = time.perf_counter()
            passages_search(query=question, language="en", limit=4)
            search.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM chat_knowledgepassage WHERE id = %s", [1])
                cursor.fetchall()
            baseline.append(time.perf_counter() - t0)
    return {
        "queries": queries,
        "p50_ms": round(percentile(search, 50) * 1000, 3),
        "p95_ms": round(percentile(search, 95) * 1000, 3),
        "baseline_pk_lookup_p95_ms": round(percentile(baseline, 95) * 1000, 3),
        "p95_ratio_vs_pk_lookup": round(percentile(search, 95) / percentile(baseline, 95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--passages", type=int, default=10000)
    args = parser.parse_args()

    setup("netia_bench_chat")
    from django.conf import settings
    from django.core.management import call_command

    from benchmarks import bench_intents
    from benchmarks.load import Gunicorn, run_load
    from tests.fakes.openai_server import FakeOpenAI

    call_command("migrate_schemas", interactive=False, verbosity=0)
    tenant = _bench_tenant()
    indexing_s = _fill_knowledge(tenant, args.passages)
    retrieval = _retrieval(tenant, queries=300)

    with FakeOpenAI(reply="We are open from 7:00 to 19:00 on weekdays.") as llm:
        env = {
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{llm.url}/v1",
            "CHAT_RATE_PER_TOKEN": "1000000/m",
            "CHAT_RATE_PER_IP": "1000000/m",
            "DJANGO_DEBUG": "true",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
            "NETIA_EMBEDDED_DB_NAME": "netia_bench_chat",
        }
        token = tenant.chat_token
        headers = {"Authorization": f"Bearer {token}"}
        with Gunicorn(app="benchmarks.wsgi_bench:application", port=PORT, env=env) as server:
            load = partial(run_load, port=server.port, headers=headers, concurrency=args.concurrency)
            load(path="/bench/bare", body=lambda i: {"session_id": f"w{i}", "message": "hi"}, requests=100)  # warm-up
            bare = load(
                path="/bench/bare",
                body=lambda i: {"session_id": f"b{i}", "message": f"When are you open {i}?"},
                requests=args.requests,
            )
            chat = load(
                path="/api/v1/chat",
                body=lambda i: {"session_id": f"c{time.time_ns()}{i}", "message": f"When are you open on day {i}?"},
                requests=args.requests,
            )
            cached = load(
                path="/api/v1/chat",
                body=lambda i: {"session_id": f"k{time.time_ns()}{i}", "message": "When are you open?"},
                requests=args.requests,
            )

    intents = bench_intents.measure(20000)
    result = {
        "benchmark": "chat",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "http": {
            "server": "gunicorn, 2 sync workers; client: keep-alive threads on 127.0.0.1",
            "concurrency": args.concurrency,
            "redis": bool(settings.REDIS_URL),
            "bare_drf_view": bare,
            "chat_llm_path": chat,
            "chat_cached_answer": cached,
            "chat_vs_bare_throughput_ratio": round(chat["requests_per_s"] / bare["requests_per_s"], 3),
            "chat_vs_bare_p50_ratio": round(chat["p50_ms"] / bare["p50_ms"], 2),
            "cached_vs_bare_throughput_ratio": round(cached["requests_per_s"] / bare["requests_per_s"], 3),
        },
        "intent_classification": intents,
        "retrieval": {"passages": args.passages, "indexing_s": round(indexing_s, 1), **retrieval},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
