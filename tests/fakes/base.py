"""A threaded local HTTP server that fakes build on: real sockets, real HTTP, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import random
import threading
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, Any]:
        """The form-encoded body (`a[b][c]=x`, `l[0][k]=v`, `l[]=v`) as nested dicts and lists."""
        return parse_form(self.body.decode())

    def query_form(self) -> dict[str, Any]:
        """The query string, parsed with the same bracket rules as `form()`."""
        return parse_form(self.raw_query)


def parse_form(text: str) -> dict[str, Any]:
    """Parse a bracket-style form encoding (as Stripe and Rails use) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        name, _, rest = key.partition("[")
        path = [name, *rest[:-1].split("][")] if rest.endswith("]") else [key]
        node = root
        for position, part in enumerate(path):
            last = position == len(path) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    """Turn every dict whose keys are all decimal indexes into a list ordered by index."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


@dataclass
class PostResult:
    """What a fake's outgoing POST (a webhook) got back, or why it got nothing (`error`)."""

    status: int | None = None
    content_type: str | None = None
    body: bytes = b""
    error: str | None = None


def post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST `data` to `url` (http/https only, no proxy from the environment); never raises."""
    if urlsplit(url).scheme not in ("http", "https"):
        return PostResult(error="unsupported scheme")
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310 - scheme checked
    try:
        with _opener.open(request, timeout=timeout) as response:
            return PostResult(response.status, response.headers.get("content-type"), response.read())
    except urllib.error.HTTPError as error:
        return PostResult(error.code, error.headers.get("content-type"), error.read())
    except (OSError, ValueError, http.client.HTTPException) as error:
        return PostResult(error=repr(error))


class DropRules:
    """ "Lose the next N events (of a name)" requests, consumed first-in, first-out; the caller holds its lock."""

    def __init__(self) -> None:
        self._rules: list[list[Any]] = []

    def add(self, event: str | None, times: int) -> None:
        self._rules.append([event, times])

    def take(self, event: str) -> bool:
        """Whether this event is to be dropped (consuming one matching request)."""
        for rule in self._rules:
            if rule[0] is None or rule[0] == event:
                rule[1] -= 1
                if rule[1] <= 0:
                    self._rules.remove(rule)
                return True
        return False


@dataclass
class Reply:
    """What a route answers: status, JSON-able body (or raw bytes) and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    delay: float = 0.0


Route = Callable[[RecordedRequest], Reply]


@dataclass
class Fault:
    """A one-shot override for the next `remaining` matching requests: a canned reply and/or a late answer."""

    method: str
    path_prefix: str
    remaining: int
    reply: Reply | None = None
    delay: float = 0.0


class FakeServer:
    """Serves `routes` keyed by (method, path-prefix) and records every request.

    Subclasses register routes in `__init__`. Use as a context manager or call start()/stop().
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._routes: list[tuple[str, str, Route]] = []
        # Called with each request before it is answered, while the client waits (tests look around then).
        self.on_request: Callable[[RecordedRequest], Any] | None = None
        self._faults: list[Fault] = []
        self._random_faults: list[tuple[str, str, float, random.Random, Fault]] = []
        self.random_faults_taken = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._background: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: avoid the 40 ms delayed ACK

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    raw_query=parts.query,
                )
                with fake._lock:
                    fake.requests.append(request)
                reply = fake.dispatch(request)
                if reply.delay:
                    fake._stopping.wait(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = dict(reply.headers)
                if not any(name.lower() == "content-type" for name in headers):
                    headers["Content-Type"] = "application/json"
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() fast: shutdown() waits for the serving loop to notice.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.01)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_port}"

    # -- outgoing calls made in the background ------------------------------------------------------
    def in_background(self, target: Callable[..., Any], *args: Any) -> None:
        """Run `target(*args)` in a daemon thread (as a server sending webhooks asynchronously does)."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._background.append(thread)
        thread.start()

    def wait_for_background(self, timeout: float = 5.0) -> None:
        """Wait until everything started with `in_background` has finished."""
        with self._lock:
            threads, self._background = self._background, []
        for thread in threads:
            thread.join(timeout)

    # -- routing -------------------------------------------------------------------------------
    def route(self, method: str, path_prefix: str, handler: Route) -> None:
        """Register a handler; later registrations win over earlier ones for the same prefix."""
        self._routes.insert(0, (method.upper(), path_prefix, handler))

    def dispatch(self, request: RecordedRequest) -> Reply:
        if self.on_request is not None:
            self.on_request(request)
        fault = self._take_fault(request)
        if fault is not None and fault.reply is not None:
            return replace(fault.reply, delay=fault.reply.delay + fault.delay)
        reply = self._route(request)
        if fault is not None:
            reply = replace(reply, delay=reply.delay + fault.delay)
        return reply

    def _route(self, request: RecordedRequest) -> Reply:
        for method, prefix, handler in self._routes:
            if request.method == method and request.path.startswith(prefix):
                try:
                    return handler(request)
                except Exception:  # a crashing fake must answer, not hang the client
                    with self._lock:
                        self.errors.append(traceback.format_exc())
                    return Reply(500, {"error": {"message": "fake server crashed; see FakeServer.errors"}})
        return Reply(404, {"error": {"message": f"no route for {request.method} {request.path}"}})

    # -- fault injection -----------------------------------------------------------------------
    def inject_fault(
        self,
        method: str,
        path_prefix: str,
        *,
        times: int = 1,
        reply: Reply | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with `reply` (skipping the route) and/or `delay` s late.

        Faults are consumed first-in, first-out; a delayed request without `reply` is still handled normally.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(Fault(method.upper(), path_prefix, times, reply, delay))

    def inject_random_fault(
        self,
        method: str,
        path_prefix: str,
        *,
        rate: float,
        reply: Reply | None = None,
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        """From now on, answer each matching request with `reply` and/or `delay` s late with probability `rate`
        (a seeded draw per request: the same run of requests fails the same way)."""
        draw = random.Random(seed)
        with self._lock:
            self._random_faults.append(
                (method.upper(), path_prefix, rate, draw, Fault(method, path_prefix, 1, reply, delay))
            )

    def clear_faults(self) -> None:
        """Forget every fault not yet consumed (random ones included)."""
        with self._lock:
            self._faults.clear()
            self._random_faults.clear()

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            for method, prefix, rate, draw, random_fault in self._random_faults:
                if method == request.method and request.path.startswith(prefix) and draw.random() < rate:
                    self.random_faults_taken += 1
                    return random_fault
            for fault in self._faults:
                if fault.method == request.method and request.path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]
