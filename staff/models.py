"""Staff API keys (public schema), a Netia employee's credential for the admin REST API; the read-only view of a
tenant's conversations and leads."""

from __future__ import annotations

from django.db import models

from tenants.models import HashedKey, Tenant, User


class StaffApiKey(HashedKey):
    """A staff user's key to `/api/v1/admin/*`. Only a hash of the secret is stored; it acts as its user."""

    scheme = "ns"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="staff_api_keys")

    class Meta(HashedKey.Meta):
        verbose_name = "staff API key"


class TenantRecords(Tenant):
    """A tenant seen through its conversations and leads: the console's read-only page, each look audited.

    Its own permission (`staff.view_tenantrecords`) keeps customers' conversations from every staff member who
    may merely see the tenant list.
    """

    class Meta:
        proxy = True
        verbose_name = "tenant's conversations and leads"
        verbose_name_plural = "tenants' conversations and leads"
