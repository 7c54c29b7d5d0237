from django.urls import URLPattern, path

from tenants import api

urlpatterns: list[URLPattern] = [
    path("customer/chat-settings", api.ChatSettingsApi.as_view(), name="customer-chat-settings"),
    path("customer/chat-token", api.ChatTokenRotateApi.as_view(), name="customer-chat-token"),
    path("customer/audit", api.AuditEventListApi.as_view(), name="customer-audit"),
]
