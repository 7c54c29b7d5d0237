"""Connecting a tenant's Papercups account (onboarding with it, checking it, the webhook URL, the widget) and its
Crisp website (checking the plugin is installed there, the chatbox)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.selectors import bot_configuration_get
from netia.errors import Conflict, ValidationFailed
from tenants.audit import Actor, audit_record
from tenants.models import AuditEvent, Tenant
from tenants.services import OnboardingResult, tenant_onboard, webhook_secret_rotate
from webhooks import crisp, papercups
from webhooks.models import ConnectionCheck, CrispConnection
from webhooks.selectors import CrispCheck, papercups_webhook_url
from webhooks.services.inbound import CrispNotConfigured

_TAKEN = "A tenant with this Papercups account id already exists."


@transaction.atomic
def papercups_tenant_onboard(
    *,
    name: str,
    owner_email: str,
    papercups_account_id: str | uuid.UUID | None = None,
    papercups_api_key: str = "",
    papercups_base_url: str = "",
    actor: Actor,
    ip: str | None = None,
) -> OnboardingResult:
    """Onboard a tenant (`tenants.services.tenant_onboard`) already connected to its Papercups account.

    The account is stored as given, without calling Papercups (`papercups_connection_check` does that
    later). All or nothing, like the onboarding itself; the trail records the connection too.
    """
    account_id = (
        papercups.account_id_clean(papercups_account_id, field="papercups_account_id") if papercups_account_id else None
    )
    base_url = papercups.base_url_clean(papercups_base_url, field="papercups_url")
    if account_id and Tenant.objects.filter(papercups_account_id=account_id).exists():
        raise Conflict(_TAKEN, extra={"field": "papercups_account_id"})
    result = tenant_onboard(name=name, owner_email=owner_email, actor=actor, ip=ip)
    tenant = result.tenant
    tenant.papercups_account_id = account_id
    tenant.papercups_api_key = papercups_api_key.strip()
    tenant.papercups_base_url = base_url
    try:
        with transaction.atomic():
            tenant.save(update_fields=["papercups_account_id", "papercups_api_key", "papercups_base_url"])
    except IntegrityError:  # the unique account id, taken concurrently
        raise Conflict(_TAKEN) from None
    if account_id:
        _connected_record(tenant=tenant, actor=actor, ip=ip, checked=False)
    return result


class CrispConnectionFailed(ValidationFailed):
    code = "crisp_connection_failed"
    default_message = "Crisp refused or could not be reached."


def _connected_record(*, tenant: Tenant, actor: Actor, ip: str | None, checked: bool) -> None:
    details = {
        "channel": "papercups",
        "account_id": str(tenant.papercups_account_id),
        "base_url": tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL,
        "checked": checked,
    }
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.CHANNEL_CONNECTED, ip=ip, details=details)


class PapercupsConnectionFailed(ValidationFailed):
    code = "papercups_connection_failed"
    default_message = "Papercups refused or could not be reached."


@dataclass(frozen=True)
class _Probe:
    me: papercups.Me | None
    problem: str
    detail: str


def _probe(*, base_url: str, api_key: str, account_id: str) -> _Probe:
    """Call GET /api/v1/me and say plainly what is wrong, if anything."""
    try:
        me = papercups.PapercupsClient(base_url=base_url, api_key=api_key).me()
    except papercups.PapercupsError as error:
        explanations = {
            "bad_key": "Papercups rejected the API key (401). Create a personal API key in Papercups "
            "(Integrations, API keys) and save it again.",
            "not_found": f"{base_url}/api/v1/me does not exist (404): is {base_url} the address of a Papercups server?",
        }
        return _Probe(None, error.problem, explanations.get(error.problem, error.message))
    if me.account_id != account_id:
        return _Probe(
            me, "wrong_account", f"The API key belongs to Papercups account {me.account_id}, not to {account_id}."
        )
    return _Probe(me, "", f"Connected as {me.email or 'user'} (Papercups user {me.id}).")


def _check_record(*, tenant: Tenant, probe: _Probe) -> ConnectionCheck:
    check, _ = ConnectionCheck.objects.update_or_create(
        tenant=tenant,
        defaults={
            "ok": not probe.problem,
            "problem": probe.problem,
            "detail": probe.detail,
            "bot_user_id": probe.me.id if probe.me else None,
            "checked_at": timezone.now(),
        },
    )
    return check


def papercups_connection_set(
    *, tenant: Tenant, account_id: str, api_key: str, base_url: str = "", actor: Actor, ip: str | None = None
) -> ConnectionCheck:
    """Connect the tenant to a Papercups account: stored only if GET /api/v1/me accepts the key for that account.

    The API key is stored encrypted and never returned; the bot user id comes from /me. The trail records the
    connection (account and server, never the key).
    """
    account = str(papercups.account_id_clean(account_id, field="account_id"))
    api_key = api_key.strip()
    if not api_key:
        raise ValidationFailed("The personal API key is required.", extra={"field": "api_key"})
    base_url = papercups.base_url_clean(base_url, field="base_url")
    if Tenant.objects.filter(papercups_account_id=account).exclude(pk=tenant.pk).exists():
        raise Conflict("Another Netia account is connected to this Papercups account.", extra={"field": "account_id"})
    probe = _probe(base_url=base_url or settings.PAPERCUPS_BASE_URL, api_key=api_key, account_id=account)
    if probe.problem or probe.me is None:
        raise PapercupsConnectionFailed(probe.detail, extra={"problem": probe.problem})
    with transaction.atomic():
        tenant.papercups_account_id = uuid.UUID(account)
        tenant.papercups_api_key = api_key
        tenant.papercups_base_url = base_url
        tenant.papercups_bot_user_id = probe.me.id
        fields = ["papercups_account_id", "papercups_api_key", "papercups_base_url", "papercups_bot_user_id"]
        try:
            with transaction.atomic():
                tenant.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:  # the unique account id, taken concurrently
            tenant.refresh_from_db(fields=fields)
            raise Conflict("Another Netia account is connected to this Papercups account.") from None
        _connected_record(tenant=tenant, actor=actor, ip=ip, checked=True)
        return _check_record(tenant=tenant, probe=probe)


def papercups_connection_check(*, tenant: Tenant) -> ConnectionCheck:
    """Check the stored connection now (GET /api/v1/me) and record the result; refreshes the bot user id."""
    if not tenant.papercups_account_id or not tenant.papercups_api_key:
        missing = "account id" if not tenant.papercups_account_id else "personal API key"
        probe = _Probe(None, "not_configured", f"No Papercups {missing} is configured yet.")
    else:
        probe = _probe(
            base_url=tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL,
            api_key=tenant.papercups_api_key,
            account_id=str(tenant.papercups_account_id),
        )
    with transaction.atomic():
        if probe.me is not None and not probe.problem and probe.me.id != tenant.papercups_bot_user_id:
            tenant.papercups_bot_user_id = probe.me.id
            tenant.save(update_fields=["papercups_bot_user_id", "updated_at"])
        return _check_record(tenant=tenant, probe=probe)


def papercups_webhook_secret_rotate(*, tenant: Tenant, actor: Actor, ip: str | None = None, reason: str = "") -> str:
    """A new webhook secret; returns the new webhook URL (the only time it is shown in full)."""
    return papercups_webhook_url(tenant=webhook_secret_rotate(tenant=tenant, actor=actor, ip=ip, reason=reason))


@dataclass(frozen=True)
class WidgetSnippet:
    config: dict[str, str]
    html: str


def papercups_widget_snippet(*, tenant: Tenant) -> WidgetSnippet:
    """The widget embed code for the tenant's site, from its bot configuration (title, greeting, colour)."""
    if not tenant.papercups_account_id:
        raise Conflict("Connect a Papercups account first.", extra={"reason": "not_connected"})
    base_url = tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL
    with tenant_context(tenant):
        bot = bot_configuration_get()
    config = {
        "token": str(tenant.papercups_account_id),
        "title": bot.widget_title,
        "greeting": bot.greeting,
        "primaryColor": bot.primary_color,
        "baseUrl": base_url,
    }
    return WidgetSnippet(config=config, html=papercups.widget_snippet(config=config, base_url=base_url))


