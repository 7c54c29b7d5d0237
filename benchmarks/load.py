"""A bounded HTTP load loop on 127.0.0.1: N threads with keep-alive connections, a fixed request count."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._django import percentile
from tests import processes

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
    """gunicorn serving `app` on 127.0.0.1:`port` with the given environment; a context manager.

    With `config` (e.g. the project's gunicorn.conf.py) its settings apply, the bind address excepted;
    `workers` then only applies when given. Output goes to `log` when given.
    """

    def __init__(
        self,
        *,
        app: str,
        port: int,
        env: dict[str, str],
        workers: int | None = 2,
        config: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port
        self.command = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}"]
        if config:
            self.command += ["--config", config]
        else:
            self.command += ["--log-level", "warning"]
        if workers is not None:
            self.command += ["--workers", str(workers)]
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        out = self.log.open("ab") if self.log else None
        # Dies with this process even if it is killed (tests/processes.py): no gunicorn left behind on the machine.
        self.process = processes.spawn(self.command, cwd=ROOT, env=self.env, stdout=out, stderr=out)
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

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker, in MB (Linux /proc)."""
        sizes = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        return sizes

    def worker_cpu_s(self) -> float:
        """CPU time (user + system) the workers have used so far, in seconds (Linux /proc)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / ticks

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            processes.stop(self.process, signal.SIGTERM, timeout=30)


def replay(*, port: int, lines_file: Path, seconds: float, threads: int, connections: int) -> dict[str, Any]:
    """POST the prepared requests of `lines_file` ("<path>\\t<Authorization or ->\\t<body>" per line) for
    `seconds` with `connections` keep-alive connections; wrk when installed (a C client leaves the CPU to
    the server), else Python threads. Returns rate and latency figures."""
    wrk = shutil.which("wrk")
    if wrk:
        completed = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(Path(__file__).with_name("replay.lua")),
                f"http://127.0.0.1:{port}/",
            ],
            env={**os.environ, "REPLAY_FILE": str(lines_file), "REPLAY_THREADS": str(threads)},
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"wrk failed: {completed.stderr.strip()}")
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        duration = figures["duration_us"] / 1e6
        return {
            "client": f"wrk -t{threads} -c{connections}",
            "requests": figures["requests"],
            "errors": figures["non_2xx_3xx"] + figures["socket_errors"],
            "requests_per_s": round(figures["requests"] / duration, 1),
            "p50_ms": round(figures["p50_us"] / 1000, 2),
            "p90_ms": round(figures["p90_us"] / 1000, 2),
            "p99_ms": round(figures["p99_us"] / 1000, 2),
        }
    return _replay_threads(port=port, lines_file=lines_file, seconds=seconds, connections=connections)


def _replay_threads(*, port: int, lines_file: Path, seconds: float, connections: int) -> dict[str, Any]:
    rows = lines_file.read_text().splitlines()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = rows[k::connections]
        i = 0
        while time.perf_counter() < deadline:
            path, authorization, body = mine[i % len(mine)].split("\t", 2)
            i += 1
            headers = {"Content-Type": "application/json"}
            if authorization != "-":
                headers["Authorization"] = authorization
            started = time.perf_counter()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += response.status >= 400
        conn.close()

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    began = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall = time.perf_counter() - began
    return {
        "client": f"python threads x{connections}",
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }
