"""Property-based fuzzing of the whole documented API with schemathesis, with real credentials for every operation.

Every operation of the OpenAPI document gets generated requests (valid and invalid), sent through the real
WSGI application, real PostgreSQL schemas and Redis; billing talks to the fake Stripe server, the Crisp
connection to the Crisp simulator. Whatever the
input: no 5xx, and every 4xx in the documented error shape. Derandomized (same cases every run) and bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from netia.wsgi import application
from staff.services import staff_key_create
from tenants.audit import SYSTEM
from tenants.models import Tenant, User
from tenants.services import api_key_create
from tests.billing.conftest import stripe_fake  # noqa: F401 - the fixture, for billing operations
from tests.webhooks.conftest import crisp  # noqa: F401 - the Crisp simulator, for the Crisp operations

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def api_schema(db: None) -> Iterator[Any]:
    """The document, loaded from the app, whose calls go through the WSGI app in this test's transaction."""
    # Like django.test.Client: the request signals must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _credentials(operation: Any, tenant: Tenant, api_key: str, staff_key: str) -> dict[str, dict[str, str]]:
    if operation.path.startswith("/api/v1/admin/"):
        return {"headers": {"Authorization": f"Bearer {staff_key}"}}
    if operation.path == "/api/v1/chat":
        return {"headers": {"Authorization": f"Bearer {tenant.chat_token}"}}
    if operation.path == "/papercups/webhook":
        return {"query": {"token": tenant.webhook_secret}}
    if operation.path.startswith("/api/v1/customer/"):
        return {"headers": {"Authorization": f"Bearer {api_key}"}}
    return {}


def assert_error_shape(case: Any, response: Any) -> None:
    if 400 <= response.status_code < 500:
        content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
        assert content_type[0].startswith("application/json"), case.as_curl_command()
        body = response.json()
        assert set(body) == {"error"}, case.as_curl_command()
        assert set(body["error"]) == {"code", "message", "details"}, case.as_curl_command()
        assert isinstance(body["error"]["code"], str), case.as_curl_command()
        assert isinstance(body["error"]["details"], dict), case.as_curl_command()


def _fuzz(operation: Any, mode: Any, credentials: dict[str, dict[str, str]], seen: dict[str, set[int]]) -> None:
    """Send the operation's generated cases (with the real credentials) and check every answer."""

    @given(case=operation.as_strategy(generation_mode=mode, **credentials))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for location, values in credentials.items():
            getattr(case, location).update(values)  # negative cases may have mangled them
        response = case.call()
        seen.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        assert_error_shape(case, response)

    run()


@pytest.mark.usefixtures("stripe_fake", "crisp")
def test_no_operation_answers_5xx_or_an_undocumented_error_shape(api_schema, tenant, settings):
    settings.CHAT_RATE_PER_IP = settings.CHAT_RATE_PER_TOKEN = "100000/m"
    settings.CHAT_TENANT_TURNS_PER_HOUR = 100000
    settings.PAPERCUPS_VERIFY_RATE = "100000/m"
    _, api_key = api_key_create(tenant=tenant, name="schemathesis", actor=SYSTEM)
    _, staff_key = staff_key_create(user=User.objects.create_superuser("fuzz@netia.test"), name="schemathesis")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    seen: dict[str, set[int]] = {}

    for operation in operations:
        credentials = _credentials(operation, tenant, api_key, staff_key)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, credentials, seen)
            except Unsatisfiable:
                # Nothing in the operation can be made invalid (e.g. a GET without parameters).
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label

    assert len(seen) == len(operations)
    # Real credentials reached the operations: most answered something other than 401.
    assert sum(1 for statuses in seen.values() if statuses - {401}) >= len(operations) - 1, seen
