"""Papercups over HTTP: the webhook receiver, and the tenant's connection settings (API key)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netia import ratelimits
from netia.errors import ApplicationError, AuthenticationFailed, json_served_directly
from netia.metrics import WEBHOOK_EVENTS
from netia.openapi import error_responses
from netia.serializers import StrictSerializer
from tenants.api import CustomerApi
from webhooks import crisp, papercups, selectors, services
from webhooks.selectors import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookCredentials

_WEBHOOK_OUTCOME = inline_serializer(
    "WebhookOutcome", {"status": serializers.ChoiceField(choices=["accepted", "duplicate", "ignored"])}
)


class WebhookAckApi(APIView):
    """Base of the webhook receivers: POST (the ack, a hot path) is served without DRF's request wrapping,
    content negotiation and template response: JSON in, JSON out, failures in the API's error shape from its
    exception handler, with DRF's `Allow` header on every answer. Other methods go through DRF (405, OPTIONS).
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def receive(self, request: HttpRequest) -> dict[str, str]:
        """Authenticate, check and store one webhook call; the answer's body."""
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        return Response(self.receive(request))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        return json_served_directly(lambda: self.receive(request), allow=", ".join(self.allowed_methods))


def _header(request: HttpRequest, name: str) -> str:
    """The request header `name` (as `request.headers` reads it, without building that mapping), or ""."""
    return str(request.META.get("HTTP_" + name.upper().replace("-", "_"), ""))


class PapercupsWebhookApi(WebhookAckApi):
    """Papercups webhooks (`POST /papercups/webhook?token=<webhook secret>`), answered within milliseconds.

    Papercups does not sign webhooks: the call is authenticated by the tenant's webhook secret, in the URL's
    `token` or as `X-Netia-Signature: <hex HMAC-SHA256 of "<X-Netia-Timestamp>.<raw body>">` with
    `X-Netia-Timestamp: <Unix seconds>` within 5 minutes of now (for a signing proxy). The tenant is
    the payload's `account_id` and must own the secret. `webhook:verify` echoes the challenge. Events are
    stored once (keyed on Papercups' ids) and the bot's reply is queued; nothing slow happens here.
    """

    _accepted = _WEBHOOK_OUTCOME
    _challenge = inline_serializer("PapercupsWebhookChallenge", {"challenge": serializers.CharField()})
    _event = inline_serializer(
        "PapercupsWebhookEvent", {"event": serializers.CharField(), "payload": serializers.JSONField()}
    )

    @extend_schema(
        request=_event,
        parameters=[
            OpenApiParameter("token", str, description="The tenant's webhook secret (from its webhook URL)."),
            OpenApiParameter(
                SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Hex HMAC-SHA256, keyed with the webhook secret, of `<X-Netia-Timestamp>.<raw body>`.",
            ),
            OpenApiParameter(
                TIMESTAMP_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Unix seconds when signed (required with a signature); refused 5 minutes away from now.",
            ),
        ],
        responses={
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="PapercupsWebhookAnswer",
                    serializers=[_accepted, _challenge],
                    resource_type_field_name=None,
                ),
                description="`{status}` for events (stored, duplicate, ignored); `{challenge}` for webhook:verify.",
            ),
            **error_responses(400, 401, 403, 404, 413, 429),
        },
        operation_id="papercups_webhook",
        auth=[],
    )
    def post(self, request: Request) -> Response:
        return Response(self.receive(request))

    def receive(self, request: HttpRequest) -> dict[str, str]:
        """Authenticate, check and store one webhook call (or echo the verify challenge); the answer's body."""
        event = "unknown"
        try:
            credentials = WebhookCredentials(
                token=request.GET.get("token", ""),
                signature=_header(request, SIGNATURE_HEADER),
                timestamp=_header(request, TIMESTAMP_HEADER),
                raw_body=request.body,
            )
            if not credentials.present:
                raise AuthenticationFailed("Send the webhook secret as ?token= or an X-Netia-Signature header.")
            envelope = papercups.envelope_parse(credentials.raw_body)
            event = envelope.event if envelope.event in papercups.KNOWN_EVENTS else "other"
            if envelope.event == papercups.VERIFY:
                ratelimits.enforce(
                    request, group="papercups:verify", key=ratelimits.client_ip, rate=settings.PAPERCUPS_VERIFY_RATE
                )
                challenge = services.papercups_webhook_verify(envelope=envelope, credentials=credentials)
                WEBHOOK_EVENTS.labels(channel="papercups", event=event, outcome="verified").inc()
                return {"challenge": challenge}
            outcome = services.papercups_webhook_receive(envelope=envelope, credentials=credentials)
        except ApplicationError as error:
            WEBHOOK_EVENTS.labels(channel="papercups", event=event, outcome=error.code).inc()
            raise
        WEBHOOK_EVENTS.labels(channel="papercups", event=event, outcome=outcome).inc()
        return {"status": outcome}


