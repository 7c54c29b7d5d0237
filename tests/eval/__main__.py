"""`make eval`: the answer-quality figures of every business in tests/eval/data, on its own database.

python -m tests.eval [--failures] [--split dev|test] [--json PATH] [--embeddings minilm]

`--embeddings minilm` (`make eval-embeddings`) turns on hybrid retrieval and the meaning-based offline answer
with real sentence embeddings: all-MiniLM-L6-v2 served by the fake OpenAI server (tests/fakes/minilm.py, the
files from `make minilm`), on a PostgreSQL with pgvector (the embedded server: run with DATABASE_URL unset).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failures", action="store_true", help="list every question the bot got wrong")
    parser.add_argument("--split", choices=["dev", "test"], help="only the businesses of this split")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--embeddings", choices=["minilm"], help="real sentence embeddings (needs pgvector)")
    args = parser.parse_args()

    from benchmarks._django import setup

    setup("netia_eval_minilm" if args.embeddings else "netia_eval")
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    from netia.celery import app
    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from tenants.services import tenant_onboard
    from tests.eval.dataset import businesses_load
    from tests.eval.runner import business_evaluate, embeddings_settings, overall, report, tenant_prepare
    from tests.fakes.openai_server import FakeOpenAI

    setup_test_environment()  # the test client's host, in-memory email for lead notifications
    app.conf.task_always_eager = True
    call_command("migrate_schemas", interactive=False, verbosity=0)
    started = time.perf_counter()
    results = []
    with FakeOpenAI() as llm, embeddings_settings(llm, args.embeddings):
        for business in businesses_load(args.split):
            tenant = Tenant.objects.filter(name=business.name).first()
            if tenant is None:
                tenant = tenant_onboard(
                    name=business.name, owner_email=f"{business.slug}@eval.test", actor=SYSTEM
                ).tenant
            tenant_prepare(tenant)
            results.append(business_evaluate(tenant, business, llm=llm))
    mode = f"with embeddings ({args.embeddings})" if args.embeddings else "lexical (no embeddings)"
    print(f"retrieval: {mode}\n")
    print(report(results, failures=args.failures))
    print(f"\n{sum(len(r.business.questions) for r in results)} questions, {time.perf_counter() - started:.1f} s")
    if args.json:
        figures = {r.business.slug: asdict(r.scores) for r in results} | {"overall": asdict(overall(results))}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
