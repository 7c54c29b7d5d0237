"""Staff API keys: created by a command for staff users only, printed once, stored hashed, revocable."""

from __future__ import annotations

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from netia.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from staff.models import StaffApiKey
from staff.services import staff_key_authenticate, staff_key_create, staff_key_revoke
from tenants.models import User


def _create(*args: str) -> dict:
    out = StringIO()
    call_command("staff_key_create", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_prints_the_key_once_and_stores_only_its_hash(staff_user, client):
    data = _create("--email", "ROOT@netia.test")

    key = StaffApiKey.objects.get(user=staff_user)
    assert data == {"api_key": data["api_key"], "id": str(key.pk), "prefix": key.prefix}
    assert data["api_key"].startswith(f"ns_{key.prefix}_")
    assert key.secret_hash == hashlib.sha256(data["api_key"].encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM staff_staffapikey k WHERE id = %s", [key.pk])
        (row,) = cursor.fetchone()
    assert data["api_key"].split("_", 2)[2] not in row
    response = client.get("/api/v1/admin/stats", headers={"Authorization": f"Bearer {data['api_key']}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("email", "message"),
    [("nobody@netia.test", "No user has the email address"), ("owner@acme.test", "Only active staff users")],
)
def test_the_command_refuses_unknown_and_non_staff_users(tenant, email, message):
    with pytest.raises(CommandError, match=message):
        _create("--email", email)
    assert not StaffApiKey.objects.exists()


def test_only_active_staff_may_hold_a_key(db):
    customer = User.objects.create_user("shop@owner.test")
    former = User.objects.create_user("former@netia.test", is_staff=True, is_active=False)

    for user in (customer, former):
        with pytest.raises(PermissionDenied):
            staff_key_create(user=user)
    with pytest.raises(ValidationFailed):
        staff_key_create(user=User.objects.create_user("new@netia.test", is_staff=True), name=" ")
    assert not StaffApiKey.objects.exists()


def test_a_revoked_key_is_refused_and_keeps_its_first_revocation_time(staff_user):
    key, secret = staff_key_create(user=staff_user)
    first = staff_key_revoke(key=key).revoked_at

    assert staff_key_revoke(key=key).revoked_at == first
    with pytest.raises(AuthenticationFailed, match="revoked"):
        staff_key_authenticate(raw_key=secret)


def test_authentication_records_use(staff_user):
    key, secret = staff_key_create(user=staff_user)

    found = staff_key_authenticate(raw_key=secret)

    assert (found.pk, found.user) == (key.pk, staff_user)
    assert StaffApiKey.objects.get(pk=key.pk).last_used_at is not None
