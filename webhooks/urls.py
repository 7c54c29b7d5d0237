"""Webhook receivers (mounted at the site root) and the tenant's channel settings (mounted under /api/v1/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from webhooks import api
from webhooks.selectors import CRISP_WEBHOOK_PATH, PAPERCUPS_WEBHOOK_PATH

webhook_urlpatterns: list[URLPattern] = [
    path(PAPERCUPS_WEBHOOK_PATH.lstrip("/"), api.PapercupsWebhookApi.as_view(), name="papercups-webhook"),
    path(CRISP_WEBHOOK_PATH.lstrip("/"), api.CrispWebhookApi.as_view(), name="crisp-webhook"),
]

urlpatterns: list[URLPattern] = [
    path("customer/papercups", api.PapercupsConnectionApi.as_view(), name="customer-papercups"),
    path("customer/papercups/check", api.PapercupsConnectionCheckApi.as_view(), name="customer-papercups-check"),
    path(
        "customer/papercups/webhook-secret",
        api.PapercupsWebhookSecretApi.as_view(),
        name="customer-papercups-webhook-secret",
    ),
    path("customer/papercups/widget", api.PapercupsWidgetApi.as_view(), name="customer-papercups-widget"),
    path("customer/crisp", api.CrispConnectionApi.as_view(), name="customer-crisp"),
    path("customer/crisp/check", api.CrispConnectionCheckApi.as_view(), name="customer-crisp-check"),
    path("customer/crisp/widget", api.CrispWidgetApi.as_view(), name="customer-crisp-widget"),
]
