"""`make bench` and `make eval` must at least start: each module they run is imported as the Makefile runs it
(a fresh process, no Django settings configured yet), so an import that needs Django before the module's own
setup() fails here instead of on the first `make bench` or `make eval` after a refactor (it happened)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (ROOT / "benchmarks").glob("*.py")
MODULES = [
    *sorted(
        f"benchmarks.{p.stem}" for p in BENCHMARKS if p.stem.startswith(("bench_", "profile_")) or p.stem == "summary"
    ),
    "tests.eval.__main__",
]


def test_every_benchmark_is_listed() -> None:
    names = {"bench_chat", "bench_http", "bench_tenants", "bench_webhooks"}
    assert {f"benchmarks.{name}" for name in names} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_starts_without_django_configured(module: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(  # noqa: S603 (our interpreter, our module names)
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
