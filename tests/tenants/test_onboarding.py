"""Onboarding: a tenant, its cloned schema, owner, membership, first API key and webhook secret — or nothing."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from chat.models import KnowledgeArticle
from netia.errors import Conflict, ValidationFailed
from tenants.models import ApiKey, Domain, Membership, Tenant, User
from tenants.services import api_key_authenticate, hash_api_key, tenant_onboard


def _onboard_json(*args: str) -> dict:
    out = StringIO()
    call_command("tenant_onboard", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _counts() -> tuple[int, int, int, int, int]:
    return (
        Tenant.objects.count(),
        Domain.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        ApiKey.objects.count(),
    )


def test_command_onboards_a_tenant_with_a_cloned_schema_owner_key_and_webhook_url(db, settings):
    settings.NETIA_PUBLIC_URL = "https://netia.example"
    account_id = str(uuid.uuid4())

    data = _onboard_json(
        "--name", "Blue Bottle Café", "--email", "Ana@Example.com", "--papercups-account-id", account_id
    )

    tenant = Tenant.objects.get(pk=data["tenant_id"])
    assert data["schema_name"] == tenant.schema_name
    assert tenant.schema_name.startswith("t_blue_bottle_cafe_")
    assert schema_exists(tenant.schema_name)
    assert tenant.name == "Blue Bottle Café"
    assert tenant.owner_email == "ana@example.com"
    assert tenant.subscription_status == Tenant.SubscriptionStatus.TRIALING
    assert data["chat_token"] == account_id
    assert data["webhook_url"] == f"https://netia.example/papercups/webhook?token={tenant.webhook_secret}"
    assert len(tenant.webhook_secret) >= 40
    membership = Membership.objects.get(tenant=tenant)
    assert (membership.user.email, membership.role) == ("ana@example.com", Membership.Role.OWNER)
    assert api_key_authenticate(raw_key=data["api_key"]).tenant == tenant
    assert Domain.objects.get(tenant=tenant).is_primary is True


def test_chat_token_is_a_generated_public_token_without_papercups(db):
    data = _onboard_json("--name", "No Papercups Ltd", "--email", "owner@nopc.test")

    tenant = Tenant.objects.get(pk=data["tenant_id"])
    assert tenant.papercups_account_id is None
    assert data["chat_token"] == tenant.public_token
    assert data["chat_token"].startswith("ct_")


def test_cloned_schema_is_migrated_and_isolated_with_its_own_sequences(db, tenant, other_tenant):
    with tenant_context(tenant):
        first_a = KnowledgeArticle.objects.create(title="A", content="only in A")
    with tenant_context(other_tenant):
        assert KnowledgeArticle.objects.count() == 0
        first_b = KnowledgeArticle.objects.create(title="B", content="only in B")
    with tenant_context(tenant):
        assert list(KnowledgeArticle.objects.values_list("title", flat=True)) == ["A"]
    # Each clone owns its sequences (clone_schema copies them), rather than sharing the template's.
    assert (first_a.title, first_b.title) == ("A", "B")
    assert _article_sequence(tenant) == f"{tenant.schema_name}.chat_knowledgearticle_id_seq"
    assert _article_sequence(other_tenant) == f"{other_tenant.schema_name}.chat_knowledgearticle_id_seq"


def _article_sequence(tenant: Tenant) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [f'"{tenant.schema_name}".chat_knowledgearticle'])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X", "--email", "not-an-email"], "Invalid email address: 'not-an-email'."),
        (
            ["--name", "X", "--email", "a@b.test", "--papercups-account-id", "1234"],
            "The Papercups account id must be a UUID, got '1234'.",
        ),
        (["--name", "   ", "--email", "a@b.test"], "The tenant name must be 1 to 200 characters."),
        (["--name", "X", "--email", "a@b.test", "--papercups-url", "ftp://x"], "Invalid Papercups URL: 'ftp://x'."),
    ],
)
def test_command_rejects_bad_input_and_creates_nothing(db, session_tenants, args, message):
    before = _counts()

    with pytest.raises(CommandError) as excinfo:
        call_command("tenant_onboard", *args, "--json", stdout=StringIO())

    assert str(excinfo.value) == message
    assert _counts() == before


def test_duplicate_papercups_account_is_refused_and_creates_nothing(db, tenant):
    before = _counts()

    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "tenant_onboard",
            "--name",
            "Copycat",
            "--email",
            "c@c.test",
            "--papercups-account-id",
            str(tenant.papercups_account_id),
            stdout=StringIO(),
        )
    assert _counts() == before


def test_failure_midway_leaves_no_tenant_row_schema_user_or_key(db, session_tenants):
    """A real database failure at the last step (inserting the API key) rolls back everything."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.netia_test_fail() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER netia_test_fail BEFORE INSERT ON public.tenants_apikey "
            "FOR EACH ROW EXECUTE FUNCTION public.netia_test_fail()"
        )
    before = _counts()
    schemas_before = _schemas()

    with pytest.raises(Exception, match="injected failure"):
        tenant_onboard(name="Half Made", owner_email="half@made.test")

    assert _counts() == before
    assert _schemas() == schemas_before
    assert not User.objects.filter(email="half@made.test").exists()


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata")
        return {row[0] for row in cursor.fetchall()}


def test_service_errors_carry_codes(db, tenant):
    with pytest.raises(ValidationFailed) as invalid:
        tenant_onboard(name="Y", owner_email="nope")
    assert (invalid.value.code, invalid.value.extra) == ("invalid", {"field": "email"})

    with pytest.raises(Conflict) as conflict:
        tenant_onboard(name="Y", owner_email="y@y.test", papercups_account_id=tenant.papercups_account_id)
    assert conflict.value.code == "conflict"


def test_existing_user_becomes_owner_of_a_second_tenant(db, tenant):
    result = tenant_onboard(name="Second Shop", owner_email=tenant.owner_email)

    assert result.owner.email == tenant.owner_email
    assert User.objects.filter(email=tenant.owner_email).count() == 1
    assert set(Membership.objects.filter(user=result.owner).values_list("tenant__name", flat=True)) == {
        "Acme Test Shop",
        "Second Shop",
    }
    assert ApiKey.objects.get(tenant=result.tenant).secret_hash == hash_api_key(result.api_key_secret)


def _clone_function_comment() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p "
            "WHERE p.proname = 'clone_schema' AND p.pronamespace = 'public'::regnamespace"
        )
        return cursor.fetchone()[0]


def test_clone_function_is_installed_once_and_replaced_when_it_differs(db, session_tenants):
    tenant_onboard(name="First Clone", owner_email="first@clone.test")
    marker = _clone_function_comment()
    assert marker.startswith("netia:")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.proname = 'clone_schema' AND p.pronamespace = 'public'::regnamespace"
        )
        (signature,) = cursor.fetchone()
        cursor.execute(f"COMMENT ON FUNCTION {signature} IS 'an older django-tenants'")
    second = tenant_onboard(name="Second Clone", owner_email="second@clone.test")

    assert _clone_function_comment() == marker
    assert schema_exists(second.tenant.schema_name)
