"""The tenant's billing API (API key with the `billing` permission): plan, status and usage; Stripe
Checkout to subscribe; the Stripe customer portal to change plan or card, or cancel."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing import selectors, services, stripe_client
from billing.models import Plan
from netia.openapi import error_responses
from netia.serializers import StrictSerializer
from tenants.api import CustomerApi
from tenants.models import ApiKey, Tenant


class BillingApi(CustomerApi):
    """Base: the API key must carry the `billing` permission, whatever the method."""

    required_permissions = {"GET": ApiKey.Permission.BILLING, "POST": ApiKey.Permission.BILLING}


class PlanOutput(serializers.Serializer):
    class Meta:
        ref_name = "BillingPlan"

    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    ai_replies_per_month = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")
    knowledge_articles_max = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")
    team_seats = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")


class PricedPlanOutput(PlanOutput):
    class Meta:
        ref_name = "BillingPricedPlan"

    price_id = serializers.CharField(source="price.id")
    unit_amount = serializers.IntegerField(source="price.unit_amount", allow_null=True, help_text="In cents.")
    currency = serializers.CharField(source="price.currency")
    interval = serializers.SerializerMethodField()

    def get_interval(self, plan: Plan) -> str:
        assert plan.price is not None  # noqa: S101 - only priced plans are listed
        return str((plan.price.stripe_data.get("recurring") or {}).get("interval", ""))


class BillingStatusApi(BillingApi):
    """The tenant's billing status: plan and limits, subscription status, trial end, this period's usage,
    and whether (or why not) the bot may answer right now."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingStatus"

        class Usage(serializers.Serializer):
            class Meta:
                ref_name = "BillingUsage"

            period_start = serializers.DateTimeField()
            period_end = serializers.DateTimeField()
            ai_replies = serializers.IntegerField()
            ai_replies_limit = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")

        class Access(serializers.Serializer):
            class Meta:
                ref_name = "BillingBotAccess"

            allowed = serializers.BooleanField()
            reason = serializers.CharField(
                allow_blank=True,
                help_text="When not allowed: tenant_suspended, subscription_inactive, payment_overdue, "
                "trial_ended or plan_limit_reached.",
            )

        class StripeSubscription(serializers.Serializer):
            class Meta:
                ref_name = "BillingSubscription"

            id = serializers.CharField()
            status = serializers.CharField()
            current_period_end = serializers.DateTimeField(allow_null=True)
            cancel_at_period_end = serializers.BooleanField()

        status = serializers.ChoiceField(choices=Tenant.SubscriptionStatus.choices)
        trial_ends_at = serializers.DateTimeField()
        plan = PlanOutput()
        usage = Usage()
        bot_access = Access()
        subscription = StripeSubscription(allow_null=True)
        billing_enabled = serializers.BooleanField(help_text="False: Stripe is not configured on this deployment.")

    @extend_schema(responses={200: OutputSerializer, **error_responses(401, 403)}, operation_id="billing_status_get")
    def get(self, request: Request) -> Response:
        tenant = self.tenant
        account = selectors.billing_account_get(tenant=tenant)
        access = selectors.bot_access_get(tenant=tenant)
        subscription: dict[str, Any] | None = None
        if account.stripe_subscription_id:
            subscription = {
                "id": account.stripe_subscription_id,
                "status": account.stripe_status,
                "current_period_end": account.current_period_end,
                "cancel_at_period_end": account.cancel_at_period_end,
            }
        output = {
            "status": tenant.subscription_status,
            "trial_ends_at": account.trial_ends_at,
            "plan": selectors.plan_for_account(account=account),
            "usage": selectors.usage_summary_get(tenant=tenant, account=account),
            "bot_access": {"allowed": access.allowed, "reason": access.reason},
            "subscription": subscription,
            "billing_enabled": stripe_client.is_configured(),
        }
        return Response(self.OutputSerializer(output).data)


class BillingPlanListApi(BillingApi):
    """The plans the tenant can subscribe to (with their Stripe price)."""

    @extend_schema(
        responses={200: PricedPlanOutput(many=True), **error_responses(401, 403)}, operation_id="billing_plan_list"
    )
    def get(self, request: Request) -> Response:
        return Response(PricedPlanOutput(selectors.plan_list_purchasable(), many=True).data)


class RedirectOutput(serializers.Serializer):
    class Meta:
        ref_name = "BillingRedirect"

    id = serializers.CharField()
    url = serializers.URLField(help_text="Send the owner's browser here (a Stripe-hosted page).")


class BillingCheckoutCreateApi(BillingApi):
    """Start subscribing: a Stripe Checkout page for a plan (by `plan_id` or Stripe `price_id`, exactly one).

    What is left of the free trial carries over. 409 when the tenant already has a subscription (use the
    portal); 503 when billing is not configured or Stripe fails.
    """

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "BillingCheckoutInput"

        plan_id = serializers.IntegerField(required=False, min_value=1)
        price_id = serializers.CharField(required=False, max_length=255)
        return_url = serializers.URLField(
            required=False, help_text="Where Stripe sends the owner back (default: BILLING_RETURN_URL)."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("plan_id" in attrs) == ("price_id" in attrs):
                raise serializers.ValidationError("Give exactly one of plan_id and price_id.")
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={201: RedirectOutput, **error_responses(400, 401, 403, 404, 409, 503)},
        operation_id="billing_checkout_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.checkout_session_create(
            tenant=self.tenant,
            plan_id=data.validated_data.get("plan_id"),
            price_id=data.validated_data.get("price_id", ""),
            return_url=data.validated_data.get("return_url", ""),
        )
        return Response(RedirectOutput(session).data, status=201)


class BillingPortalCreateApi(BillingApi):
    """Open the Stripe customer portal: change plan or card, see invoices, cancel."""

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "BillingPortalInput"

        return_url = serializers.URLField(
            required=False, help_text="Where the portal's back link goes (default: BILLING_RETURN_URL)."
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: RedirectOutput, **error_responses(400, 401, 403, 503)},
        operation_id="billing_portal_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.portal_session_create(
            tenant=self.tenant, return_url=data.validated_data.get("return_url", "")
        )
        return Response(RedirectOutput(session).data, status=201)