# --- Crisp: connecting a tenant's website ------------------------------------------------------------------------
_CRISP_EXPLANATIONS = {
    "bad_token": "Crisp refused Netia's plugin token (401): the Netia operator must check CRISP_PLUGIN_IDENTIFIER "
    "and CRISP_PLUGIN_KEY.",
    "not_allowed": "Crisp refused access (403): the plugin lacks a permission (token scopes) on this website.",
    "quota": "Crisp's daily quota for the Netia plugin is spent; try again later.",
}


def _crisp_probe(*, website_id: str, operator_id: str) -> CrispCheck:
    """Ask Crisp whether the website installed the plugin (and has the operator); say plainly what is wrong."""
    now = timezone.now()
    try:
        if not crisp.website_installed(website_id):
            return CrispCheck(
                False,
                "not_installed",
                f"The Crisp website {website_id} has not installed the Netia plugin: install it from the Crisp "
                "Marketplace (Plugins) in that website's settings, then connect again.",
                now,
            )
        if operator_id and operator_id not in crisp.client().operators(website_id):
            return CrispCheck(
                False, "unknown_operator", f"{operator_id} is not an operator of the Crisp website {website_id}.", now
            )
    except crisp.CrispError as error:
        return CrispCheck(False, error.problem, _CRISP_EXPLANATIONS.get(error.problem, error.message), now)
    routed = f"; handed-off conversations go to operator {operator_id}" if operator_id else ""
    return CrispCheck(True, "", f"The Crisp website {website_id} has the Netia plugin installed{routed}.", now)


