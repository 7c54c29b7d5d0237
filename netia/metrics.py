"""Prometheus metrics of Netia's own behaviour (django-prometheus covers HTTP and the database)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LLM_REQUESTS = Counter("netia_llm_requests_total", "LLM completions requested, by outcome.", ["outcome"])
LLM_LATENCY = Histogram(
    "netia_llm_latency_seconds",
    "Latency of successful LLM completions, retries included.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
EMBEDDING_REQUESTS = Counter(
    "netia_embedding_requests_total",
    "Embedding requests (passages or questions), by purpose and outcome.",
    ["purpose", "outcome"],
)
LLM_TOKENS = Counter("netia_llm_tokens_total", "Tokens used by LLM completions.", ["kind"])
CHAT_REPLIES = Counter(
    "netia_chat_replies_total",
    "Bot turns answered, by channel and by how the answer was made.",
    ["channel", "source"],
)
HANDOFFS = Counter("netia_handoffs_total", "Conversations handed to a human, by reason.", ["reason"])
LEADS_CAPTURED = Counter("netia_leads_captured_total", "Leads created or updated with new contact details.")
WEBHOOK_EVENTS = Counter(
    "netia_webhook_events_total",
    "Channel webhooks received, by channel, event and outcome.",
    ["channel", "event", "outcome"],
)
DELIVERIES = Counter(
    "netia_channel_deliveries_total", "Outbound channel messages, by channel and outcome.", ["channel", "outcome"]
)
CHANNEL_QUOTA_LIMITED = Counter(
    "netia_channel_quota_limited_total",
    "Channel API calls refused because the plugin's quota is spent (Crisp 429/420), by channel.",
    ["channel"],
)
BILLING_EVENTS = Counter(
    "netia_billing_events_total",
    "Stripe webhook events Netia acted on, by type and outcome (applied, or ignored: no tenant).",
    ["type", "outcome"],
)
TASK_PUBLISH_FAILURES = Counter(
    "netia_task_publish_failures_total",
    "Background tasks that could not be queued (broker down); a periodic sweep queues their work again.",
    ["task"],
)
SWEEP_REQUEUED = Counter(
    "netia_sweep_requeued_total", "Work a periodic sweep found without a task and queued again, by kind.", ["kind"]
)
EMAILS_GIVEN_UP = Counter(
    "netia_emails_given_up_total", "Emails given up (refused for good, too many failures, too old), by kind.", ["kind"]
)
CHANNEL_CIRCUITS_OPENED = Counter(
    "netia_channel_paused_total",
    "Times a tenant's channel account was paused after failing repeatedly (per-tenant backoff), by channel.",
    ["channel"],
)
