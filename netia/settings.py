"""Netia settings: one module, every value from the environment, safe by default.

DJANGO_DEBUG defaults to false (production): the process then refuses to start without DJANGO_SECRET_KEY,
NETIA_ENCRYPTION_KEYS, DATABASE_URL and REDIS_URL. Local development (`make run`, `make test`, .env.example)
sets DJANGO_DEBUG=true: without DATABASE_URL an embedded PostgreSQL under .data/ is started, without REDIS_URL
the cache is process-local and Celery runs tasks eagerly.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent

# The .env file (NETIA_ENV_FILE, default ./.env) is read before any setting: its values fill in what the
# environment does not set (the environment wins).
env = environ.Env()
ENV_FILE = Path(env.str("NETIA_ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    environ.Env.read_env(ENV_FILE)

DATA_DIR = Path(env.str("NETIA_DATA_DIR", default=str(BASE_DIR / ".data")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Production (debug off) needs these; each is shared across processes (rate limits and the broker live in Redis).
PRODUCTION_REQUIRED = ("DJANGO_SECRET_KEY", "NETIA_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL")
if not DEBUG and (_missing := [name for name in PRODUCTION_REQUIRED if not env.str(name, default="").strip()]):
    raise ImproperlyConfigured(
        f"DJANGO_DEBUG is off (production) and {', '.join(_missing)} {'is' if len(_missing) == 1 else 'are'} not set. "
        "See deploy/production.env.example; for local development set DJANGO_DEBUG=true."
    )

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="netia-insecure-local-development-key-do-not-deploy")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Public base URL of this deployment: used to build the webhook URLs and links we hand out.
NETIA_PUBLIC_URL = env.str("NETIA_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

# Fernet keys for secrets stored at rest (tenants' Papercups API keys, webhook secrets). The first key
# encrypts; all of them decrypt, so a key can be rotated by prepending a new one.
if DEBUG:
    _derived = base64.urlsafe_b64encode(hashlib.sha256(f"netia-fernet:{SECRET_KEY}".encode()).digest()).decode()
    NETIA_ENCRYPTION_KEYS = env.list("NETIA_ENCRYPTION_KEYS", default=[_derived])
else:
    NETIA_ENCRYPTION_KEYS = env.list("NETIA_ENCRYPTION_KEYS")

# --- Applications ---------------------------------------------------------------------------------------
# Our `tenants` app comes first so that its `migrate_schemas` (which also keeps the clone template
# migrated) takes precedence over django-tenants' own command of the same name.
SHARED_APPS = [
    "tenants",
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # Django's admin with Netia's site (Netia's own apps first in the index and sidebar).
    "netia.admin_site.NetiaAdminConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.forms",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "django_prometheus",
    "django_structlog",
    "djstripe",
    "django_htmx",
    "axes",
    "billing",
    "webhooks",
    "dashboard",
    "staff",
]
TENANT_APPS = [
    "chat",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
# django-tenants' default, spelled out: read several times per request, and a setting Django lacks costs an
# exception on every read (the same goes for the other defaults marked "read per request" below).
PUBLIC_SCHEMA_NAME = "public"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New tenants are cloned from this schema (kept migrated by `migrate_schemas`) instead of replaying every
# migration: 0.3 s instead of ~40 s per tenant.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# migrate_schemas migrates only the tenant schemas with something to apply, several processes at a time.
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.executor_for"
TENANT_MULTIPROCESSING_MAX_PROCESSES = env.int("TENANT_MIGRATION_PROCESSES", default=os.cpu_count() or 2)
NETIA_TENANT_DOMAIN = env.str("NETIA_TENANT_DOMAIN", default="tenants.netia.localhost")

AUTH_USER_MODEL = "tenants.User"

MIDDLEWARE = [
    "netia.proxies.TrustedProxyMiddleware",
    "netia.middleware.PrometheusBeforeMiddleware",
    "netia.middleware.PublicSchemaMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the API docs'): from the app directories in debug, collected in production.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # django-cors-headers', without building request.headers for a request that has no Origin.
    "netia.middleware.CorsMiddleware",
    # django-csp's, with a fixed policy for JSON responses.
    "netia.middleware.ContentSecurityPolicyMiddleware",
    "netia.middleware.BodySizeLimitMiddleware",
    # The host check (ALLOWED_HOSTS), APPEND_SLASH and Content-Length, on every path; before the sessions, which
    # only CSRF_USE_SESSIONS (not used) would need first.
    "django.middleware.common.CommonMiddleware",
    # From here to BrowserOnlyEnd: only for browsers. The webhooks and the token-authenticated API skip it
    # (netia.middleware.is_machine_path); the admin API and the API docs, which a staff session may use, do not.
    "netia.middleware.BrowserOnlyBegin",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Resolves the portal's tenant from the session's membership and denies /portal/ to everyone else.
    "dashboard.middleware.PortalMiddleware",
    "netia.middleware.BrowserOnlyEnd",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-structlog's, binding the client address netia.proxies resolves.
    "netia.middleware.RequestLogMiddleware",
    # django-prometheus' metrics, their labelled children looked up once.
    "netia.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Form templates are looked up like any template, so the portal's field layout lives in templates/.
FORM_RENDERER = "dashboard.renderers.PortalFormRenderer"

ROOT_URLCONF = "netia.urls"
WSGI_APPLICATION = "netia.wsgi.application"
ASGI_APPLICATION = "netia.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    _database = env.db("DATABASE_URL")
else:  # local development only: with DJANGO_DEBUG off, DATABASE_URL is required above
    from netia.embedded_postgres import embedded_database

    _database = embedded_database(DATA_DIR / "postgres", env.str("NETIA_EMBEDDED_DB_NAME", default="netia"))
_database.update(
    # django-tenants' backend, issuing `SET search_path` only when the path changes (netia/db_backend).
    ENGINE="netia.db_backend",
    CONN_MAX_AGE=env.int("DATABASE_CONN_MAX_AGE", default=60),
    CONN_HEALTH_CHECKS=True,
)
DATABASES = {"default": _database}
# The knowledge retrieval's statement is prepared server-side once per connection and schema (netia/prepared.py):
# off for a pooler that keeps no prepared statements between a client's statements (docs/scaling.md).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# django-prometheus' backend (statements and connections counted), its per-statement counting made cheaper.
ORIGINAL_BACKEND = "netia.db_metrics"
# `SET search_path` once per schema switch, not before every statement; made safe after rollbacks and on reused
# or new connections by netia.db_backend.
TENANT_LIMIT_SET_CALLS = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, rate limits, Celery ---------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="netia"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "netia"}}
    # A process-local cache is fine for one local process; production sets REDIS_URL.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# Redis outages degrade instead of failing requests: cache misses, and rate limits fail open.
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_CLOSE_CONNECTION = False  # django-redis' default (read per request): connections stay pooled
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
RATELIMIT_FAIL_OPEN = True
RATELIMIT_USE_CACHE = "default"
# django-ratelimit's defaults, set: it reads them for every limit counted, and a missing setting costs a raised
# and caught AttributeError each time.
RATELIMIT_ENABLE = True
RATELIMIT_CACHE_PREFIX = "rl:"
RATELIMIT_HASH_ALGORITHM = hashlib.sha256
RATELIMIT_VIEW = "netia.errors.ratelimited_view"

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message a worker took and never acknowledged (the worker died) is delivered again after this long;
    # the periodic sweeps usually queue the work again much sooner.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600),
    # Queues are read in the order declared below (fresh replies first), not round-robin.
    "queue_order_strategy": "priority",
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Every worker (`make worker`, the image, the tests' workers) consumes all three queues, in this order:
# fresh visitor turns and their first delivery, then work retried after a failure, then everything else.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in ("replies", "retries", "background")]
CELERY_TASK_DEFAULT_QUEUE = "background"
CELERY_TASK_ROUTES = {
    "webhooks.tasks.channel_reply": {"queue": "replies"},
    "webhooks.tasks.channel_deliver": {"queue": "replies"},
    "webhooks.tasks.channel_conversation_refresh": {"queue": "replies"},
    # A stored webhook event: parsing it is the first step of a fresh visitor turn.
    "webhooks.tasks.inbound_event_process": {"queue": "replies"},
    # The recovery sweeps queue again the work that was lost: on `background` (read last) sustained reply
    # traffic would starve them, and with them the work they recover.
    "webhooks.tasks.inbound_events_sweep": {"queue": "retries"},
    "webhooks.tasks.channel_reconcile_all": {"queue": "retries"},
    "webhooks.tasks.channel_reconcile_tenant": {"queue": "retries"},
    "chat.tasks.lead_notifications_sweep": {"queue": "retries"},
    "billing.tasks.billing_notifications_sweep": {"queue": "retries"},
}
# No task runs unbounded: the soft limit raises inside the task (it can record the failure), the hard one
# kills the worker process; tasks with their own limits set them lower.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=150)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Idempotent (one email per trial), so running it hourly only bounds how late the reminder can be.
    "billing-trial-reminders": {"task": "billing.tasks.trial_reminders_send", "schedule": 3600.0},
    # Embeds passages a failed task missed, and re-embeds everything after OPENAI_EMBEDDING_MODEL changes.
    "chat-embed-stale-passages": {"task": "chat.tasks.passages_embed_stale", "schedule": 600.0},
}

# --- Auth, sessions ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:overview"
AUTHENTICATION_BACKENDS = [
    # First: refuses a staff-console sign-in from a locked-out client before a password is checked.
    "netia.signin_throttle.AdminSignInThrottle",
    "django.contrib.auth.backends.ModelBackend",  # staff passwords (admin)
    "sesame.backends.ModelBackend",  # portal magic links
]
# Portal magic links (django-sesame): valid this many seconds, usable once (a login moves last_login on).
SESAME_MAX_AGE = env.int("PORTAL_LOGIN_LINK_MAX_AGE", default=15 * 60)
SESAME_ONE_TIME = True
SESAME_TOKEN_NAME = "token"  # noqa: S105 - the query parameter's name, not a secret
# django-ratelimit rates of the portal's sign-in and sign-up forms ("<count>/<period>", period s/m/h/d).
PORTAL_LOGIN_RATE_PER_IP = env.str("PORTAL_LOGIN_RATE_PER_IP", default="20/h")
PORTAL_LOGIN_RATE_PER_EMAIL = env.str("PORTAL_LOGIN_RATE_PER_EMAIL", default="5/h")
PORTAL_SIGNUP_RATE_PER_IP = env.str("PORTAL_SIGNUP_RATE_PER_IP", default="10/h")
# Password guessing on the staff console (django-axes, admin sign-ins only): after AXES_FAILURE_LIMIT failures
# from one client IP, that IP may not sign in to the console for AXES_COOLOFF_MINUTES (429). A success does
# not reset the count (a sign-in to an account of one's own would otherwise clear it between guesses).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# The client's address as every other limit sees it (the forwarded one only behind NETIA_TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "netia.proxies.client_ip_get"
AXES_RESET_ON_SUCCESS = False
AXES_ONLY_ADMIN_SITE = True
AXES_HANDLER = "netia.signin_throttle.AdminSignInHandler"
AXES_LOCKOUT_TEMPLATE = "axes_lockout.html"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "netia.errors.csrf_failure"

# --- HTTPS, proxies and security headers ---------------------------------------------------------------------
# Addresses (IPs or CIDR networks) of the reverse proxies / load balancers in front of Netia. Only requests
# arriving from one of them may set X-Forwarded-For (the client address rate limits use) and
# X-Forwarded-Proto; from anyone else those headers are dropped (netia.proxies.TrustedProxyMiddleware).
NETIA_TRUSTED_PROXIES = env.list("NETIA_TRUSTED_PROXIES", default=[])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if NETIA_TRUSTED_PROXIES else None
# Redirect plain HTTP to HTTPS (set false when the TLS-terminating proxy redirects by itself). The health
# check stays reachable over plain HTTP for container and load-balancer probes.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts only from this origin or carrying the
# request's nonce (`<script nonce="{{ CSP_NONCE }}">`), no plugins, no framing. Inline styles stay allowed
# (the admin uses style attributes). The API docs pages set their own, stricter policy (netia.docs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
CONTENT_SECURITY_POLICY_REPORT_ONLY = None  # no report-only policy (read per response)
# CORS (django-cors-headers) only on the public chat API, which websites call from visitors' browsers. A
# tenant may restrict the origins (Tenant.chat_allowed_origins): chat.api.public decides per request and
# netia.cors answers the browser accordingly. Every other path sends no CORS headers.
CORS_URLS_REGEX = r"^/api/v1/chat$"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_METHODS = ["POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_PREFLIGHT_MAX_AGE = 600

# --- API --------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "netia.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Netia API",
    "DESCRIPTION": "Multi-tenant AI customer-service bot: chat, knowledge, leads, billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc are served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "chat.models.Conversation.Status",
        "LeadStatusEnum": "chat.models.Lead.Status",
        "SubscriptionStatusEnum": "tenants.models.Tenant.SubscriptionStatus",
    },
}
# Request bodies above this many bytes get 413 on the API and webhook paths.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
# Bearer token GET /api/v1/metrics requires. With DJANGO_DEBUG off and no token, the endpoint answers nobody.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Email ------------------------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Netia <no-reply@netia.localhost>")
# Seconds an SMTP connection or reply may take (Django waits forever by default).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
# An email task holds its claim on the email this long; a claim older than that (the worker died) is taken again.
NOTIFICATION_CLAIM_SECONDS = env.float("NOTIFICATION_CLAIM_SECONDS", default=300.0)
# Emails neither sent nor being sent this long after they were recorded are queued again by the sweep.
NOTIFICATION_SWEEP_GRACE_SECONDS = env.float("NOTIFICATION_SWEEP_GRACE_SECONDS", default=300.0)
# An email is given up (recorded on its row, logged, counted) once the mail server refused its recipient for
# good, after this many failed attempts, or when it is older than this (a "trial ends in 3 days" days late).
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=12)
NOTIFICATION_MAX_AGE_SECONDS = env.float("NOTIFICATION_MAX_AGE_SECONDS", default=86400.0)
CELERY_BEAT_SCHEDULE["email-sweep-leads"] = {"task": "chat.tasks.lead_notifications_sweep", "schedule": 600.0}
CELERY_BEAT_SCHEDULE["email-sweep-billing"] = {"task": "billing.tasks.billing_notifications_sweep", "schedule": 600.0}

# --- Static files, i18n -----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# WhiteNoise serves static files under `make run`, gunicorn and the browser tests alike. In debug it finds them
# in the apps (no collectstatic step) and picks up changes; in production it serves the fingerprinted, compressed
# files `collectstatic` wrote (the Docker image runs it). Set from DEBUG here, at import, because the test runner
# turns settings.DEBUG off afterwards while the tests still serve what `make run` serves.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Integrations (each off unless configured) -------------------------------------------------------------
# LLM: any OpenAI-compatible Chat Completions API. Without a key the bot answers offline (extractively).
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
# Every model the platform offers; a plan (billing.Plan.llm_models) names which of them its tenants may choose.
# OPENAI_MODEL, the default, is always allowed.
LLM_MODELS = env.list("LLM_MODELS", default=[OPENAI_MODEL])
OPENAI_TIMEOUT = env.float("OPENAI_TIMEOUT", default=15.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
# Embeddings for hybrid retrieval (same client, key and base URL); unset: full-text search alone. Needs pgvector.
OPENAI_EMBEDDING_MODEL = env.str("OPENAI_EMBEDDING_MODEL", default="")

# Chat engine.
CHAT_HISTORY_MESSAGES = env.int("CHAT_HISTORY_MESSAGES", default=10)
CHAT_RETRIEVAL_PASSAGES = env.int("CHAT_RETRIEVAL_PASSAGES", default=4)
# The bot answers only from passages holding at least this weighted share of the question's content words
# (measured on tests/eval: see README); below it, it says it does not know (offline) or hands off (LLM).
CHAT_RELEVANCE_THRESHOLD = env.float("CHAT_RELEVANCE_THRESHOLD", default=0.4)
# With embeddings, a passage is relevant too when one of its sentences is at least this cosine-similar to the
# question, or 0.2 less but beating the best sentence of every other article by CHAT_EMBEDDING_MIN_STANDOUT.
# Model-dependent: measured for all-MiniLM-L6-v2 on the evaluation's dev split (`make eval-embeddings`, README).
CHAT_EMBEDDING_MIN_SIMILARITY = env.float("CHAT_EMBEDDING_MIN_SIMILARITY", default=0.6)
CHAT_EMBEDDING_MIN_STANDOUT = env.float("CHAT_EMBEDDING_MIN_STANDOUT", default=0.125)
CHAT_RESPONSE_CACHE_SECONDS = env.int("CHAT_RESPONSE_CACHE_SECONDS", default=24 * 3600)
# django-ratelimit rates for POST /api/v1/chat ("<count>/<period>", period s/m/h).
CHAT_RATE_PER_TOKEN = env.str("CHAT_RATE_PER_TOKEN", default="120/m")
CHAT_RATE_PER_IP = env.str("CHAT_RATE_PER_IP", default="30/m")
# Anonymous chat API turns per tenant per hour, whatever the IPs and tokens (a tenant may set a lower cap).
CHAT_TENANT_TURNS_PER_HOUR = env.int("CHAT_TENANT_TURNS_PER_HOUR", default=600)
# Lifetime of the signed conversation token the chat API returns (seconds; a visitor continues with it).
CHAT_CONVERSATION_TOKEN_MAX_AGE = env.int("CHAT_CONVERSATION_TOKEN_MAX_AGE", default=30 * 24 * 3600)
# --- Outbound calls to URLs a tenant can influence (netia.outbound: the SSRF guard) ----------------------------------
# host:port entries that may resolve to private addresses (a self-hosted server on the private network; tests
# and local runs list their fake servers). Every other host must resolve to public addresses only.
NETIA_OUTBOUND_ALLOWED_HOSTS = env.list("NETIA_OUTBOUND_ALLOWED_HOSTS", default=[])
NETIA_OUTBOUND_HTTPS_ONLY = env.bool("NETIA_OUTBOUND_HTTPS_ONLY", default=not DEBUG)
NETIA_OUTBOUND_MAX_RESPONSE_BYTES = env.int("NETIA_OUTBOUND_MAX_RESPONSE_BYTES", default=2 * 1024 * 1024)
PAPERCUPS_BASE_URL = env.str("PAPERCUPS_BASE_URL", default="https://app.papercups.io").rstrip("/")
# --- Papercups channel (webhooks app: webhooks in, replies out) ---------------------------------------------
# Timeout of each call to Papercups' API, in seconds (the client never retries; the tasks do, with backoff).
PAPERCUPS_TIMEOUT_SECONDS = env.float("PAPERCUPS_TIMEOUT_SECONDS", default=10.0)
# Wait this long after a visitor's last message before answering, so a burst gets one reply.
PAPERCUPS_QUIET_PERIOD_SECONDS = env.float("PAPERCUPS_QUIET_PERIOD_SECONDS", default=2.0)
# Retry backoff: base * 2^(attempt-1) capped at the maximum, each with 50-100 % jitter.
PAPERCUPS_RETRY_BASE_SECONDS = env.float("PAPERCUPS_RETRY_BASE_SECONDS", default=2.0)
PAPERCUPS_RETRY_MAX_SECONDS = env.float("PAPERCUPS_RETRY_MAX_SECONDS", default=120.0)
# While the LLM fails, retry the turn for this long, then send the engine's polite fallback reply.
PAPERCUPS_REPLY_RETRY_SECONDS = env.float("PAPERCUPS_REPLY_RETRY_SECONDS", default=60.0)
# While Papercups fails, retry a delivery for this long, then mark it failed (admin: Failed deliveries).
PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = env.float("PAPERCUPS_DELIVERY_GIVE_UP_SECONDS", default=900.0)
# Reconciliation (Papercups drops webhooks it could not deliver): how often, and how far back it looks.
PAPERCUPS_RECONCILE_INTERVAL_SECONDS = env.float("PAPERCUPS_RECONCILE_INTERVAL_SECONDS", default=60.0)
PAPERCUPS_RECONCILE_WINDOW_SECONDS = env.float("PAPERCUPS_RECONCILE_WINDOW_SECONDS", default=900.0)
# Work older than this with no task taking care of it (a lost task) is queued again by the reconciliation.
PAPERCUPS_SWEEP_GRACE_SECONDS = env.float("PAPERCUPS_SWEEP_GRACE_SECONDS", default=120.0)
# A visitor turn no task managed to answer for this long is handed to the tenant's team (and shown to staff).
PAPERCUPS_TURN_GIVE_UP_SECONDS = env.float("PAPERCUPS_TURN_GIVE_UP_SECONDS", default=3600.0)
# After this many retryable failures in a row, a tenant's channel account is paused (per-tenant backoff,
# PAPERCUPS_RETRY_* timing) and probed once at the end of the pause.
CHANNEL_CIRCUIT_FAILURES = env.int("CHANNEL_CIRCUIT_FAILURES", default=3)
# django-ratelimit rate, per client IP, of webhook:verify handshakes (each compares every tenant's secret).
PAPERCUPS_VERIFY_RATE = env.str("PAPERCUPS_VERIFY_RATE", default="30/m")
# Processed webhook events (webhooks.InboundEvent) are kept this many days (staff can look at them), then deleted.
INBOUND_EVENT_RETENTION_DAYS = env.int("INBOUND_EVENT_RETENTION_DAYS", default=7)
CELERY_BEAT_SCHEDULE["inbound-events-sweep"] = {"task": "webhooks.tasks.inbound_events_sweep", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["papercups-reconcile"] = {
    "task": "webhooks.tasks.channel_reconcile_all",
    "schedule": PAPERCUPS_RECONCILE_INTERVAL_SECONDS,
}
# --- end of Papercups channel -------------------------------------------------------------------------------
# --- Crisp channel (one Crisp plugin for every tenant; off unless its token and signing secret are set) ------
# The plugin's production token (Marketplace, your plugin, Tokens) and its hooks signing secret.
CRISP_PLUGIN_IDENTIFIER = env.str("CRISP_PLUGIN_IDENTIFIER", default="")
CRISP_PLUGIN_KEY = env.str("CRISP_PLUGIN_KEY", default="")
CRISP_SIGNING_SECRET = env.str("CRISP_SIGNING_SECRET", default="")
# The REST base, /v1 included (tests point it at a local simulator).
CRISP_API_URL = env.str("CRISP_API_URL", default="https://api.crisp.chat/v1").rstrip("/")
CRISP_TIMEOUT_SECONDS = env.float("CRISP_TIMEOUT_SECONDS", default=10.0)
# `origin` of the bot's messages: "chat" (documented), or the plugin's URN (urn:…), which also marks its echoes.
CRISP_MESSAGE_ORIGIN = env.str("CRISP_MESSAGE_ORIGIN", default="chat")
# The plugin's daily quota is shared by every website: the reconciliation runs less often than Papercups'
# and, once Crisp answers 429/420, waits (Retry-After, else doubling from the base up to the maximum).
CRISP_RECONCILE_INTERVAL_SECONDS = env.float("CRISP_RECONCILE_INTERVAL_SECONDS", default=300.0)
CRISP_QUOTA_BACKOFF_SECONDS = env.float("CRISP_QUOTA_BACKOFF_SECONDS", default=300.0)
CRISP_QUOTA_BACKOFF_MAX_SECONDS = env.float("CRISP_QUOTA_BACKOFF_MAX_SECONDS", default=3600.0)
# Bounds on the pages one reconciliation or one website check reads.
CRISP_RECONCILE_PAGES_MAX = env.int("CRISP_RECONCILE_PAGES_MAX", default=5)
CRISP_WEBSITE_PAGES_MAX = env.int("CRISP_WEBSITE_PAGES_MAX", default=50)
CELERY_BEAT_SCHEDULE["crisp-reconcile"] = {
    "task": "webhooks.tasks.channel_reconcile_all",
    "schedule": CRISP_RECONCILE_INTERVAL_SECONDS,
    "kwargs": {"channel": "crisp"},
}
# --- end of Crisp channel -----------------------------------------------------------------------------------

# Billing: Stripe through dj-stripe, off unless STRIPE_SECRET_KEY is set (tenants then stay on their trial
# plan and Checkout/portal answer 503). dj-stripe uses STRIPE_SECRET_KEY whenever the attribute exists.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
# Pinned: the shapes Netia reads (subscription item periods, invoice parents) are those of this version.
# Create the Stripe webhook endpoint with the same version (`manage.py billing_webhook_create` does).
STRIPE_API_VERSION = "2026-08-26.dahlia"
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=20.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = "tenants.Tenant"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# New tenants use the product free for this many days, without a card.
BILLING_TRIAL_DAYS = env.int("BILLING_TRIAL_DAYS", default=14)
# The "trial ending" email goes out this many days before the trial ends.
BILLING_TRIAL_REMINDER_DAYS = env.int("BILLING_TRIAL_REMINDER_DAYS", default=3)
# A past_due subscription keeps the bot answering for this many days (Stripe retries the card meanwhile).
BILLING_PAST_DUE_GRACE_DAYS = env.int("BILLING_PAST_DUE_GRACE_DAYS", default=7)
# Where Stripe Checkout and the customer portal send the owner back to when the API call names no URL.
BILLING_RETURN_URL = env.str("BILLING_RETURN_URL", default="") or f"{NETIA_PUBLIC_URL}/portal/billing"
# Staff addresses alerted by the billing reconciliation (e.g. a tenant with two ongoing subscriptions).
BILLING_STAFF_EMAILS = env.list("BILLING_STAFF_EMAILS", default=[])
# The daily reconciliation re-reads every tenant's Stripe subscriptions (`manage.py billing_reconcile` on demand).
CELERY_BEAT_SCHEDULE["billing-reconcile"] = {
    "task": "billing.tasks.billing_reconcile_all",
    "schedule": env.float("BILLING_RECONCILE_INTERVAL_SECONDS", default=86400.0),
}

# --- Logging and errors -----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
from netia.logging import configure_logging  # noqa: E402

LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
# django-structlog's request logging with its defaults (read per request): request_started and 2xx at INFO
# (below its logger's WARNING, so not written), 4xx at WARNING, 5xx at ERROR; upstream request ids not trusted.
DJANGO_STRUCTLOG_STATUS_DEFAULT_LOG_LEVEL = logging.INFO
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.INFO
DJANGO_STRUCTLOG_STATUS_2XX_LOG_LEVEL = logging.INFO
DJANGO_STRUCTLOG_STATUS_4XX_LOG_LEVEL = logging.WARNING
DJANGO_STRUCTLOG_STATUS_5XX_LOG_LEVEL = logging.ERROR
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = True
DJANGO_STRUCTLOG_USER_ID_FIELD = "pk"
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = False
DJANGO_STRUCTLOG_TRUST_UPSTREAM_CORRELATION_ID = False

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
    )
