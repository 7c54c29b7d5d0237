"""Onboarding: a tenant, its cloned schema, owner, membership, first API key and webhook secret — or nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from chat.models import KnowledgeArticle
from netia.errors import Conflict, ValidationFailed
from tenants.audit import SYSTEM
from tenants.keys import hash_api_key
from tenants.models import ApiKey, Domain, Membership, Tenant, User
from tenants.services import api_key_authenticate, tenant_onboard
from webhooks.services import papercups_tenant_onboard


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
    assert data["chat_token"] == tenant.public_token
    assert tenant.webhook_secret_fingerprint == hashlib.sha256(tenant.webhook_secret.encode()).hexdigest()
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
        tenant_onboard(name="Half Made", owner_email="half@made.test", actor=SYSTEM)

    assert _counts() == before
    assert _schemas() == schemas_before
    assert not User.objects.filter(email="half@made.test").exists()


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata")
        return {row[0] for row in cursor.fetchall()}


def test_service_errors_carry_codes(db, tenant):
    with pytest.raises(ValidationFailed) as invalid:
        tenant_onboard(name="Y", owner_email="nope", actor=SYSTEM)
    assert (invalid.value.code, invalid.value.extra) == ("invalid", {"field": "email"})

    with pytest.raises(Conflict) as conflict:
        papercups_tenant_onboard(
            name="Y", owner_email="y@y.test", papercups_account_id=tenant.papercups_account_id, actor=SYSTEM
        )
    assert conflict.value.code == "conflict"


def test_existing_user_becomes_owner_of_a_second_tenant(db, tenant):
    result = tenant_onboard(name="Second Shop", owner_email=tenant.owner_email, actor=SYSTEM)

    assert result.owner.email == tenant.owner_email
    assert User.objects.filter(email=tenant.owner_email).count() == 1
    assert set(Membership.objects.filter(user=result.owner).values_list("tenant__name", flat=True)) == {
        "Acme Test Shop",
        "Second Shop",
    }
    assert ApiKey.objects.get(tenant=result.tenant).secret_hash == hash_api_key(result.api_key_secret)


def _structure(schema: str) -> dict[str, list[tuple]]:
    """A schema's tables, columns, constraints and indexes, with the schema's own name taken out."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2",
            [schema],
        )
        columns = cursor.fetchall()
        cursor.execute(
            "SELECT cl.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class cl ON cl.oid = c.conrelid WHERE c.connamespace = %s::regnamespace ORDER BY 1, 2",
            [schema],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1, 2", [schema]
        )
        indexes = cursor.fetchall()
    strip = lambda rows: [tuple(str(v).replace(f"{schema}.", "") if v else v for v in row) for row in rows]  # noqa: E731
    return {"columns": strip(columns), "constraints": strip(constraints), "indexes": strip(indexes)}


def test_a_new_tenant_schema_has_exactly_the_templates_structure_and_migration_records(db, settings):
    result = tenant_onboard(name="Structure Check", owner_email="structure@check.test", actor=SYSTEM)
    new, base = result.tenant.schema_name, settings.TENANT_BASE_SCHEMA

    assert _structure(new) == _structure(base)
    assert len(_structure(new)["indexes"]) >= 10
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT app, name FROM "{new}".django_migrations EXCEPT SELECT app, name FROM "{base}".django_migrations'
        )
        assert cursor.fetchall() == []
        cursor.execute(f'SELECT count(*) FROM "{new}".django_migrations')
        (copied,) = cursor.fetchone()
        cursor.execute(f"SELECT nextval(pg_get_serial_sequence('\"{new}\".django_migrations', 'id'))")
        assert cursor.fetchone()[0] > copied
