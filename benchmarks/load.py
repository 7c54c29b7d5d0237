"""A bounded HTTP load loop on 127.0.0.1: N threads with keep-alive connections, a fixed request count."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._django import percentile

ROOT = Path(__file__).resolve().parent.parent


def run_load(
    *,
    port: int,
    path: str,
    body: Callable[[int], dict[str, Any]],
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    timeout: float = 30.0,
    sign: Callable[[bytes], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """POST `requests` JSON bodies (body(i)) with `concurrency` threads; returns rate and latency figures.

    `sign(raw body)` gives per-request headers (a webhook signature), computed before the clock starts.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            payload = json.dumps(body(i)).encode()
            signed = sign(payload) if sign is not None else {}
            started = time.perf_counter()
            conn.request("POST", path, payload, {"Content-Type": "application/json", **headers, **signed})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


class Gunicorn:
    """gunicorn serving `app` on a free-ish port with the given environment; a context manager."""

    def __init__(self, *, app: str, port: int, env: dict[str, str], workers: int = 2) -> None:
        self.port = port
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/health")
                conn.getresponse().read()
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
