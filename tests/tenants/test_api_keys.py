"""API keys: stored hashed, shown once, revocable."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from netia.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from tenants.audit import SYSTEM
from tenants.models import ApiKey
from tenants.services import api_key_authenticate, api_key_create, api_key_revoke, tenant_resume, tenant_suspend


def test_only_the_sha256_of_the_key_is_stored(tenant):
    api_key, secret = api_key_create(tenant=tenant, name="CI", actor=SYSTEM)

    assert secret.startswith(f"nk_{api_key.prefix}_")
    assert api_key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM tenants_apikey k WHERE id = %s", [api_key.pk])
        (row,) = cursor.fetchone()
    assert secret not in row
    assert secret.split("_", 2)[2] not in row


def test_authenticate_resolves_the_tenant_and_records_use(tenant):
    api_key, secret = api_key_create(tenant=tenant, name="CI", permissions=["chat"], actor=SYSTEM)

    found = api_key_authenticate(raw_key=secret)

    assert (found.pk, found.tenant, found.permissions) == (api_key.pk, tenant, ["chat"])
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


@pytest.mark.parametrize("mangle", [lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), lambda s: "", lambda s: "nk_x"])
def test_wrong_keys_are_refused(tenant, mangle):
    _, secret = api_key_create(tenant=tenant, name="CI", actor=SYSTEM)

    with pytest.raises(AuthenticationFailed):
        api_key_authenticate(raw_key=mangle(secret))


def test_revoked_key_is_refused_and_revocation_time_is_kept(tenant):
    api_key, secret = api_key_create(tenant=tenant, name="CI", actor=SYSTEM)
    first = api_key_revoke(api_key=api_key, actor=SYSTEM).revoked_at

    assert api_key_revoke(api_key=api_key, actor=SYSTEM).revoked_at == first
    with pytest.raises(AuthenticationFailed, match="revoked"):
        api_key_authenticate(raw_key=secret)


def test_suspended_tenant_keys_are_forbidden_until_resumed(tenant):
    _, secret = api_key_create(tenant=tenant, name="CI", actor=SYSTEM)
    tenant_suspend(tenant=tenant, actor=SYSTEM)

    with pytest.raises(PermissionDenied):
        api_key_authenticate(raw_key=secret)
    tenant_resume(tenant=tenant, actor=SYSTEM)
    assert api_key_authenticate(raw_key=secret).tenant == tenant


def test_unknown_permissions_are_rejected(tenant):
    with pytest.raises(ValidationFailed) as excinfo:
        api_key_create(tenant=tenant, name="CI", permissions=["chat", "root"], actor=SYSTEM)
    assert excinfo.value.extra == {"unknown": ["root"]}
    assert not ApiKey.objects.filter(name="CI").exists()
