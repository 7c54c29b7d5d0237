"""End-to-end fixtures: a live Netia (real HTTP) receiving the simulator's webhooks, and a real Celery worker.

These tests run on committed data (no wrapping transaction): the live server thread, the worker thread and
the test see the same rows, as in production. Each test gets a fresh tenant (cloned schema) dropped afterwards.
pytest-django's `live_server` fixture is not used because it makes each test transactional, and that teardown
truncates every public table (the session's tenants included); its LiveServer class is used instead. `db` is
overridden here, without a transaction, so that pytest-django still creates the test database for these tests.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from celery.signals import after_task_publish, task_postrun
from django_tenants.utils import tenant_context
from pytest_django.live_server_helper import LiveServer

from chat.services import knowledge_article_create
from netia.celery import app as celery_app
from tenants.audit import SYSTEM
from tenants.models import Tenant, User
from tenants.services import OnboardingResult, tenant_onboard
from tests.fakes.crisp_server import FakeCrisp, Operator, Website
from tests.fakes.papercups_server import Account, FakePapercups
from tests.fakes.papercups_server import User as PapercupsUser
from tests.webhooks.conftest import SHIPPING
from webhooks.selectors import CRISP_WEBHOOK_PATH, papercups_webhook_url
from webhooks.services import crisp_connection_set, papercups_connection_check, papercups_tenant_onboard

QUIET = 0.3


@pytest.fixture(scope="module")
def committed_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access without a wrapping transaction, for these tests and the threads they start."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def db(committed_db: None) -> None:
    """Shadows pytest-django's `db`: committed data, no transaction (its name makes the test database exist)."""


@pytest.fixture(scope="module")
def netia_server(committed_db: None) -> Iterator[LiveServer]:
    """Netia served over real HTTP on 127.0.0.1 (pytest-django's live server thread)."""
    server = LiveServer("127.0.0.1")
    yield server
    server.stop()


class TaskTracker:
    """Counts this test's tasks published but not yet finished (retries included), to wait until the worker is idle.

    Only tasks published during the test count: the worker thread outlives tests, and a task an earlier test
    left queued (a retry, a sweep's fan-out for a tenant since deleted) may run during this one.
    """

    def __init__(self) -> None:
        self.pending = 0
        self.finished: list[tuple[str, str, Any]] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def published(self, sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        with self._changed:
            self._ids.add((headers or {}).get("id", ""))
            self.pending += 1

    def ran(
        self,
        sender: Any = None,
        task_id: str = "",
        task: Any = None,
        state: str = "",
        retval: Any = None,
        **kwargs: Any,
    ) -> None:
        with self._changed:
            if task_id not in self._ids:
                return
            self.pending -= 1
            self.finished.append((task.name.rsplit(".", 1)[-1] if task else "?", state, retval))
            self._changed.notify_all()

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Wait until every published task (and what it published) has run."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.pending} task(s) still pending after {timeout} s")
                self._changed.wait(left)

    def runs(self, name: str) -> list[tuple[str, Any]]:
        """(state, return value) of each run of the task `name`, oldest first."""
        with self._lock:
            return [(state, retval) for task, state, retval in self.finished if task == name]


@pytest.fixture(scope="module")
def celery_worker_thread(committed_db: None) -> Iterator[None]:
    """A real Celery worker (solo pool, in a thread) on the configured broker; tasks are not eager meanwhile.

    Without REDIS_URL the broker is kombu's in-process "memory://" transport, which polls its queues and sleeps
    `polling_interval` (1 s by default) whenever they are empty: every task and retry would reach the worker up
    to a second late. The worker's connection polls every few milliseconds instead, as Redis (which blocks on
    the queue) effectively does.
    """
    options = celery_app.conf.broker_transport_options
    if celery_app.conf.broker_url.startswith("memory://"):
        celery_app.conf.broker_transport_options = {**options, "polling_interval": 0.005}
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
            yield
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.broker_transport_options = options


@pytest.fixture
def worker(db: None, celery_worker_thread: None) -> Iterator[TaskTracker]:
    """The worker, with a count of this test's tasks; the test ends only once they have all run."""
    tracker = TaskTracker()
    after_task_publish.connect(tracker.published, weak=False)
    task_postrun.connect(tracker.ran, weak=False)
    try:
        yield tracker
        tracker.wait_idle()
    finally:
        after_task_publish.disconnect(tracker.published)
        task_postrun.disconnect(tracker.ran)


class Worker(Protocol):
    def wait_idle(self) -> None: ...


