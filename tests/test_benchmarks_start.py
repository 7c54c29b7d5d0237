"""`make bench` must at least start: each benchmark module is run as the Makefile runs it (a fresh process,
no Django settings configured yet), asking only for its usage, so an import that needs Django before the
benchmark's own setup() fails here instead of on the first `make bench` after a refactor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    path.stem
    for path in (ROOT / "benchmarks").glob("*.py")
    if path.stem.startswith(("bench_", "profile_")) or path.stem == "summary"
)


def test_every_benchmark_is_listed() -> None:
    assert {"bench_chat", "bench_http", "bench_tenants", "bench_webhooks"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_benchmark_starts_without_django_configured(module: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(  # noqa: S603 (our interpreter, our module names)
        [sys.executable, "-c", f"import benchmarks.{module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
