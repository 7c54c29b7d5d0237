"""Browser tests: Debian's chromium, driven by Playwright, against Netia served over real HTTP.

Every browser test lives in this package and shares what is here (the staff console's and the API docs'
now, the portal's next):
- `browser`: one chromium for the package. Debian's `chromium` package, never a browser Playwright downloads.
  Missing chromium skips these tests with the reason shown, and fails them under CI (`CI` set), where a
  skip would hide that nothing ran.
- `live_netia`: Netia on 127.0.0.1 over real HTTP, serving its static files itself (WhiteNoise), exactly as
  under `make run` and gunicorn: no test-only static handler that would hide a missing stylesheet.
- `page` + `network`: a fresh browser context and tab per test, with every request it made and how it ended,
  so a test can say "every stylesheet and script answered 200" and "no request left 127.0.0.1".
- `screenshot`: saves a PNG under tests/artifacts/ (git-ignored).

Data is committed, not rolled back: the server thread must see it. pytest-django's `live_server` is not used
because it makes each test transactional, and that teardown truncates every public table (the session's
tenants included). Tests use the session's tenants as they are and delete what they create.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.test.testcases import LiveServerThread
from django.test.utils import modify_settings
from playwright.sync_api import Browser, Page, Request, Response, ViewportSize, sync_playwright

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
HOST = "127.0.0.1"
# Debian's chromium as root in a container, with nothing running in the background that would reach the
# internet (updates, sync, field trials); the host resolver rule makes any other host fail at once.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HOST}",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="package")
def chromium_path() -> str:
    """Debian's chromium, or a loud skip (locally) / failure (CI)."""
    path = shutil.which("chromium")
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install -y chromium): browser tests did not run"
        if in_ci():
            pytest.fail(f"{reason}; CI must run them (.ci/run installs it)", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Browser]:
    """One chromium for every browser test.

    Playwright's sync API keeps its asyncio loop marked as running in this thread between calls, so Django's
    async-safety guard would refuse every ORM call the tests and fixtures make while the browser is open,
    although nothing here runs inside that loop. DJANGO_ALLOW_ASYNC_UNSAFE is set for exactly that span; the
    browser (and so the variable) ends with this package, so the rest of the suite keeps the guard.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
            # While the loop counts as running, asgiref keys Django's connections by the loop's context, not
            # the thread: the ones opened in that span are closed in it (else their sessions outlive the
            # suite and the test database cannot be dropped: "being accessed by other users").
            connections.close_all()


@pytest.fixture(scope="package")
def committed_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access without a wrapping transaction, for the tests and the server thread alike."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def db(committed_db: None) -> None:
    """Shadows pytest-django's `db` here (so `tenant` and friends work): committed data, no transaction."""


@dataclass(frozen=True)
class LiveNetia:
    url: str

    def __call__(self, path: str) -> str:
        """The absolute URL of `path` ("/admin/")."""
        return f"{self.url}{path}"


@pytest.fixture(scope="package")
def live_netia(committed_db: None) -> Iterator[LiveNetia]:
    """Netia over real HTTP on 127.0.0.1, a thread serving Django's plain WSGI handler.

    Django's LiveServerThread wraps the handler in a media-files handler and a static-files handler; the
    `static_handler` given here unwraps it again, so static files come only from Netia's own middleware.
    """
    thread = LiveServerThread(HOST, static_handler=lambda media_handler: media_handler.application)  # type: ignore[arg-type]
    thread.daemon = True
    with modify_settings(ALLOWED_HOSTS={"append": HOST}):
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        try:
            yield LiveNetia(f"http://{HOST}:{thread.port}")
        finally:
            thread.terminate()


@dataclass
class Exchange:
    """One request the page made and how it ended (`status` None and `failure` None: still in flight)."""

    method: str
    url: str
    resource_type: str
    status: int | None = None
    failure: str | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


class NetworkLog:
    """Every request a page made, in order, with its response status or failure."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._by_request: dict[int, Exchange] = {}

    def attach(self, page: Page) -> None:
        page.on("request", self._requested)
        page.on("response", self._responded)
        page.on("requestfailed", self._failed)

    def _requested(self, request: Request) -> None:
        exchange = Exchange(request.method, request.url, request.resource_type)
        self.exchanges.append(exchange)
        self._by_request[id(request)] = exchange

    def _responded(self, response: Response) -> None:
        exchange = self._by_request.get(id(response.request))
        if exchange is not None:
            exchange.status = response.status

    def _failed(self, request: Request) -> None:
        exchange = self._by_request.get(id(request))
        if exchange is not None:
            exchange.failure = request.failure or "failed"

    def clear(self) -> None:
        self.exchanges.clear()
        self._by_request.clear()

    def assets(self) -> list[Exchange]:
        """The stylesheets and scripts requested."""
        return [e for e in self.exchanges if e.resource_type in ("stylesheet", "script")]

    def asset_paths(self) -> set[str]:
        return {e.path for e in self.assets()}

    def bad_assets(self) -> list[tuple[str, int | str | None]]:
        """(url, status or failure) of each stylesheet or script that did not answer 200."""
        return [(e.url, e.failure or e.status) for e in self.assets() if e.status != 200]

    def off_platform(self) -> list[str]:
        """URLs of requests that went to any host but the platform's.

        data: and blob: URLs never leave the browser, nor does a request the page's Content-Security-Policy
        blocked (`blocked_by_csp`).
        """
        return [
            e.url
            for e in self.exchanges
            if urlsplit(e.url).scheme not in ("data", "blob", "about")
            and urlsplit(e.url).hostname != HOST
            and e.failure != "csp"
        ]

    def blocked_by_csp(self) -> list[str]:
        return [e.url for e in self.exchanges if e.failure == "csp"]


@pytest.fixture
def network() -> NetworkLog:
    return NetworkLog()


@pytest.fixture
def page(browser: Browser, live_netia: LiveNetia, network: NetworkLog) -> Iterator[Page]:
    """A tab in a fresh context (no cookies), light colour scheme, recording into `network`."""
    context = browser.new_context(base_url=live_netia.url, viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    network.attach(tab)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """`screenshot(page, "index")` saves tests/artifacts/<test name>-index.png (full page) and returns the path."""

    def save(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