@dataclass
class Live:
    """One end-to-end setup: a tenant connected to its simulated Papercups account through real webhooks."""

    tenant: Tenant
    account: Account
    agent: PapercupsUser
    papercups: FakePapercups
    worker: Worker
    server: LiveServer

    @property
    def webhook_url(self) -> str:
        return papercups_webhook_url(tenant=self.tenant)

    def post_webhook(self, body: Any, **kwargs: Any) -> requests.Response:
        return requests.post(self.webhook_url, json=body, timeout=5, **kwargs)

    def bot_messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages in Papercups written by the bot user (replies and notes)."""
        return [m for m in self.papercups.messages(conversation_id) if m["user_id"] == self.account.bot.id]

    def message_posts(self) -> list[Any]:
        return self.papercups.requests_to("POST", "/api/v1/messages")


def _fast_channel_settings(settings: Any, server: LiveServer) -> None:
    """The shared channel machinery, at test speed; webhook URLs point at the live server."""
    settings.NETIA_PUBLIC_URL = server.url
    settings.PAPERCUPS_QUIET_PERIOD_SECONDS = QUIET
    settings.PAPERCUPS_RETRY_BASE_SECONDS = 0.05
    settings.PAPERCUPS_RETRY_MAX_SECONDS = 0.2
    settings.PAPERCUPS_TIMEOUT_SECONDS = 2.0


def _articles(tenant: Tenant) -> None:
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
        knowledge_article_create(
            tenant=tenant, title="Opening hours", content="We are open Monday to Friday from 9:00 to 18:00."
        )


def disconnect(tenant: Tenant) -> None:
    """Drop a tenant made for one test, schema and owner included."""
    owner = tenant.owner_email
    Tenant.objects.get(pk=tenant.pk).delete(force_drop=True)
    User.objects.filter(email=owner).delete()


@contextlib.contextmanager
def _fresh_tenant(onboard: Callable[..., OnboardingResult], **connection: Any) -> Iterator[Tenant]:
    """A new tenant (cloned schema) with the shipping and opening-hours articles; dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    tenant = onboard(
        name=f"Live shop {suffix}", owner_email=f"owner-{suffix}@live.test", actor=SYSTEM, **connection
    ).tenant
    try:
        _articles(tenant)
        yield tenant
    finally:
        disconnect(tenant)


def connect(
    papercups: FakePapercups, *, scope: str | None, company: str = "Acme", register: bool = True
) -> tuple[Tenant, Account, PapercupsUser]:
    """A fresh tenant connected to a fresh simulated account with an agent, its webhook registered with `scope`
    (unless not `register`: the caller then posts the events itself). The caller drops it (`disconnect`)."""
    account = papercups.add_account(company_name=company, bot_email=f"bot@{company.lower()}.test")
    agent = papercups.add_agent(account, email=f"ana@{company.lower()}.test", display_name="Ana")
    suffix = uuid.uuid4().hex[:8]
    tenant = papercups_tenant_onboard(
        name=f"Live shop {suffix}",
        owner_email=f"owner-{suffix}@live.test",
        papercups_account_id=account.id,
        papercups_api_key=account.api_key,
        papercups_base_url=papercups.url,
        actor=SYSTEM,
    ).tenant
    assert papercups_connection_check(tenant=tenant).ok is True
    tenant.refresh_from_db()
    _articles(tenant)
    if register:
        assert papercups.register_webhook(account, papercups_webhook_url(tenant=tenant), scope=scope)
    return tenant, account, agent


@pytest.fixture
def live_settings(netia_server: LiveServer, settings: Any) -> Any:
    _fast_channel_settings(settings, netia_server)
    return settings


def _live(request: Any, scope: str | None) -> Iterator[Live]:
    papercups: FakePapercups = request.getfixturevalue("papercups")
    worker: Worker = request.getfixturevalue("worker")
    server: LiveServer = request.getfixturevalue("netia_server")
    request.getfixturevalue("live_settings")
    tenant, account, agent = connect(papercups, scope=scope)
    try:
        yield Live(tenant, account, agent, papercups, worker, server)
        worker.wait_idle()
        assert papercups.errors == []
    finally:
        disconnect(tenant)


@pytest.fixture
def live(db: None, request: Any) -> Iterator[Live]:
    """A fresh tenant connected to a fresh simulated account, its webhook registered with `conversation:updated`
    (the optional scoped subscription, made through Papercups' API)."""
    yield from _live(request, scope="conversation:updated")


@pytest.fixture
def live_unscoped(db: None, request: Any) -> Iterator[Live]:
    """The same, with the webhook as Papercups' dashboard makes it: no scope, so no `conversation:updated` ever."""
    yield from _live(request, scope=None)


@dataclass
class CrispLive:
    """One end-to-end setup: a tenant connected to its simulated Crisp website, the plugin's hooks to Netia."""

    tenant: Tenant
    website: Website
    operator: Operator
    crisp: FakeCrisp
    worker: Worker
    server: LiveServer

    def bot_messages(self, session_id: str) -> list[dict[str, Any]]:
        """The conversation's messages in Crisp that Netia posted (replies and notes)."""
        return [m for m in self.crisp.messages(session_id) if m["user"].get("type") == "participant"]


@pytest.fixture
def crisp_live(
    db: None, netia_server: LiveServer, worker: Worker, crisp: FakeCrisp, settings: Any
) -> Iterator[CrispLive]:
    """A fresh tenant connected to a fresh Crisp website that installed the plugin (hooks: the live server)."""
    _fast_channel_settings(settings, netia_server)
    crisp.hook_url = f"{netia_server.url}{CRISP_WEBHOOK_PATH}"
    website = crisp.add_website("Acme")
    operator = crisp.add_operator(website, "Ana Operator")
    with _fresh_tenant(tenant_onboard) as tenant:
        crisp_connection_set(
            tenant=tenant, website_id=website.website_id, handoff_operator_id=operator.user_id, actor=SYSTEM
        )
        yield CrispLive(tenant, website, operator, crisp, worker, netia_server)
        worker.wait_idle()
        assert crisp.errors == []
