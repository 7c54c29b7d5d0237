from django.urls import path

from billing import api

urlpatterns = [
    path("customer/billing", api.BillingStatusApi.as_view(), name="customer-billing"),
    path("customer/billing/plans", api.BillingPlanListApi.as_view(), name="customer-billing-plans"),
    path("customer/billing/checkout", api.BillingCheckoutCreateApi.as_view(), name="customer-billing-checkout"),
    path("customer/billing/portal", api.BillingPortalCreateApi.as_view(), name="customer-billing-portal"),
]
