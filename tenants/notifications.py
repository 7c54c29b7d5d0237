"""Emails carrying portal sign-in links (sign-in, welcome, invitation), sent by a task after commit."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from tenants.models import Tenant, User
from tenants.services import SignInReason, login_link_url

SUBJECTS = {
    SignInReason.LOGIN: "Your Netia sign-in link",
    SignInReason.SIGNUP: "Welcome to Netia: your sign-in link",
    SignInReason.INVITATION: "You're invited to {tenant} on Netia",
}


def sign_in_email_send(*, email: str, reason: str, tenant_id: int | None, next_path: str) -> bool:
    """Email a one-time sign-in link to `email` if it is an active user's; returns whether one was sent.

    The link is made here, when the mail leaves, so its minutes are not spent in a queue. An OSError from
    the mail server propagates (the task retries).
    """
    user = User.objects.filter(email=email.strip().lower(), is_active=True).first()
    if user is None or reason not in SUBJECTS:
        return False
    tenant = Tenant.objects.filter(pk=tenant_id).first() if tenant_id else None
    context = {
        "user": user,
        "tenant": tenant,
        "link": login_link_url(user=user, next_path=next_path, tenant=tenant),
        "minutes": settings.SESAME_MAX_AGE // 60,
    }
    message = EmailMultiAlternatives(
        subject=SUBJECTS[reason].format(tenant=tenant.name if tenant else "a business"),
        body=render_to_string(f"tenants/email/{reason}.txt", context),
        to=[user.email],
    )
    message.attach_alternative(render_to_string(f"tenants/email/{reason}.html", context), "text/html")
    message.send()
    return True
