"""Staff's view of tenants: list and search, onboard, look at one, suspend and resume, rotate the webhook
secret, send an owner a sign-in link, read the audit trail."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import BillingStatusApi, PlanOutput
from billing.selectors import plan_default_get
from netia.errors import ValidationFailed
from netia.openapi import error_responses
from netia.pagination import CURSOR_PARAMETERS, cursor_page, cursor_page_schema
from netia.serializers import StrictSerializer
from staff import selectors
from staff.api.base import ReasonInput, StaffApi
from tenants.api import AUDIT_LIST_PARAMETERS, audit_page
from tenants.models import AuditEvent, Tenant
from tenants.services import member_sign_in_link_send, tenant_resume, tenant_suspend
from webhooks.api import ConnectionOutput, CrispConnectionOutput
from webhooks.selectors import papercups_webhook_url
from webhooks.services import papercups_tenant_onboard, papercups_webhook_secret_rotate

ERRORS = error_responses(400, 401, 403, 404)
DATE_FORMATS = ["iso-8601", "%Y-%m-%d"]


class TenantOutput(serializers.Serializer):
    """A tenant as the list shows it; the serializer's context may carry `default_plan` (one lookup a page)."""

    class Meta:
        ref_name = "StaffTenant"

    id = serializers.IntegerField(help_text="The tenant id (`tenant_onboard --json` prints it as tenant_id).")
    name = serializers.CharField()
    owner_email = serializers.EmailField()
    schema_name = serializers.CharField()
    subscription_status = serializers.ChoiceField(choices=Tenant.SubscriptionStatus.choices)
    plan = serializers.SerializerMethodField(help_text="The code of the plan whose limits apply.")
    suspended = serializers.BooleanField(source="is_suspended")
    suspended_at = serializers.DateTimeField(allow_null=True)
    papercups_account_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_plan(self, tenant: Tenant) -> str:
        default = self.context.get("default_plan") or plan_default_get()
        return selectors.tenant_plan(tenant=tenant, default=default).code


class TenantDetailOutput(serializers.Serializer):
    class Meta:
        ref_name = "StaffTenantDetail"

    class Channels(serializers.Serializer):
        class Meta:
            ref_name = "StaffTenantChannels"

        papercups = ConnectionOutput(help_text="The Papercups connection (secrets masked).")
        crisp = CrispConnectionOutput(help_text="The Crisp website connection.")

    class LastActivity(serializers.Serializer):
        class Meta:
            ref_name = "StaffTenantLastActivity"

        at = serializers.DateTimeField(allow_null=True, help_text="The latest of the three; null: never active.")
        message_at = serializers.DateTimeField(allow_null=True, help_text="The latest chat message.")
        api_key_used_at = serializers.DateTimeField(allow_null=True)
        member_login_at = serializers.DateTimeField(allow_null=True)

    tenant = TenantOutput()
    plan = PlanOutput()
    trial_ends_at = serializers.DateTimeField(source="account.trial_ends_at")
    usage = BillingStatusApi.OutputSerializer.Usage(help_text="AI replies in the current billing period.")
    bot_access = BillingStatusApi.OutputSerializer.Access()
    channels = Channels()
    last_activity = LastActivity()


def _detail(tenant: Tenant) -> Response:
    return Response(TenantDetailOutput(selectors.tenant_overview_get(tenant=tenant)).data)


class TenantListCreateApi(StaffApi):
    """Tenants (GET: filtered, searched, newest first, in cursor pages) and onboarding a new one (POST).

    POST runs the onboarding service of `manage.py tenant_onboard` (`papercups_tenant_onboard`: same
    validation, all or nothing) and answers with the first API key and the full webhook URL, shown this once.
    """

    required_permissions = {"GET": "tenants.view_tenant", "POST": "tenants.add_tenant"}

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Tenant.SubscriptionStatus.choices, required=False)
        plan = serializers.SlugField(required=False)
        suspended = serializers.BooleanField(required=False, allow_null=True, default=None)
        created_after = serializers.DateTimeField(required=False, input_formats=DATE_FORMATS)
        created_before = serializers.DateTimeField(required=False, input_formats=DATE_FORMATS)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            after, before = attrs.get("created_after"), attrs.get("created_before")
            if after and before and after >= before:
                raise serializers.ValidationError({"created_before": "Must be later than created_after."})
            return attrs

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StaffTenantCreateInput"

        name = serializers.CharField(max_length=200)
        email = serializers.EmailField(help_text="The owner's email address.")
        papercups_account_id = serializers.UUIDField(required=False, allow_null=True, default=None)
        papercups_api_key = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=1000, write_only=True
        )
        papercups_url = serializers.URLField(required=False, allow_blank=True, default="")

    class CreatedOutput(serializers.Serializer):
        class Meta:
            ref_name = "StaffTenantCreated"

        tenant = TenantOutput()
        chat_token = serializers.CharField()
        api_key = serializers.CharField(help_text="The first API key: shown this once.")
        webhook_url = serializers.CharField(help_text="The Papercups webhook URL: shown in full this once.")

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Tenant.SubscriptionStatus.values),
            OpenApiParameter("plan", str, description="A plan code; the default plan's also matches no subscription."),
            OpenApiParameter("suspended", bool),
            OpenApiParameter("created_after", str, description="ISO date or date-time, inclusive."),
            OpenApiParameter("created_before", str, description="ISO date or date-time, exclusive."),
            OpenApiParameter(
                "search", str, description="Name or owner email (partial); Papercups account or Crisp website id."
            ),
            *CURSOR_PARAMETERS,
        ],
        responses={200: cursor_page_schema("StaffTenantPage", TenantOutput), **error_responses(400, 401, 403)},
        operation_id="admin_tenant_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        tenants = selectors.tenant_list(**filters.validated_data)
        context = {"default_plan": plan_default_get()}
        return cursor_page(self, tenants, TenantOutput, ordering="-id", context=context)

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedOutput, **error_responses(400, 401, 403, 409, 413)},
        operation_id="admin_tenant_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = papercups_tenant_onboard(
            name=values["name"],
            owner_email=values["email"],
            papercups_account_id=values["papercups_account_id"],
            papercups_api_key=values["papercups_api_key"],
            papercups_base_url=values["papercups_url"],
            actor=self.actor,
            ip=self.client_ip,
        )
        output = {
            "tenant": result.tenant,
            "chat_token": result.tenant.chat_token,
            "api_key": result.api_key_secret,
            "webhook_url": papercups_webhook_url(tenant=result.tenant),
        }
        return Response(self.CreatedOutput(output).data, status=201)


