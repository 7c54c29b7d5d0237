"""Portal test fixtures: browsers (Django test clients) signed in as tenant A's owner or a member."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from chat.models import Conversation, Lead, Message
from chat.services import conversation_get_or_create, message_record_visitor
from dashboard.portal import SESSION_TENANT_KEY
from tenants.models import Membership, Tenant, User
from tests.billing.conftest import pro_plan, stripe_fake  # noqa: F401 - the fake Stripe and a plan sold there
from tests.webhooks.conftest import crisp, papercups  # noqa: F401 - the Crisp and Papercups simulators


def signed_in(user: User, tenant: Tenant | None = None) -> Client:
    """A test client with a session for `user`, working in `tenant` when given."""
    client = Client()
    client.force_login(user)
    if tenant is not None:
        session = client.session
        session[SESSION_TENANT_KEY] = tenant.pk
        session.save()
    return client


@pytest.fixture
def owner(tenant: Tenant) -> User:
    return User.objects.get(email="owner@acme.test")


@pytest.fixture
def owner_client(owner: User, tenant: Tenant) -> Client:
    return signed_in(owner, tenant)


@pytest.fixture
def member(tenant: Tenant) -> User:
    user = User.objects.create_user(email="member@acme.test")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def member_client(member: User, tenant: Tenant) -> Client:
    return signed_in(member, tenant)


@pytest.fixture
def chat_in() -> Callable[..., Conversation]:
    """Create a conversation in a tenant's schema: chat_in(tenant, "text", ..., name=, email=, intent=)."""

    def make(tenant: Tenant, *texts: str, session: str = "s1", **fields: Any) -> Conversation:
        intent = fields.pop("intent", "")
        with tenant_context(tenant):
            conversation, _ = conversation_get_or_create(channel="api", session_id=session, **fields)
            for text in texts:
                message_record_visitor(conversation=conversation, content=text)
                Message.objects.create(
                    conversation=conversation, channel="api", role="bot", content=f"Re: {text}", intent=intent
                )
            conversation.refresh_from_db()
        return conversation

    return make


@pytest.fixture
def lead_in(chat_in: Callable[..., Conversation]) -> Callable[..., Lead]:
    def make(tenant: Tenant, session: str = "lead-1", **fields: Any) -> Lead:
        conversation = chat_in(tenant, "Hello", session=session)
        with tenant_context(tenant):
            return Lead.objects.create(conversation=conversation, **fields)

    return make


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """committed(fn, *args) calls fn and then what it queued for after commit (emails), as a commit would."""

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run
