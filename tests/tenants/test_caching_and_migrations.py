"""The version-keyed tenant cache (never older than the last write, secrets encrypted) and migrate_schemas'
pending-only filter."""

from __future__ import annotations

import contextlib

from django.core.cache import cache
from django.db import connection, transaction

from netia.versioned_cache import entry_key
from tenants.migration_executor import schemas_with_pending_migrations
from tenants.models import Tenant
from tenants.selectors import TENANTS_CACHE, tenant_get_by_chat_token


def test_a_cached_tenant_is_never_older_than_the_last_write(tenant):
    token = tenant.public_token
    assert tenant_get_by_chat_token(token=token).name == tenant.name  # now cached

    Tenant.objects.filter(pk=tenant.pk).update(name="Renamed by an update")
    renamed = tenant_get_by_chat_token(token=token).name
    saved = Tenant.objects.get(pk=tenant.pk)
    saved.name = "Renamed by a save"
    saved.save()

    assert (renamed, tenant_get_by_chat_token(token=token).name) == ("Renamed by an update", "Renamed by a save")


def test_a_row_read_back_before_a_rollback_is_never_served_after_it(tenant):
    """Inside a transaction the version is provisional: this connection sees its own write, but what it reads
    back is not cached, so a rollback leaves nothing of the write behind (it stayed cached before)."""
    token = tenant.public_token
    tenant_get_by_chat_token(token=token)  # cached
    with contextlib.suppress(RuntimeError), transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(name="Never committed")
        read_back = tenant_get_by_chat_token(token=token).name
        raise RuntimeError("the transaction fails")

    assert (read_back, tenant_get_by_chat_token(token=token).name) == ("Never committed", tenant.name)


def test_the_commit_makes_the_version_final_and_caching_resumes(
    tenant, django_capture_on_commit_callbacks, django_assert_num_queries
):
    token = tenant.public_token
    with django_capture_on_commit_callbacks(execute=True):
        Tenant.objects.filter(pk=tenant.pk).update(name="Committed")
        assert tenant_get_by_chat_token(token=token).name == "Committed"
    assert tenant_get_by_chat_token(token=token).name == "Committed"  # loaded, cached under the final version

    with django_assert_num_queries(0):
        assert tenant_get_by_chat_token(token=token).name == "Committed"


def test_secrets_stay_encrypted_in_the_cache(tenant):
    tenant_get_by_chat_token(token=tenant.public_token)

    entry = cache.get(entry_key(TENANTS_CACHE, f"chat:{tenant.public_token}"))

    assert entry is not None
    assert tenant.webhook_secret not in repr(entry)
    assert tenant_get_by_chat_token(token=tenant.public_token).webhook_secret == tenant.webhook_secret


def test_a_process_looks_a_tenant_up_again_from_its_own_copy_checked_against_the_version(
    tenant, django_assert_num_queries
):
    token = tenant.public_token
    first = tenant_get_by_chat_token(token=token)
    cache.delete(entry_key(TENANTS_CACHE, f"chat:{token}"))  # only this process still has the row
    first.name = "Changed in memory"
    first.chat_allowed_origins.append("https://changed.example")

    with django_assert_num_queries(0):
        again = tenant_get_by_chat_token(token=token)
    Tenant.objects.filter(pk=tenant.pk).update(name="Renamed")  # a new version: the process's copy is stale
    renamed = tenant_get_by_chat_token(token=token)

    assert again is not first
    assert (again.name, again.chat_allowed_origins, again.webhook_secret) == (tenant.name, [], tenant.webhook_secret)
    assert renamed.name == "Renamed"


def test_only_schemas_lacking_a_migration_are_migrated(tenant, other_tenant):
    schemas = [tenant.schema_name, other_tenant.schema_name]
    assert schemas_with_pending_migrations(schemas) == []

    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{other_tenant.schema_name}".django_migrations WHERE app = %s AND name = %s',
            ["chat", "0004_conversation_bot_since"],
        )

    assert schemas_with_pending_migrations(schemas) == [other_tenant.schema_name]
