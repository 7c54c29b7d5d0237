"""Where a hot path's CPU goes: N requests through Django's WSGI handler in process, under cProfile.

Production settings as bench_http serves them (DJANGO_DEBUG off, JSON logs, Prometheus multiprocess
metrics, Redis cache and broker), the same tenants and request bodies, no HTTP server and no client: the
figures are the application's own CPU per request (CPU time, not wall) and the CPU its PostgreSQL backend
used. For instruction counts that a loaded machine does not move, run it with `--callgrind --no-profile`
under `valgrind --tool=callgrind --instr-atstart=no`: callgrind counts the measured requests only (switched
on right before them and off right after, so neither start-up nor the interpreter's teardown is counted);
the instructions per request are valgrind's "Collected" total divided by `--requests`. Set
DATABASE_CONN_MAX_AGE above the run's length (valgrind is slow): a reconnect would be counted too.

    python -m benchmarks.profile_http [--endpoint webhook|chat|bare_durable|bare_chat] [--requests 500]
        [--offset 1000] [--sort cumulative|tottime] [--limit 40] [--output FILE.prof] [--no-migrate]
        [--no-profile] [--callgrind]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from typing import Any


def _environ(line: str) -> dict[str, Any]:
    """A WSGI environ for one prepared request line ("<path>\\t<Authorization or ->\\t<body>")."""
    path, authorization, body = line.split("\t", 2)
    raw = body.encode()
    path_info, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8771",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8771",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if authorization != "-":
        environ["HTTP_AUTHORIZATION"] = authorization
    return environ


def _backend_cpu_s() -> float:
    """CPU seconds the PostgreSQL backend serving this process's connection has used (same machine only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _callgrind(state: str) -> None:
    """Switch callgrind's instrumentation of this process on or off (it waits until callgrind has)."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", default="chat", choices=["webhook", "chat", "bare_durable", "bare_chat"])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument(
        "--offset", type=int, default=1000, help="number of the first measured request (its question and ids)"
    )
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--limit", type=int, default=45)
    parser.add_argument("--output", default="")
    parser.add_argument("--no-migrate", action="store_true", help="the database is already migrated")
    parser.add_argument("--wait-for", default="", help="serve once this file exists")
    parser.add_argument("--no-profile", action="store_true", help="only time the requests (CPU ms per request)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions of the requests only")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL"):
        raise SystemExit("profile_http needs DATABASE_URL and REDIS_URL (as bench_http).")

    from benchmarks import bench_http

    bare = args.endpoint.startswith("bare_")
    os.environ.update(bench_http.PRODUCTION_ENV)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="netia-profile-metrics-")
    if bare:
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bare.settings"
    bench_http.setup(bench_http.DATABASE)
    import logging

    from django.core.wsgi import get_wsgi_application

    if bare:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS bench_bare_event (id bigserial PRIMARY KEY, body jsonb)")
        from types import SimpleNamespace

        tenants: list[Any] = [SimpleNamespace(papercups_account_id="00000000-0000-0000-0000-000000000000")]
    else:
        from django.core.management import call_command

        if not args.no_migrate:
            call_command("migrate_schemas", interactive=False, verbosity=0)
        tenants = bench_http._tenants(args.tenants)
    if bare:
        import json

        bodies = {"bare_durable": bench_http._papercups_event, "bare_chat": lambda _, n: bench_http._chat_body(n)}
        path = "/bare/durable" if args.endpoint == "bare_durable" else "/bare/chat"

        def make_line(n: int) -> str:
            return f"{path}\t-\t{json.dumps(bodies[args.endpoint](tenants[0], n))}"
    else:
        make_line = bench_http._request_lines(tenants)[args.endpoint]
    application = get_wsgi_application()
    # The access log of gunicorn is not part of Django; the app's own logs go where production sends them.
    logging.getLogger("gunicorn").disabled = True

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not status.startswith("200"):
            raise RuntimeError(f"{args.endpoint} answered {status}")
        return lambda data: None

    def serve(lines: list[str]) -> None:
        for line in lines:
            response = application(_environ(line), start_response)
            b"".join(response)
            response.close()

    serve([make_line(n) for n in range(50)])  # warm-up: imports, caches, connections
    lines = [make_line(n) for n in range(args.offset, args.offset + args.requests)]
    print(f"serving {args.requests} requests in process {os.getpid()}", file=sys.stderr, flush=True)
    if args.wait_for:  # e.g. for `callgrind_control --instr=on` (valgrind --instr-atstart=no) to start counting
        while not os.path.exists(args.wait_for):
            time.sleep(0.1)
    backend_cpu = _backend_cpu_s()
    if args.callgrind:
        _callgrind("on")
    started_cpu, started = time.process_time(), time.perf_counter()
    if args.no_profile:
        serve(lines)
    else:
        # CPU time, so that waiting on PostgreSQL and Redis (or on a busy machine) is not counted.
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(serve, lines)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if args.callgrind:
        _callgrind("off")
    if args.wait_for:
        print("measured", file=sys.stderr, flush=True)
        while os.path.exists(args.wait_for):
            time.sleep(0.1)
    backend_cpu = _backend_cpu_s() - backend_cpu
    print(
        f"{args.endpoint}: {args.requests} requests, {cpu * 1000 / args.requests:.3f} ms CPU "
        f"and {wall * 1000 / args.requests:.3f} ms wall per request, "
        f"PostgreSQL backend {backend_cpu * 1000 / args.requests:.3f} ms CPU"
        + ("" if args.no_profile else " (under cProfile)"),
        file=sys.stderr,
    )
    if not args.no_profile:
        if args.output:
            profiler.dump_stats(args.output)
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats(args.sort).print_stats(args.limit)
    from netia.celery import app as celery_app

    if not bare:
        celery_app.control.purge()


if __name__ == "__main__":
    main()
