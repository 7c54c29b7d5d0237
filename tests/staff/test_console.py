"""The staff console: actions need their permission, a tenant's conversations and leads are read-only and every
look is audited, and password guessing on the sign-in page is throttled."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import Conversation, Lead
from chat.services import conversation_get_or_create, message_record_visitor
from netia.tenancy import current_schema
from staff.selectors import tenant_records_get
from tenants.models import AuditEvent, User

# (changelist, action) of every custom admin action: each changes something, so each needs "change".
ACTIONS = [
    ("admin:tenants_tenant_changelist", "suspend"),
    ("admin:tenants_tenant_changelist", "resume"),
    ("admin:tenants_apikey_changelist", "revoke"),
    ("admin:billing_billingaccount_changelist", "extend_trial"),
    ("admin:webhooks_papercupsconnection_changelist", "check_connection"),
    ("admin:webhooks_crispconnection_changelist", "check_connection"),
    ("admin:webhooks_faileddelivery_changelist", "retry"),
    ("admin:staff_staffapikey_changelist", "revoke"),
]


def _every_action() -> list[tuple[str, str, Any]]:
    """(model, action name, function) of every action of every page of the console, third-party ones included."""
    found = [("*", name, action) for name, action in admin.site.actions]
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            function = getattr(type(model_admin), action) if isinstance(action, str) else action
            found.append((model._meta.label, function.__name__, function))
    return found


def test_every_action_in_the_console_declares_the_permission_it_needs():
    undeclared = [
        (model, name) for model, name, function in _every_action() if not getattr(function, "allowed_permissions", ())
    ]

    assert len(_every_action()) > len(ACTIONS)
    assert undeclared == []


@pytest.fixture
def view_everything(db: None) -> User:
    """Staff holding every view permission and nothing else."""
    user = User.objects.create_user("looker@netia.test", "pw-unused-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


def _actions(client: Client, changelist: str) -> list[str]:
    response = client.get(reverse(changelist))
    assert response.status_code == 200
    form = response.context.get("action_form")
    return [name for name, _ in form.fields["action"].choices if name] if form else []


@pytest.mark.parametrize(("changelist", "action"), ACTIONS)
def test_actions_are_offered_only_to_staff_with_the_change_permission(
    client, staff_user, view_everything, tenant, changelist, action
):
    client.force_login(view_everything)
    offered_to_viewer = _actions(client, changelist)
    client.force_login(staff_user)
    offered_to_superuser = _actions(client, changelist)

    assert action not in offered_to_viewer
    assert action in offered_to_superuser


def test_a_view_only_user_cannot_reach_dj_stripes_resync_page_either(client, staff_user, view_everything, tenant):
    url = reverse("admin:djstripe_custom_action", args=["_resync_instances", "customer"])
    client.force_login(view_everything)
    refused = client.post(url, {})
    client.force_login(staff_user)
    reached = client.post(url, {})  # an empty selection: dj-stripe shows its confirmation page again

    assert refused.status_code == 403
    assert reached.status_code == 200
    assert "djstripe/admin/confirm_action.html" in [template.name for template in reached.templates]


def test_a_view_only_user_posting_suspend_changes_nothing(client, view_everything, tenant):
    client.force_login(view_everything)

    client.post(reverse("admin:tenants_tenant_changelist"), {"action": "suspend", "_selected_action": [tenant.pk]})

    tenant.refresh_from_db()
    assert tenant.suspended_at is None
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_console_suspension_is_audited_with_the_staff_user_and_ip(client, staff_user, tenant):
    client.force_login(staff_user)

    client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "suspend", "_selected_action": [tenant.pk]},
        REMOTE_ADDR="198.51.100.7",
    )

    event = AuditEvent.objects.get(tenant=tenant)
    assert (event.action, event.actor_kind, event.actor_user_id, event.actor_label, event.ip) == (
        "tenant.suspended",
        "staff",
        staff_user.pk,
        "root@netia.test",
        "198.51.100.7",
    )


# --- A tenant's conversations and leads ------------------------------------------------------------------------------
@pytest.fixture
def chat(tenant):
    """One conversation of tenant A with a lead."""
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s1", visitor_name="Joe Visitor")
        message_record_visitor(conversation=conversation, content="Call me at joe@visitor.test")
        Lead.objects.create(conversation=conversation, email="joe@visitor.test", name="Joe Visitor")
    return conversation


def test_records_are_read_in_the_tenants_schema_and_the_connection_is_back_in_public(tenant, other_tenant, chat):
    records = tenant_records_get(tenant=tenant)
    other = tenant_records_get(tenant=other_tenant)

    assert current_schema() == "public"
    assert [(c.public_id, c.visitor_name) for c in records.conversations] == [(chat.public_id, "Joe Visitor")]
    assert [(lead.email, lead.conversation.public_id) for lead in records.leads] == [
        ("joe@visitor.test", chat.public_id)
    ]
    assert (records.conversations_total, records.leads_total) == (1, 1)
    assert (other.conversations, other.leads) == ([], [])


def test_staff_read_a_tenants_conversations_and_each_look_is_audited_once(client, staff_user, tenant, chat):
    client.force_login(staff_user)

    page = client.get(reverse("admin:staff_tenantrecords_change", args=[tenant.pk]))
    thread = client.get(reverse("admin:staff_tenantrecords_conversation", args=[tenant.pk, chat.public_id]))

    assert (page.status_code, thread.status_code) == (200, 200)
    assert "Joe Visitor" in page.content.decode()
    assert "joe@visitor.test" in page.content.decode()
    assert "Call me at joe@visitor.test" in thread.content.decode()
    assert [
        (e.action, e.details, e.actor_user_id) for e in AuditEvent.objects.filter(tenant=tenant).order_by("id")
    ] == [
        ("staff.records_viewed", {"what": "conversations and leads"}, staff_user.pk),
        ("staff.records_viewed", {"what": "conversation", "conversation_id": str(chat.public_id)}, staff_user.pk),
    ]
    with tenant_context(tenant):
        assert Conversation.objects.count() == 1


def test_records_need_their_own_permission_and_unknown_ones_are_404(client, staff_user, viewer, tenant, chat):
    client.force_login(viewer)  # may view tenants, not their conversations
    refused = client.get(reverse("admin:staff_tenantrecords_change", args=[tenant.pk]))
    client.force_login(staff_user)
    missing = client.get(
        reverse("admin:staff_tenantrecords_conversation", args=[tenant.pk, "00000000-0000-0000-0000-000000000000"])
    )

    assert refused.status_code == 403
    assert missing.status_code == 404
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_nothing_can_be_changed_from_the_records_page(client, staff_user, tenant, chat):
    client.force_login(staff_user)

    response = client.post(reverse("admin:staff_tenantrecords_change", args=[tenant.pk]), {"name": "Hijacked"})

    tenant.refresh_from_db()
    assert response.status_code in (200, 403, 405)
    assert tenant.name == "Acme Test Shop"


# --- Sign-in throttling ----------------------------------------------------------------------------------------------
def _sign_in(client: Client, password: str, **extra: Any):
    return client.post(
        reverse("admin:login"), {"username": "root@netia.test", "password": password, "next": "/admin/"}, **extra
    )


def test_password_guessing_is_locked_out_per_client_ip(staff_user, settings):
    staff_user.set_password("the-right-password-42")
    staff_user.save()
    attacker, colleague = Client(), Client()

    guesses = [_sign_in(attacker, f"guess-{n}").status_code for n in range(settings.AXES_FAILURE_LIMIT)]
    locked = _sign_in(attacker, "the-right-password-42")
    spoofed = _sign_in(attacker, "the-right-password-42", HTTP_X_FORWARDED_FOR="203.0.113.50")
    elsewhere = _sign_in(colleague, "the-right-password-42", REMOTE_ADDR="192.0.2.10")

    # The form again with an error, until the limit-th failure locks the address out.
    assert guesses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert (locked.status_code, spoofed.status_code) == (429, 429)
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert elsewhere.status_code == 302


def test_staff_find_the_tenants_and_leads_whose_lead_email_was_given_up(client, staff_user, tenant, other_tenant, chat):
    with tenant_context(other_tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s9")
        Lead.objects.create(conversation=conversation, email="bo@visitor.test", notified_at=timezone.now())
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s2")
        Lead.objects.create(conversation=conversation, email="sent@visitor.test", notified_at=timezone.now())
        Lead.objects.filter(email="joe@visitor.test").update(
            notify_gave_up_at=timezone.now(),
            notify_attempts=1,
            notify_error="(550, b'5.1.1 No such mailbox')",
            notify_gave_up_reason="refused",
        )
    client.force_login(staff_user)
    changelist = reverse("admin:staff_tenantrecords_changelist")
    records = reverse("admin:staff_tenantrecords_change", args=[tenant.pk])

    given_up = client.get(changelist, {"lead_email": "given_up"})
    all_sent = client.get(changelist, {"lead_email": "none_given_up"})
    page = client.get(records)
    only_given_up = client.get(records, {"lead_email": "given_up"})

    assert [t.pk for t in given_up.context["cl"].result_list] == [tenant.pk]
    assert other_tenant.pk in [t.pk for t in all_sent.context["cl"].result_list]
    assert tenant.pk not in [t.pk for t in all_sent.context["cl"].result_list]
    assert page.context["records"].leads_email_given_up == 1
    assert "Given up" in page.content.decode()
    assert "(550, b&#x27;5.1.1 No such mailbox&#x27;)" in page.content.decode()
    assert "(the recipient was refused for good) after 1 failed attempt; last error:" in page.content.decode()
    assert [lead.email for lead in only_given_up.context["records"].leads] == ["joe@visitor.test"]
    assert sorted(lead.email for lead in page.context["records"].leads) == ["joe@visitor.test", "sent@visitor.test"]


def test_the_given_up_lead_email_filter_reads_every_tenant_schema_in_one_statement_per_hundred(
    client, staff_user, tenant, other_tenant
):
    """Cheap at 1,000 tenants: the filter costs the tenants' schema names plus one UNION ALL statement per
    STATS_SCHEMAS_PER_QUERY schemas (10 at 1,000 tenants), never a statement per schema."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from staff.selectors import STATS_SCHEMAS_PER_QUERY
    from tenants.models import Tenant

    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s3")
        Lead.objects.create(conversation=conversation, email="gone@visitor.test", notify_gave_up_at=timezone.now())
    schemas = Tenant.objects.exclude(schema_name="public").count()
    client.force_login(staff_user)
    changelist = reverse("admin:staff_tenantrecords_changelist")
    client.get(changelist)  # the admin's first-use queries are not what is counted

    with CaptureQueriesContext(connection) as unfiltered:
        client.get(changelist)
    with CaptureQueriesContext(connection) as filtered:
        response = client.get(changelist, {"lead_email": "given_up"})

    lead_scans = [q["sql"] for q in filtered.captured_queries if ".chat_lead" in q["sql"]]
    assert schemas >= 2
    assert [t.pk for t in response.context["cl"].result_list] == [tenant.pk]
    assert len(lead_scans) == -(-schemas // STATS_SCHEMAS_PER_QUERY)
    assert lead_scans[0].count(".chat_lead") == min(schemas, STATS_SCHEMAS_PER_QUERY)
    assert len(filtered) == len(unfiltered) + 1 + len(lead_scans)  # the schema names, then the scans
