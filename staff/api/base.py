"""The base of every admin endpoint: staff credentials, Django permissions, the audit actor."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.views import APIView

from netia import ratelimits
from netia.errors import NotFound
from netia.serializers import StrictSerializer
from staff.authentication import IsStaffWithPermission, StaffKeyAuthentication, StaffSessionAuthentication, staff_actor
from tenants.audit import Actor
from tenants.models import Tenant


class StaffApi(APIView):
    """A staff API key or staff session (with CSRF); `required_permissions` maps a method to a Django permission."""

    authentication_classes = [StaffKeyAuthentication, StaffSessionAuthentication]
    permission_classes = [IsStaffWithPermission]
    required_permissions: dict[str, str] = {}

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail."""
        return staff_actor(self.request)

    @property
    def client_ip(self) -> str:
        return ratelimits.client_ip("audit", self.request)

    def reason(self) -> str:
        """The request's optional `reason` for the audit trail (400 when malformed)."""
        data = ReasonInput(data=self.request.data)
        data.is_valid(raise_exception=True)
        return str(data.validated_data["reason"])

    def tenant_get(self, tenant_id: int) -> Tenant:
        """The tenant with this id (the `tenant_id` that `tenant_onboard --json` prints), or 404."""
        tenant = Tenant.objects.filter(pk=tenant_id).first()
        if tenant is None:
            raise NotFound("No tenant has this id.")
        return tenant


class ReasonInput(StrictSerializer):
    """An optional note for the audit trail: why staff did it."""

    class Meta:
        ref_name = "StaffActionInput"

    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
