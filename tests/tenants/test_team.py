"""The team: invitations (with a sign-in link), roles and removal; the plan's seats; always an owner."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.models import Plan
from netia.errors import Conflict, PlanLimitExceeded, ValidationFailed
from tenants.audit import SYSTEM
from tenants.models import Membership, User
from tenants.services import membership_invite, membership_remove, membership_role_set


@pytest.fixture
def owner(tenant):
    return Membership.objects.get(tenant=tenant, role="owner")


def test_an_invitation_adds_the_person_and_emails_a_sign_in_link(tenant, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        membership = membership_invite(
            tenant=tenant, email=" Bea@Acme.test ", role="member", invited_by=owner.user, actor=SYSTEM
        )

    assert (membership.user.email, membership.role, membership.tenant) == ("bea@acme.test", "member", tenant)
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["bea@acme.test"], "You're invited to Acme Test Shop on Netia")
    assert "/login/link?token=" in message.body
    assert f"tenant={tenant.pk}" in message.body


def test_someone_already_in_the_team_is_not_invited_twice(tenant, owner):
    with pytest.raises(Conflict):
        membership_invite(tenant=tenant, email="owner@acme.test", role="member", invited_by=owner.user, actor=SYSTEM)


def test_an_existing_user_of_another_business_joins_without_a_second_account(tenant, other_tenant, owner):
    globex_owner = User.objects.get(email="owner@globex.test")

    membership = membership_invite(
        tenant=tenant, email="owner@globex.test", role="owner", invited_by=owner.user, actor=SYSTEM
    )

    assert membership.user == globex_owner
    assert User.objects.filter(email="owner@globex.test").count() == 1


def test_invitations_stop_at_the_plans_seats(tenant, owner):
    Plan.objects.filter(is_default=True).update(team_seats=2)
    membership_invite(tenant=tenant, email="two@acme.test", role="member", invited_by=owner.user, actor=SYSTEM)

    with pytest.raises(PlanLimitExceeded):
        membership_invite(tenant=tenant, email="three@acme.test", role="member", invited_by=owner.user, actor=SYSTEM)
    assert not User.objects.filter(email="three@acme.test").exists()


@pytest.mark.parametrize(("email", "role"), [("not-an-email", "member"), ("x@acme.test", "admin")])
def test_bad_invitations_say_why(tenant, owner, email, role):
    with pytest.raises(ValidationFailed):
        membership_invite(tenant=tenant, email=email, role=role, invited_by=owner.user, actor=SYSTEM)


def test_the_team_always_keeps_an_owner(tenant, owner):
    with pytest.raises(Conflict):
        membership_role_set(membership=owner, role="member", actor=SYSTEM)
    with pytest.raises(Conflict):
        membership_remove(membership=owner, actor=SYSTEM)

    second = membership_invite(tenant=tenant, email="co@acme.test", role="owner", invited_by=owner.user, actor=SYSTEM)
    membership_role_set(membership=owner, role="member", actor=SYSTEM)
    membership_remove(membership=owner, actor=SYSTEM)

    assert list(Membership.objects.filter(tenant=tenant).values_list("user__email", "role")) == [
        ("co@acme.test", "owner")
    ]
    assert second.role == "owner"
