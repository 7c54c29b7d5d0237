"""The engine's own costs: intent classification, and retrieval at 10,000 passages in one tenant.

(The chat API over HTTP against a bare DRF view is benchmarks/bench_http.py.) Writes
benchmarks/results/chat.json. Uses its own database (netia_bench_chat), kept between runs: the knowledge
base is rebuilt only when it does not hold `--passages` passages already.

    python -m benchmarks.bench_chat [--passages 10000] [--database netia_bench_chat]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks._django import percentile, setup

RESULTS = Path(__file__).parent / "results" / "chat.json"
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
    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from tenants.services import tenant_onboard

    tenant = Tenant.objects.filter(name="Bench Bakery").first()
    tenant = tenant or tenant_onboard(name="Bench Bakery", owner_email="bench@bench.test", actor=SYSTEM).tenant
    plan, _ = Plan.objects.get_or_create(code="bench-unlimited", defaults={"name": "Benchmark", "is_active": False})
    trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=365), actor=SYSTEM)
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


def _analyze(tenant: Any) -> None:
    """Fresh planner statistics, as autovacuum would gather after a bulk import."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_knowledgepassage")
        cursor.execute("ANALYZE chat_knowledgearticle")


def _passages(tenant: Any) -> int:
    from django_tenants.utils import tenant_context

    from chat.models import KnowledgePassage

    with tenant_context(tenant):
        return KnowledgePassage.objects.count()


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
    parser.add_argument("--passages", type=int, default=10000)
    parser.add_argument(
        "--database",
        default=os.environ.get("BENCH_CHAT_DATABASE", "netia_bench_chat"),
        help="database to run on (created when missing; default $BENCH_CHAT_DATABASE or netia_bench_chat)",
    )
    args = parser.parse_args()

    setup(args.database)
    from django.core.management import call_command

    from benchmarks import bench_intents

    call_command("migrate_schemas", interactive=False, verbosity=0)
    tenant = _bench_tenant()
    indexing_s = _fill_knowledge(tenant, args.passages) if _passages(tenant) != args.passages else None
    _analyze(tenant)
    load_before = os.getloadavg()
    retrieval = _retrieval(tenant, queries=1000)

    intents = bench_intents.measure(20000)
    result = {
        "benchmark": "chat",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before_retrieval": [round(x, 2) for x in load_before],
        },
        "intent_classification": intents,
        "retrieval": {
            "passages": args.passages,
            "indexing_s": round(indexing_s, 1) if indexing_s is not None else "kept from an earlier run",
            **retrieval,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