class TenantDetailApi(StaffApi):
    """One tenant: plan, usage this billing period, bot access, channel connection state, last activity."""

    required_permissions = {"GET": "tenants.view_tenant"}

    @extend_schema(responses={200: TenantDetailOutput, **ERRORS}, operation_id="admin_tenant_get")
    def get(self, request: Request, tenant_id: int) -> Response:
        return _detail(self.tenant_get(tenant_id))


class TenantSuspendApi(StaffApi):
    """Suspend the tenant: its bot stops answering on every channel at once and its API keys stop working.

    Suspending a suspended tenant changes nothing (and records nothing). The optional `reason` goes to the
    audit trail.
    """

    required_permissions = {"POST": "tenants.change_tenant"}

    @extend_schema(
        request=ReasonInput, responses={200: TenantDetailOutput, **ERRORS}, operation_id="admin_tenant_suspend"
    )
    def post(self, request: Request, tenant_id: int) -> Response:
        tenant, reason = self.tenant_get(tenant_id), self.reason()
        return _detail(tenant_suspend(tenant=tenant, actor=self.actor, ip=self.client_ip, reason=reason))


class TenantResumeApi(StaffApi):
    """Lift the tenant's suspension (its bot answers again, within its billing state). Idempotent."""

    required_permissions = {"POST": "tenants.change_tenant"}

    @extend_schema(
        request=ReasonInput, responses={200: TenantDetailOutput, **ERRORS}, operation_id="admin_tenant_resume"
    )
    def post(self, request: Request, tenant_id: int) -> Response:
        tenant, reason = self.tenant_get(tenant_id), self.reason()
        return _detail(tenant_resume(tenant=tenant, actor=self.actor, ip=self.client_ip, reason=reason))


class TenantWebhookSecretApi(StaffApi):
    """Rotate the tenant's webhook secret: the old webhook URL stops working at once. The new URL is shown in
    full only in this answer, for the owner to register in Papercups."""

    required_permissions = {"POST": "tenants.change_tenant"}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffWebhookSecretOutput"

        webhook_url = serializers.CharField(help_text="Shown in full only now.")

    @extend_schema(
        request=ReasonInput,
        responses={200: OutputSerializer, **ERRORS},
        operation_id="admin_tenant_webhook_secret_rotate",
    )
    def post(self, request: Request, tenant_id: int) -> Response:
        tenant, reason = self.tenant_get(tenant_id), self.reason()
        url = papercups_webhook_secret_rotate(tenant=tenant, actor=self.actor, ip=self.client_ip, reason=reason)
        return Response(self.OutputSerializer({"webhook_url": url}).data)


class TenantSignInLinkApi(StaffApi):
    """Email a member (the owner unless `email` names another member) a one-time sign-in link.

    The link goes only to the member's inbox; the answer says where it went. 202: it leaves once committed.
    """

    required_permissions = {"POST": "tenants.change_tenant"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StaffSignInLinkInput"

        email = serializers.EmailField(required=False, help_text="A member's email; the owner's by default.")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffSignInLinkOutput"

        sent_to = serializers.EmailField()

    @extend_schema(
        request=InputSerializer, responses={202: OutputSerializer, **ERRORS}, operation_id="admin_tenant_sign_in_link"
    )
    def post(self, request: Request, tenant_id: int) -> Response:
        tenant = self.tenant_get(tenant_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data.get("email", tenant.owner_email)
        user = selectors.tenant_member_get(tenant=tenant, email=email)
        if user is None:
            raise ValidationFailed(f"{email} is not a member of this tenant.", extra={"field": "email"})
        member_sign_in_link_send(tenant=tenant, user=user, actor=self.actor, ip=self.client_ip)
        return Response(self.OutputSerializer({"sent_to": user.email}).data, status=202)


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        ref_name = "StaffAuditEvent"
        fields = ["id", "action", "actor_kind", "actor_label", "actor_user", "actor_key_id", "ip", "details"]
        fields += ["created_at"]


class TenantAuditListApi(StaffApi):
    """The tenant's audit trail, newest first, in cursor pages; `action` keeps one kind of event."""

    required_permissions = {"GET": "tenants.view_auditevent"}

    @extend_schema(
        parameters=AUDIT_LIST_PARAMETERS,
        responses={200: cursor_page_schema("StaffAuditEventPage", AuditEventOutput), **ERRORS},
        operation_id="admin_tenant_audit_list",
    )
    def get(self, request: Request, tenant_id: int) -> Response:
        return audit_page(self, tenant=self.tenant_get(tenant_id), serializer=AuditEventOutput)
