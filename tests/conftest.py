"""Test session setup: one test database, the clone template, and two tenants created once per session."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from netia.tenancy import use_public_schema
from tenants.audit import SYSTEM
from tenants.models import AuditEvent, Tenant

ROOT = Path(__file__).resolve().parents[1]
# What decides the migrated database: every migration, the pinned packages (theirs), the apps and the code that
# runs `migrate` for the public schema and the tenants' clone template.
MIGRATION_INPUTS = [
    *ROOT.glob("*/migrations/*.py"),
    ROOT / "requirements.txt",
    ROOT / "netia" / "settings.py",
    ROOT / "tenants" / "migration_executor.py",
    ROOT / "tenants" / "management" / "commands" / "migrate_schemas.py",
    ROOT / "tenants" / "services.py",
    Path(__file__),
]


def _migrated_template_name() -> str:
    """The database that keeps a freshly migrated test database: the test database's name (call before the test
    database is set up), "_migrated_" and a hash of MIGRATION_INPUTS."""
    digest = hashlib.sha256()
    for path in sorted(MIGRATION_INPUTS):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    test_name = connection.settings_dict.get("TEST", {}).get("NAME") or f"test_{connection.settings_dict['NAME']}"
    return f"{test_name}_migrated_{digest.hexdigest()[:12]}"


def _databases_like(template: str) -> set[str]:
    """`template` and the other copies of the same test database (other hashes) on the server."""
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [template[:-12]])
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings: None, django_db_keepdb: bool, django_db_createdb: bool, django_db_blocker: Any
) -> str | None:
    """Migrating the test database from nothing takes minutes (dj-stripe's hundreds of migrations, twice: the
    public schema and the clone template), for the same result every run until a migration changes. So the
    first run keeps a copy of the migrated database (see `django_db_setup` below) and later ones create the
    test database from it (CREATE DATABASE … TEMPLATE, a file copy); `migrate` still runs and finds nothing to
    do. Not with --reuse-db (that database is kept as it is)."""
    if django_db_keepdb and not django_db_createdb:
        return None
    with django_db_blocker.unblock():
        template = _migrated_template_name()
        if template in _databases_like(template):
            connection.settings_dict.setdefault("TEST", {})["TEMPLATE"] = template
    return template


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_modify_db_settings: str | None, django_db_blocker: Any) -> None:
    """After the test database was migrated from nothing: keep a copy for the next runs, drop older copies."""
    template = django_db_modify_db_settings
    if template is None or connection.settings_dict.get("TEST", {}).get("TEMPLATE") == template:
        return
    with django_db_blocker.unblock():
        connection.close()  # the copy needs the source database without sessions
        try:
            with connection._nodb_cursor() as cursor:
                for stale in _databases_like(template):
                    cursor.execute(f'DROP DATABASE IF EXISTS "{stale}"')
                cursor.execute(f'CREATE DATABASE "{template}" TEMPLATE "{connection.settings_dict["NAME"]}"')
        except DatabaseError as error:  # another run copying at the same moment: the next run copies again
            warnings.warn(f"the migrated test database was not kept: {error}", stacklevel=1)


# Created once per session (cloning the template) and kept for every test; tests wrap their own data
# in a transaction that is rolled back.
SESSION_TENANTS: dict[str, dict[str, Any]] = {
    "acme": {
        "name": "Acme Test Shop",
        "owner_email": "owner@acme.test",
        "papercups_account_id": "2ebbad4c-1f0a-4c8e-9d3b-eaf9ebf469a5",
    },
    "globex": {
        "name": "Globex Test Clinic",
        "owner_email": "owner@globex.test",
        "papercups_account_id": "7d1e0c4b-3a2f-4b8e-9c6d-5e4f3a2b1c0d",
    },
}


@pytest.fixture(scope="session")
def session_tenants(django_db_setup: None, django_db_blocker: Any) -> dict[str, Tenant]:
    """The session's tenants, onboarded once (or found again with --reuse-db)."""
    from webhooks.services import papercups_tenant_onboard

    tenants: dict[str, Tenant] = {}
    with django_db_blocker.unblock():
        for key, spec in SESSION_TENANTS.items():
            tenant = Tenant.objects.filter(papercups_account_id=spec["papercups_account_id"]).first()
            tenants[key] = tenant or papercups_tenant_onboard(**spec, actor=SYSTEM).tenant
            _reset_billing(tenants[key])
            # Tests count the audit events they cause; the session's own setup leaves none.
            AuditEvent.objects.filter(tenant=tenants[key]).delete()
    return tenants


def _reset_billing(tenant: Tenant) -> None:
    """A session tenant is on a long trial with nothing used, whatever an earlier (--reuse-db) session left."""
    from billing.models import BillingAccount, BillingNotification, UsagePeriod
    from billing.services import trial_extend

    trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=365), actor=SYSTEM)
    BillingAccount.objects.filter(tenant=tenant).update(
        plan=None,
        stripe_customer_id="",
        stripe_subscription_id="",
        stripe_status="",
        current_period_start=None,
        current_period_end=None,
        cancel_at_period_end=False,
        past_due_since=None,
    )
    UsagePeriod.objects.filter(tenant=tenant).delete()
    BillingNotification.objects.filter(tenant=tenant).delete()
    Tenant.objects.filter(pk=tenant.pk).update(subscription_status=Tenant.SubscriptionStatus.TRIALING)


@pytest.fixture
def tenant(db: None, session_tenants: dict[str, Tenant]) -> Tenant:
    """Tenant A, fresh from the database."""
    return Tenant.objects.get(pk=session_tenants["acme"].pk)


@pytest.fixture
def other_tenant(db: None, session_tenants: dict[str, Tenant]) -> Tenant:
    """Tenant B, for isolation tests."""
    return Tenant.objects.get(pk=session_tenants["globex"].pk)


@pytest.fixture(autouse=True, scope="session")
def _celery_eager() -> None:
    """Tasks run in process, on the caller's transaction hooks; tests that need a real worker start one."""
    from netia.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _public_schema_and_clean_cache() -> Iterator[None]:
    """Every test starts and ends in the public schema with an empty cache."""
    yield
    use_public_schema()
    cache.clear()


@pytest.fixture
def fake_openai(settings: Any) -> Iterator[Any]:
    """A real local OpenAI-compatible server, with the real client pointed at it."""
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as server:
        settings.OPENAI_API_KEY = "sk-test"
        settings.OPENAI_BASE_URL = f"{server.url}/v1"
        settings.OPENAI_MAX_RETRIES = 0
        settings.OPENAI_TIMEOUT = 5.0
        yield server


@pytest.fixture
def smtp(settings: Any) -> Iterator[Any]:
    """A real local SMTP server, with Django's SMTP backend pointed at it."""
    from tests.fakes.smtp_server import FakeSmtp

    with FakeSmtp() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        yield server
