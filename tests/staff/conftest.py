"""Admin API fixtures: staff with every permission, view-only staff, a customer, and their credentials."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from staff.services import staff_key_create
from tenants.audit import SYSTEM
from tenants.models import Tenant, User
from tenants.services import api_key_create

VIEW_PERMISSIONS = ["view_tenant", "view_auditevent", "view_apikey"]


@pytest.fixture
def staff_user(db: None) -> User:
    return User.objects.create_superuser("root@netia.test", "pw-unused-123")


@pytest.fixture
def viewer(db: None) -> User:
    """Staff who may look but not change anything."""
    user = User.objects.create_user("viewer@netia.test", "pw-unused-123", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tenants", codename__in=VIEW_PERMISSIONS)
    )
    return user


@pytest.fixture
def customer(db: None, tenant: Tenant) -> User:
    """The owner of the session's tenant A: signed in, but not staff."""
    return User.objects.get(email=tenant.owner_email)


@pytest.fixture
def staff_key(staff_user: User) -> str:
    return staff_key_create(user=staff_user, name="CI")[1]


@pytest.fixture
def viewer_key(viewer: User) -> str:
    return staff_key_create(user=viewer, name="Read only")[1]


@pytest.fixture
def tenant_key(tenant: Tenant) -> str:
    return api_key_create(tenant=tenant, name="Tenant CI", actor=SYSTEM)[1]


class Api:
    """A client of the admin API with one credential."""

    def __init__(self, client: Client, key: str | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(f"/api/v1/admin/{path}", params or {}, headers=self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        data = "" if body is None else body
        return self.client.post(f"/api/v1/admin/{path}", data, content_type="application/json", headers=self.headers)


@pytest.fixture
def api(client: Client, staff_key: str) -> Api:
    """The admin API as staff holding every permission, with a staff key."""
    return Api(client, staff_key)
