"""Tenant creation by cloning the template vs by replaying migrations, at N existing tenants.

Writes benchmarks/results/tenants.json. Runs on its own database (netia_bench_tenants), which it keeps
between runs so the N existing tenants are made only once.

    python -m benchmarks.bench_tenants --existing 1000 [--clone-samples 20] [--plain-samples 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from benchmarks._django import percentile, setup

RESULTS = Path(__file__).parent / "results" / "tenants.json"


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_s": round(percentile(samples, 50), 4),
        "p95_s": round(percentile(samples, 95), 4),
        "mean_s": round(sum(samples) / len(samples), 4),
    }


def _django_tenants_noop_per_schema(sample: int) -> float:
    """Seconds per schema of django-tenants' own no-op migrate (the full `migrate` command per schema)."""
    from django_tenants.migration_executors.base import run_migrations
    from django_tenants.utils import get_tenant_base_migrate_command_class

    from netia.tenancy import use_public_schema
    from tenants.models import Tenant

    command = get_tenant_base_migrate_command_class()()
    options = vars(command.create_parser("manage.py", "migrate").parse_args(["--noinput", "-v", "0"]))
    options["skip_checks"] = True
    schemas = list(Tenant.objects.order_by("pk").values_list("schema_name", flat=True)[:sample])
    t0 = time.perf_counter()
    for schema in schemas:
        run_migrations((), options, "standard", schema)
    elapsed = time.perf_counter() - t0
    use_public_schema()
    return elapsed / len(schemas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--existing", type=int, default=1000, help="Tenants in the database before measuring.")
    parser.add_argument("--clone-samples", type=int, default=20)
    parser.add_argument("--plain-samples", type=int, default=3)
    parser.add_argument("--skip-noop-migrate", action="store_true")
    parser.add_argument("--baseline-sample", type=int, default=30, help="Schemas timed with django-tenants' own.")
    args = parser.parse_args()

    setup("netia_bench_tenants")
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from tenants.services import tenant_onboard

    started = time.perf_counter()
    call_command("migrate_schemas", interactive=False, verbosity=0)
    initial_migrate_s = time.perf_counter() - started

    def onboard(i: int, prefix: str) -> float:
        # A fresh connection for each creation, as a request or command would have: one PostgreSQL session
        # that creates hundreds of schemas bloats its catalog caches and slows down (seen here: seconds each).
        connection.close()
        connection.ensure_connection()
        t0 = time.perf_counter()
        tenant_onboard(name=f"{prefix} {i}", owner_email=f"{prefix.lower()}{i}@bench.test", actor=SYSTEM)
        return time.perf_counter() - t0

    existing = Tenant.objects.count()
    fill_started = time.perf_counter()
    for i in range(existing, args.existing):
        onboard(i, "Existing")
    fill_s = time.perf_counter() - fill_started

    at_n = Tenant.objects.count()
    clone = [onboard(i, f"Clone{at_n}") for i in range(args.clone_samples)]
    with override_settings(TENANT_CREATION_FAKES_MIGRATIONS=False):
        plain = [onboard(i, f"Plain{at_n}") for i in range(args.plain_samples)]

    noop: dict[str, float | int | str] | None = None
    if not args.skip_noop_migrate:
        schemas = Tenant.objects.count() + 2  # public and the template
        t0 = time.perf_counter()
        call_command("migrate_schemas", interactive=False, verbosity=0)
        total = time.perf_counter() - t0
        baseline = _django_tenants_noop_per_schema(args.baseline_sample)
        noop = {
            "schemas": schemas,
            "total_s": round(total, 2),
            "per_schema_ms": round(total / schemas * 1000, 2),
            "baseline": f"django-tenants' own per-schema migrate, measured on {args.baseline_sample} schemas",
            "baseline_per_schema_ms": round(baseline * 1000, 2),
            "baseline_total_s_extrapolated": round(baseline * schemas, 1),
            "ratio_vs_baseline": round(total / (baseline * schemas), 3),
        }

    clone_stats, plain_stats = _stats(clone), _stats(plain)
    result = {
        "benchmark": "tenant creation",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "existing_tenants": at_n,
        "clone": clone_stats,
        "plain_migrations": plain_stats,
        "clone_vs_plain_p50_ratio": round(clone_stats["p50_s"] / plain_stats["p50_s"], 5),
        "speedup_p50": round(plain_stats["p50_s"] / clone_stats["p50_s"], 1),
        "target_clone_p50_s": 0.5,
        "noop_migrate_schemas": noop,
        "setup": {"initial_migrate_s": round(initial_migrate_s, 2), "fill_s": round(fill_s, 1)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