# --- The tenant's connection settings ---------------------------------------------------------------------------------
ERRORS = error_responses(400, 401, 403)


class CheckOutput(serializers.Serializer):
    class Meta:
        ref_name = "PapercupsConnectionCheck"

    ok = serializers.BooleanField()
    problem = serializers.CharField(
        help_text="Empty when ok; else bad_key, unreachable, timeout, wrong_account, not_found, forbidden, "
        "server_error, unexpected_response, rejected or not_configured."
    )
    detail = serializers.CharField()
    bot_user_id = serializers.IntegerField(allow_null=True)
    checked_at = serializers.DateTimeField()


class ConnectionOutput(serializers.Serializer):
    class Meta:
        ref_name = "PapercupsConnection"

    connected = serializers.BooleanField()
    account_id = serializers.UUIDField(allow_null=True)
    base_url = serializers.URLField()
    api_key_set = serializers.BooleanField(help_text="The key itself is never shown again.")
    bot_user_id = serializers.IntegerField(allow_null=True)
    webhook_url = serializers.CharField(help_text="Its token is masked; rotate the secret to see a full URL.")
    last_check = CheckOutput(allow_null=True)


class PapercupsApi(CustomerApi):
    """Base of the Papercups setup endpoints."""


class PapercupsConnectionApi(PapercupsApi):
    """The Papercups connection: read it (GET) or set it (PUT), which checks the key with GET /api/v1/me.

    PUT stores nothing unless Papercups accepts the key for that account; the error's `details.problem` says
    what is wrong (`bad_key`, `unreachable`, `timeout`, `wrong_account`, `not_found`, ...).
    """

    required_permissions = {"GET": "bot:read", "PUT": "bot:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "PapercupsConnectionInput"

        account_id = serializers.UUIDField(help_text="The Papercups account id (the widget's token).")
        api_key = serializers.CharField(
            max_length=1000, write_only=True, help_text="A personal API key of the Papercups user the bot posts as."
        )
        base_url = serializers.URLField(
            required=False, allow_blank=True, default="", help_text="Self-hosted Papercups; empty: the default."
        )

    @extend_schema(responses={200: ConnectionOutput, **ERRORS}, operation_id="papercups_connection_get")
    def get(self, request: Request) -> Response:
        state = selectors.papercups_connection_state_get(tenant=self.tenant)
        return Response(ConnectionOutput(state).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: ConnectionOutput, **error_responses(400, 401, 403, 409)},
        operation_id="papercups_connection_set",
    )
    def put(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = self.tenant
        services.papercups_connection_set(
            tenant=tenant,
            account_id=str(data.validated_data["account_id"]),
            api_key=data.validated_data["api_key"],
            base_url=data.validated_data["base_url"],
            actor=self.actor,
            ip=self.client_ip,
        )
        return Response(ConnectionOutput(selectors.papercups_connection_state_get(tenant=tenant)).data)


class PapercupsConnectionCheckApi(PapercupsApi):
    """Check the stored connection now (GET /api/v1/me with the stored key); always 200 with the verdict."""

    required_permissions = {"POST": "bot:write"}

    @extend_schema(request=None, responses={200: CheckOutput, **ERRORS}, operation_id="papercups_connection_check")
    def post(self, request: Request) -> Response:
        return Response(CheckOutput(services.papercups_connection_check(tenant=self.tenant)).data)


class PapercupsWebhookSecretApi(PapercupsApi):
    """Rotate the webhook secret: the old webhook URL stops working at once; register the new one in Papercups."""

    required_permissions = {"POST": "bot:write"}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PapercupsWebhookSecretOutput"

        webhook_url = serializers.CharField(help_text="Shown in full only now.")

    @extend_schema(
        request=None, responses={200: OutputSerializer, **ERRORS}, operation_id="papercups_webhook_secret_rotate"
    )
    def post(self, request: Request) -> Response:
        url = services.papercups_webhook_secret_rotate(tenant=self.tenant, actor=self.actor, ip=self.client_ip)
        return Response(self.OutputSerializer({"webhook_url": url}).data)


class PapercupsWidgetApi(PapercupsApi):
    """The chat widget's embed code (`window.Papercups`), with the bot's title, greeting and colour."""

    required_permissions = {"GET": "bot:read"}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PapercupsWidgetOutput"

        snippet = serializers.CharField(help_text="HTML for the site's <head>.")
        config = serializers.DictField(child=serializers.CharField())

    @extend_schema(
        responses={200: OutputSerializer, **error_responses(401, 403, 409)}, operation_id="papercups_widget_get"
    )
    def get(self, request: Request) -> Response:
        snippet = services.papercups_widget_snippet(tenant=self.tenant)
        return Response(self.OutputSerializer({"snippet": snippet.html, "config": snippet.config}).data)


# --- Crisp ----------------------------------------------------------------------------------------------------------
class CrispWebhookApi(WebhookAckApi):
    """Crisp plugin hooks (`POST /crisp/webhook`, one URL for every website), answered within milliseconds.

    `X-Crisp-Signature` must be the hex HMAC-SHA256 of `[X-Crisp-Request-Timestamp;raw body]` with the plugin's
    signing secret (401 without it, 403 wrong). The tenant is the hook's `website_id`; events are stored once
    (keyed on website, session and fingerprint) and the bot's turn queued; websites not connected to a tenant
    and events Netia does not use get 200 `ignored`.
    """

    _hook = inline_serializer(
        "CrispHook",
        {
            "website_id": serializers.UUIDField(),
            "event": serializers.CharField(),
            "data": serializers.JSONField(),
            "timestamp": serializers.IntegerField(),
        },
    )

    @extend_schema(
        request=_hook,
        parameters=[
            OpenApiParameter(crisp.TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, description="As Crisp sent it."),
            OpenApiParameter(
                crisp.SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Hex HMAC-SHA256 of `[timestamp;raw body]` with the plugin's signing secret.",
            ),
        ],
        responses={200: _WEBHOOK_OUTCOME, **error_responses(400, 401, 403, 413, 503)},
        operation_id="crisp_webhook",
        auth=[],
    )
    def post(self, request: Request) -> Response:
        return Response(self.receive(request))

    def receive(self, request: HttpRequest) -> dict[str, str]:
        """Verify, check and store one hook; the answer's body."""
        event = "unknown"
        try:
            event = _crisp_event_label(request.body)
            outcome = services.crisp_webhook_receive(
                raw_body=request.body,
                timestamp=_header(request, crisp.TIMESTAMP_HEADER),
                signature=_header(request, crisp.SIGNATURE_HEADER),
            )
        except ApplicationError as error:
            WEBHOOK_EVENTS.labels(channel="crisp", event=event, outcome=error.code).inc()
            raise
        WEBHOOK_EVENTS.labels(channel="crisp", event=event, outcome=outcome).inc()
        return {"status": outcome}


def _crisp_event_label(raw_body: bytes) -> str:
    """The metric label of a hook (known events by name), read before it is verified: never trusted."""
    try:
        event = crisp.hook_parse(raw_body).event
    except ApplicationError:
        return "unknown"
    return event if event in crisp.KNOWN_EVENTS else "other"


class CrispCheckOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    problem = serializers.CharField(
        help_text="Empty when ok; else not_installed, unknown_operator, not_connected, not_configured, bad_token, "
        "not_allowed, quota, unreachable, timeout, server_error, unexpected_response or rejected."
    )
    detail = serializers.CharField()
    checked_at = serializers.DateTimeField()


class CrispConnectionOutput(serializers.Serializer):
    connected = serializers.BooleanField(help_text="A website is connected and has the plugin installed.")
    website_id = serializers.CharField(allow_null=True)
    plugin_installed = serializers.BooleanField()
    handoff_operator_id = serializers.CharField(help_text="Empty: handed-off conversations are not routed.")
    hook_url = serializers.CharField(help_text="The Netia plugin's hook URL (the same for every website).")
    last_check = CrispCheckOutput(allow_null=True)


class CrispConnectionApi(CustomerApi):
    """The Crisp connection: read it (GET) or set it (PUT), which checks that the website installed the plugin.

    PUT stores nothing unless Crisp lists the website among the plugin's (and the operator among its
    operators); the error's `details.problem` says what is wrong (`not_installed`, `unknown_operator`, ...).
    """

    required_permissions = {"GET": "bot:read", "PUT": "bot:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "CrispConnectionInput"

        website_id = serializers.CharField(max_length=64, help_text="The Crisp website id (Settings, Website).")
        handoff_operator_id = serializers.CharField(
            max_length=64,
            required=False,
            allow_blank=True,
            default="",
            help_text="A Crisp operator's user id: handed-off conversations are routed to them.",
        )

    @extend_schema(responses={200: CrispConnectionOutput, **ERRORS}, operation_id="crisp_connection_get")
    def get(self, request: Request) -> Response:
        return Response(CrispConnectionOutput(selectors.crisp_connection_state_get(tenant=self.tenant)).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: CrispConnectionOutput, **error_responses(400, 401, 403, 409, 503)},
        operation_id="crisp_connection_set",
    )
    def put(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.crisp_connection_set(tenant=self.tenant, actor=self.actor, ip=self.client_ip, **data.validated_data)
        return Response(CrispConnectionOutput(selectors.crisp_connection_state_get(tenant=self.tenant)).data)


class CrispConnectionCheckApi(CustomerApi):
    """Check the connection now (is the plugin still installed, the operator still there); always 200."""

    required_permissions = {"POST": "bot:write"}

    @extend_schema(request=None, responses={200: CrispCheckOutput, **ERRORS}, operation_id="crisp_connection_check")
    def post(self, request: Request) -> Response:
        return Response(CrispCheckOutput(services.crisp_connection_check(tenant=self.tenant)).data)


class CrispWidgetApi(CustomerApi):
    """The Crisp chatbox code for the site (`window.CRISP_WEBSITE_ID`), in the bot's language."""

    required_permissions = {"GET": "bot:read"}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CrispWidgetOutput"

        snippet = serializers.CharField(help_text="HTML for the site's pages.")
        config = serializers.DictField(child=serializers.CharField())

    @extend_schema(responses={200: OutputSerializer, **error_responses(401, 403, 409)}, operation_id="crisp_widget_get")
    def get(self, request: Request) -> Response:
        snippet = services.crisp_widget_snippet(tenant=self.tenant)
        return Response(self.OutputSerializer({"snippet": snippet.html, "config": snippet.config}).data)
