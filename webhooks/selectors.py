"""Reads for channel routing: which tenant a webhook credential belongs to, which tenants to reconcile."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q, QuerySet

from chat.models import Conversation
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_webhook_secret, tenant_get_cached
from webhooks.models import ConnectionCheck, CrispConnection

SIGNATURE_HEADER = "X-Netia-Signature"
TIMESTAMP_HEADER = "X-Netia-Timestamp"
# A signed call is refused when its timestamp is further than this from now (replays of a captured call).
SIGNATURE_WINDOW_SECONDS = 300
PAPERCUPS_WEBHOOK_PATH = "/papercups/webhook"
CRISP_WEBHOOK_PATH = "/crisp/webhook"


def papercups_webhook_url(*, tenant: Tenant) -> str:
    """The URL the tenant registers in Papercups; its token authenticates Papercups' unsigned webhooks."""
    return f"{settings.NETIA_PUBLIC_URL}{PAPERCUPS_WEBHOOK_PATH}?token={tenant.webhook_secret}"


def tenant_get_by_papercups_account(*, account_id: str) -> Tenant | None:
    """The tenant connected to a Papercups account, or None (also for a malformed id)."""
    try:
        parsed = uuid.UUID(str(account_id))
    except ValueError:
        return None
    return tenant_get_cached(key=f"papercups:{parsed}", condition=Q(papercups_account_id=parsed))


@dataclass(frozen=True)
class WebhookCredentials:
    """What a webhook call presents: the URL's `?token=` and/or a signature.

    The signature is the hex HMAC-SHA256, keyed with the webhook secret, of `<timestamp>.<raw body>`, where
    the timestamp (Unix seconds) is sent as X-Netia-Timestamp and must be within SIGNATURE_WINDOW_SECONDS
    of now: a captured call cannot be replayed later.
    """

    token: str
    signature: str
    raw_body: bytes
    timestamp: str = ""
    now: float = field(default_factory=time.time)

    @property
    def present(self) -> bool:
        return bool(self.token or self.signature)

    @property
    def signature_fresh(self) -> bool:
        """A signature comes with a timestamp inside the window (True when no signature is presented)."""
        if not self.signature:
            return True
        try:
            sent = int(self.timestamp.strip())
        except ValueError:
            return False
        return abs(self.now - sent) <= SIGNATURE_WINDOW_SECONDS

    def match(self, secret: str) -> bool:
        """Every credential presented is right for `secret` (compared in constant time), the signature fresh."""
        if not self.present or not secret:
            return False
        ok = True
        if self.token:
            ok &= hmac.compare_digest(self.token.encode(), secret.encode())
        if self.signature:
            signed = self.timestamp.strip().encode() + b"." + self.raw_body
            expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
            presented = self.signature.strip().lower().removeprefix("sha256=")
            ok &= hmac.compare_digest(expected.encode(), presented.encode())
            ok &= self.signature_fresh
        return ok


def tenant_find_by_webhook_credentials(*, credentials: WebhookCredentials) -> Tenant | None:
    """The tenant whose webhook secret the credentials match, or None.

    Found by the token's indexed fingerprint (tenants.selectors): nothing is decrypted but that tenant's
    secret. The `webhook:verify` handshake, whose payload names no account, needs this, so it must carry the
    token (Papercups calls the registered URL, which has it).
    """
    tenant = tenant_get_by_webhook_secret(secret=credentials.token)
    if tenant is None or not credentials.match(tenant.webhook_secret):
        return None
    return tenant


def papercups_tenants_connected() -> QuerySet[Tenant]:
    """Tenants with a Papercups account and API key, not suspended: those the reconciliation visits."""
    return (
        Tenant.objects.filter(papercups_account_id__isnull=False, suspended_at__isnull=True)
        .exclude(papercups_api_key="")
        .order_by("pk")
    )


def crisp_tenants_connected() -> QuerySet[Tenant]:
    """Tenants with a Crisp website whose plugin is installed, not suspended: those the reconciliation visits."""
    return Tenant.objects.filter(
        crisp_connection__isnull=False, crisp_connection__plugin_installed=True, suspended_at__isnull=True
    ).order_by("pk")