def _crisp_check_store(*, connection: CrispConnection, check: CrispCheck) -> None:
    connection.check_ok, connection.check_problem, connection.check_detail = check.ok, check.problem, check.detail
    connection.checked_at = check.checked_at
    fields = ["check_ok", "check_problem", "check_detail", "checked_at", "updated_at"]
    if check.ok or check.problem == "not_installed":
        connection.plugin_installed = check.ok
        fields.append("plugin_installed")
    connection.save(update_fields=fields)


def _crisp_operator_clean(value: str) -> str:
    value = value.strip()
    return (
        crisp.website_id_clean(value, field="handoff_operator_id", what="a Crisp operator's user id") if value else ""
    )


def crisp_connection_set(
    *, tenant: Tenant, website_id: str, handoff_operator_id: str = "", actor: Actor, ip: str | None = None
) -> CrispConnection:
    """Connect the tenant to its Crisp website: stored only if that website installed the plugin (and has the
    chosen operator). A website belongs to one tenant. The trail records the connection (website and operator)."""
    if not crisp.configured():
        raise CrispNotConfigured()
    website = crisp.website_id_clean(website_id)
    operator = _crisp_operator_clean(handoff_operator_id)
    taken = Conflict("Another Netia account is connected to this Crisp website.", extra={"field": "website_id"})
    if CrispConnection.objects.filter(website_id=website).exclude(tenant=tenant).exists():
        raise taken
    check = _crisp_probe(website_id=website, operator_id=operator)
    if not check.ok:
        raise CrispConnectionFailed(check.detail, extra={"problem": check.problem})
    try:
        with transaction.atomic():
            connection, _ = CrispConnection.objects.update_or_create(
                tenant=tenant, defaults={"website_id": website, "handoff_operator_id": operator}
            )
            _crisp_check_store(connection=connection, check=check)
            details = {"channel": "crisp", "website_id": website, "handoff_operator_id": operator, "checked": True}
            audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.CHANNEL_CONNECTED, ip=ip, details=details)
    except IntegrityError:  # the website, connected concurrently to another tenant
        raise taken from None
    return connection


def crisp_connection_check(*, tenant: Tenant) -> CrispCheck:
    """Check the connection now and record the verdict (shown to the tenant and staff)."""
    connection = CrispConnection.objects.filter(tenant=tenant).first()
    if not crisp.configured():
        return CrispCheck(False, "not_configured", CrispNotConfigured.default_message, timezone.now())
    if connection is None:
        return CrispCheck(False, "not_connected", "No Crisp website is connected yet.", timezone.now())
    check = _crisp_probe(website_id=connection.website_id, operator_id=connection.handoff_operator_id)
    _crisp_check_store(connection=connection, check=check)
    return check


def crisp_widget_snippet(*, tenant: Tenant) -> WidgetSnippet:
    """The chatbox code for the tenant's site (its Crisp website, in the bot's language)."""
    connection = CrispConnection.objects.filter(tenant=tenant).first()
    if connection is None:
        raise Conflict("Connect a Crisp website first.", extra={"reason": "not_connected"})
    with tenant_context(tenant):
        locale = bot_configuration_get().language
    config = {"website_id": connection.website_id, "locale": locale}
    return WidgetSnippet(config=config, html=crisp.widget_snippet(website_id=connection.website_id, locale=locale))


@dataclass(frozen=True)
class WebhookSubscription:
    """The scoped webhook Papercups created for the tenant (`verified`: the handshake with Netia passed)."""

    id: str
    scope: str
    verified: bool


def papercups_webhook_subscribe(*, tenant: Tenant, email: str, password: str) -> WebhookSubscription:
    """Optional setup step: register the tenant's webhook URL with the `conversation:updated` scope, which the
    Papercups dashboard cannot set (its webhooks never receive that event). Needs a Papercups dashboard login
    of the tenant's account: the password is used for this one call, never stored or logged.

    Without it Netia still notices a human taking over (it reads the conversation before every reply); with
    it, takeovers, closing and reopening are mirrored at once. Raises PapercupsConnectionFailed.
    """
    client = papercups.client_for(tenant)
    try:
        data = client.webhook_subscribe(
            email=email, password=password, webhook_url=papercups_webhook_url(tenant=tenant), scope=SCOPED_EVENTS
        )
    except papercups.PapercupsError as error:
        raise PapercupsConnectionFailed(error.message, extra={"problem": error.problem}) from None
    return WebhookSubscription(
        id=str(data.get("id", "")), scope=str(data.get("scope") or ""), verified=data.get("verified") is True
    )


SCOPED_EVENTS = papercups.CONVERSATION_UPDATED
