"""Writes for billing, one module per concern; the public names are re-exported here.

- `accounts`: each tenant's billing account and free trial;
- `subscriptions`: the tenant's Stripe customer, Checkout and the customer portal;
- `stripe_sync`: the tenant's status, plan and period recomputed from what dj-stripe synced, and the
  reconciliation that re-reads Stripe;
- `usage`: AI replies metered per billing period;
- `notifications`: billing emails (recorded once, sent by a task) and trial reminders;
- `plans`: plans from Stripe prices, and the Stripe webhook endpoint.
"""

from billing.services.accounts import billing_account_create, trial_extend
from billing.services.notifications import (
    billing_notification_send,
    billing_notifications_due,
    trial_reminders_queue,
)
from billing.services.plans import plans_sync_from_prices, webhook_endpoint_create
from billing.services.stripe_sync import (
    billing_account_reconcile,
    billing_account_sync,
    stripe_event_apply,
    stripe_invoice_followup,
)
from billing.services.subscriptions import (
    RedirectSession,
    checkout_session_create,
    portal_session_create,
    stripe_customer_ensure,
)
from billing.services.usage import current_period, usage_ai_reply_record, usage_count, usage_counted

__all__ = [
    "RedirectSession",
    "billing_account_create",
    "billing_account_reconcile",
    "billing_account_sync",
    "billing_notification_send",
    "billing_notifications_due",
    "checkout_session_create",
    "current_period",
    "plans_sync_from_prices",
    "portal_session_create",
    "stripe_customer_ensure",
    "stripe_event_apply",
    "stripe_invoice_followup",
    "trial_extend",
    "trial_reminders_queue",
    "usage_ai_reply_record",
    "usage_count",
    "usage_counted",
    "webhook_endpoint_create",
]