def channel_tenants_connected(*, channel: str) -> QuerySet[Tenant]:
    """The tenants a channel's reconciliation visits."""
    if channel == Conversation.Channel.CRISP:
        return crisp_tenants_connected()
    return papercups_tenants_connected()


@dataclass(frozen=True)
class CrispCheck:
    """What a check of a Crisp connection found; `problem` is a stable code, empty when ok."""

    ok: bool
    problem: str
    detail: str
    checked_at: datetime


@dataclass(frozen=True)
class CrispConnectionState:
    """A tenant's Crisp connection as shown to the tenant and to staff."""

    connected: bool
    website_id: str | None
    plugin_installed: bool
    handoff_operator_id: str
    hook_url: str  # the same for every tenant: the plugin's
    last_check: CrispCheck | None


def crisp_hook_url() -> str:
    """Where the Netia plugin's hooks go (set once, in the plugin's Marketplace settings)."""
    return f"{settings.NETIA_PUBLIC_URL}{CRISP_WEBHOOK_PATH}"


def crisp_connection_state_get(*, tenant: Tenant) -> CrispConnectionState:
    connection = CrispConnection.objects.filter(tenant=tenant).first()
    return CrispConnectionState(
        connected=connection is not None and connection.plugin_installed,
        website_id=connection.website_id if connection else None,
        plugin_installed=bool(connection and connection.plugin_installed),
        handoff_operator_id=connection.handoff_operator_id if connection else "",
        hook_url=crisp_hook_url(),
        last_check=(
            CrispCheck(connection.check_ok, connection.check_problem, connection.check_detail, connection.checked_at)
            if connection and connection.checked_at
            else None
        ),
    )


@dataclass(frozen=True)
class ConnectionState:
    """A tenant's Papercups connection as shown to the tenant and to staff (secrets masked)."""

    connected: bool
    account_id: str | None
    base_url: str
    api_key_set: bool
    bot_user_id: int | None
    webhook_url: str  # the token masked: the full URL is shown only when the secret is (re)created
    last_check: ConnectionCheck | None


def _mask_token(url: str, secret: str) -> str:
    return url.replace(secret, f"{secret[:4]}…") if secret else url


def papercups_connection_state_get(*, tenant: Tenant) -> ConnectionState:
    """What is configured, and the result of the latest connection check."""
    return ConnectionState(
        connected=bool(tenant.papercups_account_id and tenant.papercups_api_key and tenant.papercups_bot_user_id),
        account_id=str(tenant.papercups_account_id) if tenant.papercups_account_id else None,
        base_url=tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL,
        api_key_set=bool(tenant.papercups_api_key),
        bot_user_id=tenant.papercups_bot_user_id,
        webhook_url=_mask_token(papercups_webhook_url(tenant=tenant), tenant.webhook_secret),
        last_check=ConnectionCheck.objects.filter(tenant=tenant).first(),
    )


# What the business should do about each problem a connection check reports (the portal shows it beside
# the check's own detail).
PAPERCUPS_PROBLEM_ADVICE: dict[str, str] = {
    "not_configured": "Fill in your Papercups account id and a personal API key below, then save.",
    "bad_key": "Create a new personal API key in Papercups (Integrations, API keys), paste it below and save.",
    "wrong_account": "The key belongs to another Papercups account. Copy the account id (the token in your "
    "Papercups widget code) from the same account as the key.",
    "not_found": "The address does not answer like a Papercups server. Check the Papercups URL, or leave it "
    "empty to use Papercups' hosted service.",
    "forbidden": "Papercups refused this key. Use a key of a user who can send messages in the account.",
    "unreachable": "Netia could not reach Papercups. Check the Papercups URL; a self-hosted server must be "
    "reachable from the internet.",
    "timeout": "Papercups took too long to answer. Run the check again in a minute.",
    "server_error": "Papercups had an internal error. Run the check again in a few minutes.",
    "unexpected_response": "Papercups answered something Netia did not expect. Check the Papercups URL, then "
    "run the check again.",
    "rejected": "Papercups refused the request. Check the account id and the key, then save again.",
}


def papercups_problem_advice(*, problem: str) -> str:
    """What to do about a connection problem code ("" when there is nothing to do)."""
    if not problem:
        return ""
    return PAPERCUPS_PROBLEM_ADVICE.get(problem, "Check the settings below and run the check again.")
