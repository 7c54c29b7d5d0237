"""Who may call the admin API: every endpoint refuses anonymous callers (401), tenant API keys and signed-in
users who are not staff (403), and staff without the permission (403); a denied call changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from staff.models import StaffApiKey
from staff.services import staff_key_revoke
from tenants.models import AuditEvent, Tenant, User
from tests.staff.conftest import Api

# (method, path) of every admin endpoint; {id} is the session tenant A.
ENDPOINTS = [
    ("get", "tenants"),
    ("post", "tenants"),
    ("get", "tenants/{id}"),
    ("post", "tenants/{id}/suspend"),
    ("post", "tenants/{id}/resume"),
    ("post", "tenants/{id}/webhook-secret"),
    ("post", "tenants/{id}/sign-in-link"),
    ("get", "tenants/{id}/audit"),
    ("get", "stats"),
]
WRITES = [(method, path) for method, path in ENDPOINTS if method == "post"]
CREATE_BODY = {"name": "Denied Shop", "email": "denied@shop.test"}


def _call(api: Api, method: str, path: str, tenant: Tenant):
    path = path.format(id=tenant.pk)
    if method == "get":
        return api.get(path)
    return api.post(path, CREATE_BODY if path == "tenants" else {})


def _state(tenant: Tenant) -> tuple:
    """What any admin write could have changed."""
    tenant.refresh_from_db()
    return (Tenant.objects.count(), tenant.suspended_at, tenant.webhook_secret, AuditEvent.objects.count())


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_callers_get_401(client, tenant, method, path):
    before = _state(tenant)

    response = _call(Api(client), method, path, tenant)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Bearer"
    assert _state(tenant) == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_tenant_api_key_gets_403(client, tenant, tenant_key, method, path):
    before = _state(tenant)

    response = _call(Api(client, tenant_key), method, path, tenant)

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "A tenant API key cannot use the admin API.",
        "details": {"reason": "not_staff"},
    }
    assert _state(tenant) == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_signed_in_user_who_is_not_staff_gets_403(client, tenant, customer, method, path):
    client.force_login(customer)
    before = _state(tenant)

    response = _call(Api(client), method, path, tenant)

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"reason": "not_staff"}
    assert _state(tenant) == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_view_only_staff_may_read_but_not_change(client, tenant, viewer_key, method, path):
    api = Api(client, viewer_key)
    before = _state(tenant)

    response = _call(api, method, path, tenant)

    assert response.status_code == 403
    assert response.json()["error"]["details"]["required"] in ("tenants.add_tenant", "tenants.change_tenant")
    assert _state(tenant) == before
    assert api.get(f"tenants/{tenant.pk}").status_code == 200


@pytest.mark.parametrize(
    "credential",
    ["ns_000000000000_" + "x" * 43, "nk_000000000000_" + "x" * 43, "garbage", "REVOKED", "Basic"],
)
def test_a_wrong_or_revoked_credential_gets_401(client, tenant, staff_user, staff_key, credential):
    if credential == "REVOKED":
        staff_key_revoke(key=StaffApiKey.objects.get(user=staff_user))
        credential = staff_key
    api = Api(client, credential)
    if credential == "Basic":
        api.headers = {"Authorization": "Basic cm9vdDpwdw=="}

    response = api.get("tenants")

    assert response.status_code == 401


def test_a_staff_key_stops_working_when_its_user_is_no_longer_staff(client, staff_user, staff_key):
    User.objects.filter(pk=staff_user.pk).update(is_staff=False)

    response = Api(client, staff_key).get("stats")

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"reason": "not_staff"}


def test_a_staff_session_works_and_writes_need_the_csrf_token(tenant, staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    api = Api(client)
    client.get("/admin/")  # the console sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    read = api.get(f"tenants/{tenant.pk}")
    without_token = api.post(f"tenants/{tenant.pk}/suspend")
    tenant.refresh_from_db()
    suspended_without_token = tenant.is_suspended
    api.headers = {"X-CSRFToken": token}
    with_token = api.post(f"tenants/{tenant.pk}/suspend")

    assert read.status_code == 200
    assert (without_token.status_code, without_token.json()["error"]["code"]) == (403, "csrf_failed")
    assert suspended_without_token is False
    assert with_token.status_code == 200
    assert with_token.json()["tenant"]["suspended"] is True
