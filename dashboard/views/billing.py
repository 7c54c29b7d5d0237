"""Billing (owners only): plan, status, trial, usage meters; upgrade through Stripe Checkout, manage in the
Stripe customer portal."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from billing import selectors, services, stripe_client
from chat.selectors import knowledge_article_list
from dashboard import charts
from dashboard.portal import PortalView
from tenants.selectors import membership_list


class BillingView(PortalView):
    def get(self, request: HttpRequest) -> HttpResponse:
        tenant = self.tenant
        account = selectors.billing_account_get(tenant=tenant)
        plan = selectors.plan_for_account(account=account)
        usage = selectors.usage_summary_get(tenant=tenant, account=account)
        articles = knowledge_article_list().count()
        seats = membership_list(tenant=tenant).count()
        outcome = request.GET.get("checkout")
        if outcome == "success":
            messages.success(request, "Thank you! Your subscription starts as soon as Stripe confirms the payment.")
        elif outcome == "canceled":
            messages.info(request, "Checkout was canceled: nothing was charged.")
        return self.page(
            "dashboard/billing.html",
            {
                "account": account,
                "plan": plan,
                "usage": usage,
                "plans": selectors.plan_list_purchasable(),
                "billing_enabled": stripe_client.is_configured(),
                "replies_chart": charts.meter(usage.ai_replies, usage.ai_replies_limit, title="AI replies"),
                "articles_chart": charts.meter(articles, plan.knowledge_articles_max, title="Knowledge articles"),
                "seats_chart": charts.meter(seats, plan.team_seats, title="Team seats"),
                "articles": articles,
                "seats": seats,
                "subscribed": bool(account.stripe_subscription_id),
                "trial_running": account.trial_ends_at > timezone.now(),
            },
        )


def _return_url() -> str:
    return f"{settings.NETIA_PUBLIC_URL}{reverse('dashboard:billing')}"


class CheckoutView(PortalView):
    """Send the owner to Stripe Checkout for the chosen plan."""

    def post(self, request: HttpRequest) -> HttpResponse:
        plan_id = request.POST.get("plan", "")
        session = services.checkout_session_create(
            tenant=self.tenant, plan_id=int(plan_id) if plan_id.isdigit() else 0, return_url=_return_url()
        )
        return HttpResponseRedirect(session.url)


class ManageBillingView(PortalView):
    """Send the owner to the Stripe customer portal (plan, card, invoices, cancel)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        session = services.portal_session_create(tenant=self.tenant, return_url=_return_url())
        return HttpResponseRedirect(session.url)
